// The signed-in pages: every call to /ui carries the session's CSRF token.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function call(method, path, body) {
  const headers = { "x-csrf-token": csrf() };
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await call("POST", "/ui/logout");
  window.location.assign("/login");
});
