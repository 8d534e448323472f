// The signed-in pages: every call to /ui carries the session's CSRF token;
// what the page shows is kept current by the server's events (/ui/events).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function call(method, path, body) {
  const headers = { "x-csrf-token": csrf() };
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/// An element with text, built without parsing markup.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await call("POST", "/ui/logout");
  window.location.assign("/login");
});

// Live: the parts of the page marked data-live are fetched again and swapped in
// place when the server says something changed; a short message says what.
const announce = el("p", "", "live-note");
announce.setAttribute("role", "status");
announce.id = "live-note";
document.querySelector("main")?.prepend(announce);

let pending = null;
async function refresh(what) {
  const r = await fetch(window.location.href, { headers: { accept: "text/html" } });
  if (!r.ok) return;
  const next = new DOMParser().parseFromString(await r.text(), "text/html");
  for (const part of document.querySelectorAll("[data-live][id]")) {
    const fresh = next.getElementById(part.id);
    if (fresh && fresh.innerHTML !== part.innerHTML) part.replaceChildren(...fresh.childNodes);
  }
  if (what) announce.textContent = what;
}

function listen() {
  const events = new EventSource("/ui/events");
  events.addEventListener("open", () => document.body.setAttribute("data-live-state", "on"));
  events.addEventListener("change", (e) => {
    const c = JSON.parse(e.data);
    const said = [];
    if (c.findings > 0) said.push(`${c.findings} new finding${c.findings === 1 ? "" : "s"}`);
    if (c.incidents) said.push("incidents changed");
    if (c.runs) said.push("playbook runs changed");
    clearTimeout(pending);
    pending = setTimeout(() => refresh(`Updated: ${said.join(", ")}.`), 250);
  });
  events.addEventListener("signed-out", () => {
    events.close();
    window.location.assign("/login");
  });
  events.addEventListener("error", () => document.body.setAttribute("data-live-state", "retrying"));
}
listen();

// An incident's actions. Buttons are found by delegation, since the live
// refresh replaces them.
const actions = document.querySelector("section.actions[data-incident]");
const error = document.getElementById("action-error");
const say = (text) => {
  if (error) error.textContent = text;
};

async function answered(r) {
  if (r.ok) return r.json().catch(() => ({}));
  const answer = await r.json().catch(() => ({}));
  say(answer.message || `refused (${r.status})`);
  return null;
}

if (actions) {
  const id = actions.dataset.incident;
  const incidentCall = async (path, body) => {
    say("");
    const r = await call("POST", `/ui/api/v1/incidents/${encodeURIComponent(id)}/${path}`, body);
    if (await answered(r)) await refresh("Done.");
  };
  actions.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.move) incidentCall(b.dataset.move, {});
    else if (b.hasAttribute("data-note")) {
      const text = document.getElementById("note-text").value.trim();
      if (text) incidentCall("notes", { text }).then(() => (document.getElementById("note-text").value = ""));
    } else if (b.hasAttribute("data-assign")) {
      const who = document.getElementById("assignee").value.trim();
      incidentCall("assign", { assignee: who || null });
    }
  });

  // Starting a playbook: the dry-run plan first, then the start.
  const planned = { key: null };
  const choice = () => ({
    incident_id: id,
    playbook: document.getElementById("playbook").value,
    resource_arn: document.getElementById("resource-arn").value.trim() || undefined,
  });
  const startButton = document.getElementById("start-button");
  const planBox = document.getElementById("plan");
  const forget = () => {
    planned.key = null;
    if (startButton) startButton.disabled = true;
    if (planBox) planBox.replaceChildren();
  };
  document.getElementById("playbook")?.addEventListener("change", forget);
  document.getElementById("resource-arn")?.addEventListener("input", forget);
  document.getElementById("plan-button")?.addEventListener("click", async () => {
    say("");
    const body = { ...choice(), dry_run: true };
    const answer = await answered(await call("POST", "/ui/api/v1/remediate", body));
    if (!answer) return;
    const plan = answer.plan;
    const list = el("ol", undefined, "plan-steps");
    for (const s of plan.steps) {
      const li = el("li");
      li.append(el("strong", s.id), " ", el("code", s.action));
      const where = [s.account, s.region].filter(Boolean).join(" / ");
      if (where) li.append(` in ${where}`);
      if (!s.runs) li.append(" · skipped (its condition does not hold)");
      if (s.gate) li.append(" · ", el("span", `waits for approval (${s.gate})`, "badge"));
      if (s.destructive) li.append(" · hard to undo");
      if (s.calls?.length) li.append(el("br"), "Calls ", el("code", s.calls.join(", ")));
      if (s.parameters) li.append(el("br"), "Parameters ", el("code", JSON.stringify(s.parameters)));
      if (s.problem) li.append(el("br"), el("span", s.problem, "error"));
      list.append(li);
    }
    planBox.replaceChildren(
      el("h3", `Plan: ${plan.playbook} (${plan.automation}${plan.environment ? ", " + plan.environment : ""})`),
      list,
    );
    planned.key = JSON.stringify(choice());
    startButton.disabled = false;
    startButton.focus();
  });
  startButton?.addEventListener("click", async () => {
    if (planned.key !== JSON.stringify(choice())) return forget();
    say("");
    const answer = await answered(await call("POST", "/ui/api/v1/remediate", choice()));
    if (!answer) return;
    forget();
    await refresh(`Started ${answer.remediation_id} (${answer.status}).`);
  });
}

// A waiting run: approve or reject it.
document.getElementById("runs")?.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-approve], button[data-reject]");
  if (!b) return;
  say("");
  const [run, verb] = b.dataset.approve ? [b.dataset.approve, "approve"] : [b.dataset.reject, "reject"];
  const r = await call("POST", `/ui/api/v1/remediations/${encodeURIComponent(run)}/${verb}`, {});
  if (await answered(r)) await refresh(verb === "approve" ? "Approved." : "Rejected.");
});
