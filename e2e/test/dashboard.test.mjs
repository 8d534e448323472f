// The dashboard in a real browser: the `vigil serve --demo` binary on a free
// loopback port, Debian's Chromium driven by playwright-core, axe-core for
// accessibility. scripts/test runs it after the Rust tests (VIGIL_BIN names the
// binary they built). Screenshots go to docs/images/ for the README.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const VIGIL = process.env.VIGIL_BIN;
const CHROMIUM = process.env.VIGIL_CHROMIUM || "/usr/bin/chromium";
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

let svc;
let base;
let dataDir;
let browser;
let key;
let analyst;

/// Waits for a line of the service's log matching `re`; its match.
function waitForLog(child, re, ms) {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms:\n${seen}`)), ms);
    child.stderr.on("data", (chunk) => {
      seen += chunk.toString();
      const m = seen.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

before(async () => {
  assert.ok(VIGIL, "VIGIL_BIN names the vigil binary (scripts/test sets it)");
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-e2e-"));
  // An admin and an analyst (made-up keys, for this run only).
  key = { id: "AKIAE2EADMIN0000001", secret: "e2e-admin-secret-000000000000000000000001" };
  analyst = { id: "AKIAE2EANALYST00001", secret: "e2e-analyst-secret-0000000000000000000001" };
  // An inventory snapshot to assess (one account, one bucket that does not
  // insist on TLS), so that the compliance pages have something to show.
  const snapshot = path.join(dataDir, "inventory.json");
  fs.writeFileSync(
    snapshot,
    JSON.stringify({
      version: 1,
      collected_at: new Date().toISOString(),
      collector: "e2e",
      accounts: [
        {
          account_id: "111122223333",
          regions: ["us-east-1"],
          s3: { buckets: [{ name: "ledger", region: "us-east-1", policy: null }] },
          regional: { "us-east-1": {} },
        },
      ],
    }),
  );
  const config = path.join(dataDir, "vigil.toml");
  fs.writeFileSync(
    config,
    [key, analyst]
      .map((k, i) => `[[api.keys]]\naccess_key_id = "${k.id}"\nsecret_access_key = "${k.secret}"\n` +
        `principal = "${i === 0 ? "adm" : "ana"}"\nrole = "${i === 0 ? "admin" : "analyst"}"\n`)
      .join("") + `[compliance]\nenabled = true\ninterval = "1h"\nsnapshot = ${JSON.stringify(snapshot)}\n`,
    { mode: 0o600 },
  );
  svc = spawn(VIGIL, ["serve", "--demo", "--listen", "127.0.0.1:0", "--config", config, "--data-dir", path.join(dataDir, "data")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const listening = waitForLog(svc, /listening on (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
  const replayed = waitForLog(svc, /demo: replayed/, 120_000);
  base = (await listening)[1];
  await replayed;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  svc?.kill("SIGTERM");
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/// A page that records console errors and uncaught exceptions.
async function open() {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  return { context, page, errors };
}

async function signIn(page, id, secret) {
  await page.goto(`${base}/login`);
  await page.getByLabel("Access key id").fill(id);
  await page.getByLabel("Secret access key").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/// axe-core's serious and critical violations on the page as it is.
async function axeViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`);
}

test("a wrong secret is refused and nothing is signed in", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, "not-the-secret-at-all");
  await page.getByText("sign-in refused").waitFor();
  assert.match(page.url(), /\/login$/);
  const r = await page.request.get(`${base}/ui/api/v1/metrics`);
  assert.equal(r.status(), 401);
  // The refused sign-in answers 403, which the browser logs; nothing else.
  assert.deepEqual(errors.filter((e) => !/403/.test(e)), []);
  assert.deepEqual(await axeViolations(page), []);
  await context.close();
});

test("signed in, the overview shows the demo's data", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const status = await page.locator("#status-line").innerText();
  assert.match(status, /accounts monitored/);
  assert.match(status, /last open incident/);
  for (const tile of ["MTTD", "MTTR", "False positives", "Compliance", "Incidents, 24 h"]) {
    await page.locator(".tile", { hasText: tile }).waitFor();
  }
  const threatRows = await page.locator("section[aria-labelledby=threats-title] tbody tr").count();
  assert.ok(threatRows >= 1, "the threat table has rows");
  const heading = await page.getByRole("heading", { name: /Open incidents \((\d+)\)/ }).innerText();
  const openCount = Number(heading.match(/\((\d+)\)/)[1]);
  assert.ok(openCount > 0, heading);
  // The page's session sees what the API sees.
  const api = await (await page.request.get(`${base}/ui/api/v1/incidents?status=OPEN,ACKNOWLEDGED,REMEDIATING&limit=1000`)).json();
  assert.equal(openCount, api.items.length);
  assert.deepEqual(errors, []);
  assert.deepEqual(await axeViolations(page), []);
  fs.mkdirSync(path.join(repo, "docs", "images"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "images", "overview.png"), fullPage: true });
  // Signing out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${base}/login`);
  assert.equal((await page.request.get(`${base}/ui/api/v1/metrics`)).status(), 401);
  await context.close();
});

