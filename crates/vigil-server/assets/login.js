// Sign-in: the secret signs a one-time nonce in the page (WebCrypto HMAC-SHA256);
// only the access key id, the nonce and the proof are sent.
"use strict";

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");

async function proof(secret, nonce, keyId) {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(await crypto.subtle.sign("HMAC", key, enc.encode(`vigil-login:${nonce}:${keyId}`)));
}

async function signIn(event) {
  event.preventDefault();
  const error = document.getElementById("sign-in-error");
  error.textContent = "";
  const keyId = document.getElementById("access-key").value.trim();
  const secret = document.getElementById("secret").value;
  try {
    const { nonce } = await (await fetch("/ui/nonce", { method: "POST" })).json();
    const body = JSON.stringify({ access_key_id: keyId, nonce, proof: await proof(secret, nonce, keyId) });
    const r = await fetch("/ui/login", { method: "POST", headers: { "content-type": "application/json" }, body });
    if (r.ok) {
      window.location.assign("/");
      return;
    }
    const answer = await r.json().catch(() => ({}));
    error.textContent = answer.message || `sign-in failed (${r.status})`;
  } catch (e) {
    error.textContent = `sign-in failed: ${e.message}`;
  }
}

document.getElementById("sign-in")?.addEventListener("submit", signIn);
