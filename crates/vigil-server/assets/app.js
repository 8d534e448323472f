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

// An incident's actions: a lifecycle move, or a note; the page reloads to show
// the incident as the API now has it, or says why not.
const actions = document.querySelector("section.actions[data-incident]");
if (actions) {
  const id = actions.dataset.incident;
  const error = document.getElementById("action-error");
  const act = async (path, body) => {
    error.textContent = "";
    const r = await call("POST", `/ui/api/v1/incidents/${encodeURIComponent(id)}/${path}`, body);
    if (r.ok) {
      window.location.reload();
    } else {
      const answer = await r.json().catch(() => ({}));
      error.textContent = answer.message || `refused (${r.status})`;
    }
  };
  for (const b of actions.querySelectorAll("button[data-move]")) {
    b.addEventListener("click", () => act(b.dataset.move, {}));
  }
  actions.querySelector("button[data-note]")?.addEventListener("click", () => {
    const text = document.getElementById("note-text").value.trim();
    if (text) act("notes", { text });
  });
}