/// The first open incident's page, from the list.
async function firstOpenIncident(page) {
  await page.goto(`${base}/incidents?status=OPEN`);
  await page.getByRole("heading", { name: "Incidents" }).waitFor();
  const link = page.locator("tbody tr td a").first();
  const title = await link.innerText();
  await link.click();
  await page.getByRole("heading", { name: title }).waitFor();
  return page.url().split("/incidents/")[1];
}

test("an incident acknowledged and resolved in the page is so in the API", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  // The list filters by status and links to each incident.
  const id = await firstOpenIncident(page);
  assert.equal(await page.locator("#incident-status").innerText(), "OPEN");
  for (const part of ["Timeline", "Findings", "Remediation runs"]) {
    await page.getByRole("heading", { name: new RegExp(`^${part}`) }).waitFor();
  }
  assert.deepEqual(await axeViolations(page), []);
  fs.mkdirSync(path.join(repo, "docs", "images"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "images", "incident.png"), fullPage: true });
  await page.getByRole("button", { name: "Acknowledge" }).click();
  await page.locator("#incident-status", { hasText: "ACKNOWLEDGED" }).waitFor();
  let api = await (await page.request.get(`${base}/ui/api/v1/incidents/${id}`)).json();
  assert.equal(api.status, "ACKNOWLEDGED");
  await page.getByLabel("Note").fill("checked the key's last use");
  await page.getByRole("button", { name: "Add note" }).click();
  await page.getByText("checked the key's last use").waitFor();
  await page.getByRole("button", { name: "Resolve" }).click();
  await page.locator("#incident-status", { hasText: "RESOLVED" }).waitFor();
  api = await (await page.request.get(`${base}/ui/api/v1/incidents/${id}`)).json();
  assert.equal(api.status, "RESOLVED");
  assert.ok(api.timeline.some((t) => t.actor === "adm" && /RESOLVED/.test(t.text)), JSON.stringify(api.timeline));
  assert.deepEqual(errors, []);
  await context.close();
});

test("an analyst sees no actions, and forged or tokenless posts are refused", async () => {
  const { context, page, errors } = await open();
  await signIn(page, analyst.id, analyst.secret);
  await page.waitForURL(`${base}/`);
  const id = await firstOpenIncident(page);
  assert.equal(await page.locator("section.actions").count(), 0, "no action buttons for an analyst");
  assert.equal(await page.getByRole("button", { name: "Acknowledge" }).count(), 0);
  // A forged post with the session's own CSRF token: the role refuses it.
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
  const forged = await page.request.post(`${base}/ui/api/v1/incidents/${id}/acknowledge`, {
    headers: { "x-csrf-token": csrf },
  });
  assert.equal(forged.status(), 403);
  // Without the token (as another site's form would post): refused before the role.
  const tokenless = await page.request.post(`${base}/ui/api/v1/incidents/${id}/acknowledge`);
  assert.equal(tokenless.status(), 403);
  assert.match((await tokenless.json()).message, /CSRF/);
  const api = await (await page.request.get(`${base}/ui/api/v1/incidents/${id}`)).json();
  assert.equal(api.status, "OPEN");
  assert.deepEqual(errors, []);
  await context.close();
});

test("compliance: each framework's score, and a framework's failed controls with their resources", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  // The first assessment runs at start; wait for it.
  for (let i = 0; i < 100; i++) {
    await page.goto(`${base}/compliance`);
    if ((await page.locator("tbody tr").count()) > 0) break;
    await page.waitForTimeout(200);
  }
  await page.getByRole("link", { name: "CIS" }).click();
  await page.locator("#framework-score").waitFor();
  assert.match(await page.locator("#framework-score").innerText(), /%/);
  const failed = await page.getByRole("heading", { name: /Failed controls \((\d+)\)/ }).innerText();
  assert.ok(Number(failed.match(/\((\d+)\)/)[1]) > 0, failed);
  await page.getByText("arn:aws:s3:::ledger").first().waitFor();
  const api = await (await page.request.get(`${base}/ui/api/v1/compliance/CIS`)).json();
  assert.equal(Number(failed.match(/\((\d+)\)/)[1]), api.failed_controls.length);
  assert.deepEqual(errors, []);
  assert.deepEqual(await axeViolations(page), []);
  fs.mkdirSync(path.join(repo, "docs", "images"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "images", "compliance.png") });
  await context.close();
});

test("findings: filtered, found by number, one finding with its evidence and record", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/findings?severity=HIGH`);
  const rows = page.locator("tbody tr");
  const n = await rows.count();
  assert.ok(n > 0, "the demo has HIGH findings");
  const api = await (await page.request.get(`${base}/ui/api/v1/findings?severity=HIGH&limit=50`)).json();
  assert.equal(n, api.items.length);
  for (const sev of await rows.locator("td:nth-child(2)").allInnerTexts()) assert.equal(sev, "HIGH");
  // Found by its number: straight to its page.
  const number = api.items[0].detail.finding_id;
  await page.getByLabel("Id or number").fill(number);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("heading", { name: api.items[0].detail.title }).waitFor();
  await page.getByRole("heading", { name: "Evidence" }).waitFor();
  const stored = JSON.parse(await page.locator("pre.raw").innerText());
  assert.equal(stored.id, api.items[0].id);
  assert.equal(stored.detail.finding_id, number);
  assert.deepEqual(errors, []);
  assert.deepEqual(await axeViolations(page), []);
  await context.close();
});
