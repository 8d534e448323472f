// The dashboard in a real browser: the `vigil serve --demo` binary on a free
// loopback port, Debian's Chromium driven by playwright-core, axe-core for
// accessibility. scripts/test runs it after the Rust tests (VIGIL_BIN names the
// binary they built). Screenshots go to docs/images/ for the README.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
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
let moto;
let motoUrl;

/// A free loopback port.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// Polls `ready` every 100 ms for up to `ms`; fails naming `what`.
async function until(what, ms, ready) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/// A root console sign-in without MFA, now (written for these tests).
function rootLogin(eventId) {
  return {
    eventVersion: "1.08", eventTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    eventSource: "signin.amazonaws.com", eventName: "ConsoleLogin", awsRegion: "us-east-1",
    sourceIPAddress: "198.51.100.23", userAgent: "Mozilla/5.0", eventType: "AwsConsoleSignIn",
    recipientAccountId: "111122223333", eventID: eventId,
    responseElements: { ConsoleLogin: "Success" }, additionalEventData: { MFAUsed: "No" },
    userIdentity: { type: "Root", principalId: "111122223333", arn: "arn:aws:iam::111122223333:root", accountId: "111122223333" },
  };
}

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
  // moto_server (scripts/test installs it, pinned) stands in for AWS: the
  // playbooks started in the page call it. The demo's public-access finding is
  // about the bucket customer-exports, so it exists there.
  const motoBin = path.join(process.env.VIGIL_PY_BIN || path.join(os.homedir(), ".cache", "vigil", "venv", "bin"), "moto_server");
  assert.ok(fs.existsSync(motoBin), `${motoBin} is missing: scripts/test installs it (VIGIL_PY_BIN)`);
  const motoPort = await freePort();
  motoUrl = `http://127.0.0.1:${motoPort}`;
  moto = spawn(motoBin, ["-H", "127.0.0.1", "-p", String(motoPort)], { stdio: "ignore" });
  await until("moto_server to listen", 60_000, async () => (await fetch(`${motoUrl}/`)).ok);
  const bucket = await fetch(`${motoUrl}/customer-exports`, { method: "PUT" });
  assert.equal(bucket.status, 200, "the bucket is made in moto");
  const config = path.join(dataDir, "vigil.toml");
  fs.writeFileSync(
    config,
    [key, analyst]
      .map((k, i) => `[[api.keys]]\naccess_key_id = "${k.id}"\nsecret_access_key = "${k.secret}"\n` +
        `principal = "${i === 0 ? "adm" : "ana"}"\nrole = "${i === 0 ? "admin" : "analyst"}"\n`)
      .join("") + `[compliance]\nenabled = true\ninterval = "1h"\nsnapshot = ${JSON.stringify(snapshot)}\n` +
      // Playbooks run when a person starts them in the page, against moto.
      `[response]\nenabled = true\nautomatic = false\n` +
      `[[accounts]]\nid = "111122223333"\nname = "payments-prod"\nenvironment = "production"\nowner = "payments-team"\nregions = ["us-east-1"]\n`,
    { mode: 0o600 },
  );
  svc = spawn(VIGIL, ["serve", "--demo", "--listen", "127.0.0.1:0", "--config", config, "--data-dir", path.join(dataDir, "data")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      ...process.env,
      VIGIL_AWS_ENDPOINT_URL: motoUrl,
      AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      AWS_REGION: "us-east-1",
    },
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
  moto?.kill("SIGTERM");
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
  assert.match(status, /1 account monitored · 1 region/);
  assert.match(status, /last open incident/);
  // Each tile has its 30-day trend, drawn by the charting library on the
  // server, named for a screen reader.
  for (const tile of ["MTTD", "MTTR", "False positives", "Compliance", "Incidents, 24 h"]) {
    const chart = page.locator(".tile", { hasText: tile }).locator("svg.trend[role=img]");
    await chart.waitFor();
    assert.match(await chart.getAttribute("aria-label"), /per day over 30 days/);
  }
  // Today's incidents are on the incidents chart's last day.
  const opened = await page.locator(".tile", { hasText: "Incidents, 24 h" }).locator("svg.trend").getAttribute("aria-label");
  assert.match(opened, /latest [1-9]/, opened);
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

/// The open incident that holds a finding of the rule `ruleId`, by the API.
async function incidentOfRule(page, ruleId) {
  const list = await (await page.request.get(`${base}/ui/api/v1/incidents?limit=200`)).json();
  for (const i of list.items) {
    const view = await (await page.request.get(`${base}/ui/api/v1/incidents/${i.id}`)).json();
    for (const f of view.finding_ids) {
      const finding = await (await page.request.get(`${base}/ui/api/v1/findings/${f}`)).json();
      if (finding.detail.rule.id === ruleId) return i.id;
    }
  }
  throw new Error(`no incident holds a finding of rule ${ruleId}`);
}

test("a playbook planned, started and its gated step approved in the page runs", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  // The demo's "S3 Block Public Access removed" incident; PB-003 answers it
  // and is semi-automated: nothing runs before a person approves.
  const id = await incidentOfRule(page, "7b05ac37-f9be-46ac-9c4c-e06255106eef");
  await page.goto(`${base}/incidents/${id}`);
  const choice = page.getByLabel("Playbook");
  assert.match(await choice.inputValue(), /^PB-003$/, "the rule's playbook is offered first");
  // The start stays disabled until the dry-run plan has been shown.
  assert.equal(await page.getByRole("button", { name: "Start playbook" }).isDisabled(), true);
  await page.getByRole("button", { name: "Plan (dry run)" }).click();
  await page.getByRole("heading", { name: /^Plan: PB-003/ }).waitFor();
  const plan = await page.locator("#plan").innerText();
  assert.match(plan, /block-public-access/);
  assert.match(plan, /s3\.block_bucket_public_access/);
  assert.match(plan, /customer-exports/);
  assert.match(plan, /waits for approval/);
  assert.deepEqual(await axeViolations(page), []);
  // Nothing ran for the plan.
  let runs = await (await page.request.get(`${base}/ui/api/v1/remediations?incident_id=${id}`)).json();
  assert.equal(runs.items.length, 0, "a dry run starts nothing");
  await page.getByRole("button", { name: "Start playbook" }).click();
  const run = page.locator("article.run", { hasText: "PB-003" });
  await run.locator(".run-status", { hasText: "AWAITING_APPROVAL" }).waitFor();
  runs = await (await page.request.get(`${base}/ui/api/v1/remediations?incident_id=${id}`)).json();
  assert.equal(runs.items.length, 1);
  const runId = runs.items[0].id;
  assert.equal(runs.items[0].status, "AWAITING_APPROVAL");
  // The bucket is still open in moto: nothing has run.
  const before = await fetch(`${motoUrl}/customer-exports?publicAccessBlock`);
  assert.notEqual(before.status, 200, "no public access block before the approval");
  await run.getByRole("button", { name: "Approve" }).click();
  // The run moves on by itself; the page hears of it without a reload.
  await run.locator(".run-status", { hasText: "SUCCEEDED" }).waitFor({ timeout: 30_000 });
  const done = await (await page.request.get(`${base}/ui/api/v1/remediations/${runId}`)).json();
  assert.equal(done.status, "SUCCEEDED", JSON.stringify(done));
  const step = done.steps.find((s) => s.step_id === "block-public-access");
  assert.equal(step.status, "SUCCEEDED", JSON.stringify(step));
  assert.ok(done.steps.some((s) => s.approved_by === "adm"), JSON.stringify(done.steps));
  await page.locator("#runs .step-status", { hasText: "SUCCEEDED" }).first().waitFor();
  assert.deepEqual(await axeViolations(page), []);
  fs.mkdirSync(path.join(repo, "docs", "images"), { recursive: true });
  await page.screenshot({ path: path.join(repo, "docs", "images", "incident.png"), fullPage: true });
  // And in moto the bucket's public access block is on.
  const after = await fetch(`${motoUrl}/customer-exports?publicAccessBlock`);
  assert.equal(after.status, 200);
  assert.match(await after.text(), /<BlockPublicAcls>true<\/BlockPublicAcls>/);
  // The approval is in the audit chain, under the signed-in person.
  const audit = await (await page.request.get(`${base}/ui/api/v1/audit?limit=200`)).json();
  assert.ok(
    audit.items.some((a) => a.action === "remediation approve" && a.target === runId && /adm/.test(a.principal)),
    JSON.stringify(audit.items.slice(0, 5)),
  );
  assert.deepEqual(errors, []);
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

test("findings: filtered, found by number, one finding with its evidence and raw record", async () => {
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
  const stored = JSON.parse(await page.locator("pre.finding-body").innerText());
  assert.equal(stored.id, api.items[0].id);
  assert.equal(stored.detail.finding_id, number);
  // The CloudTrail record behind it, as it arrived.
  await page.getByRole("heading", { name: /^Records as they arrived \([1-9]\)/ }).waitFor();
  const record = JSON.parse(await page.locator("pre.record").first().innerText());
  assert.equal(record.eventID, stored.detail.event_ids[0]);
  assert.ok(record.eventName && record.userIdentity, JSON.stringify(record));
  const records = await (await page.request.get(`${base}/ui/api/v1/findings/${number}/records`)).json();
  assert.deepEqual(records.items[0].record, record);
  assert.deepEqual(errors, []);
  assert.deepEqual(await axeViolations(page), []);
  await context.close();
});

test("accounts, playbooks and rules: the registry with posture, what is loaded, test cases and ATT&CK", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  await page.getByRole("link", { name: "Accounts" }).click();
  const row = page.locator("#accounts-table tbody tr", { hasText: "111122223333" });
  await row.waitFor();
  const cells = await row.locator("td").allInnerTexts();
  assert.equal(cells[0], "payments-prod");
  assert.equal(cells[1], "production");
  assert.ok(Number(cells[4]) + Number(cells[5]) > 0, `open incidents counted: ${cells}`);
  assert.deepEqual(await axeViolations(page), []);

  await page.getByRole("link", { name: "Playbooks" }).click();
  const loaded = await (await page.request.get(`${base}/ui/api/v1/playbooks`)).json();
  assert.equal(await page.locator("#playbooks-table tbody tr").count(), loaded.items.length);
  await page.getByRole("link", { name: "PB-003" }).click();
  await page.getByRole("heading", { name: /^PB-003/ }).waitFor();
  await page.getByText("s3.block_bucket_public_access").first().waitFor();
  assert.deepEqual(await axeViolations(page), []);

  await page.getByRole("link", { name: "Rules" }).click();
  const total = await page.locator("#rules-table tbody tr").count();
  assert.ok(total >= 33, `every rule is listed (${total})`);
  await page.getByLabel("Words").fill("public access");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("link", { name: "S3 Block Public Access removed or weakened" }).click();
  await page.getByText("T1530").waitFor();
  const tactics = await page.locator("dt:has-text('ATT&CK tactics') + dd").innerText();
  assert.match(tactics, /defense-evasion/);
  const cases = await page.getByRole("heading", { name: /Test cases \((\d+)\)/ }).innerText();
  assert.ok(Number(cases.match(/\((\d+)\)/)[1]) >= 2, cases);
  await page.getByText("must not match").first().waitFor();
  await page.getByText("DeleteBucketPublicAccessBlock").first().waitFor();
  assert.deepEqual(await axeViolations(page), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test("live: a new finding and an incident change appear without a reload", async () => {
  const { context, page, errors } = await open();
  await signIn(page, key.id, key.secret);
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/findings`);
  await page.locator("body[data-live-state=on]").waitFor();
  const before = await page.locator("#list tbody tr").count();
  // Telemetry arrives: a root sign-in dropped into the inbox.
  const inbox = path.join(dataDir, "data", "inbox");
  const staged = path.join(dataDir, "root-login.json");
  fs.writeFileSync(staged, JSON.stringify({ Records: [rootLogin("e2e-live-root-1")] }));
  fs.renameSync(staged, path.join(inbox, "root-login.json"));
  await page.locator("#list tbody tr", { hasText: "Root" }).first().waitFor({ timeout: 30_000 });
  assert.ok((await page.locator("#list tbody tr").count()) > before || before === 50);
  await page.locator("#live-note", { hasText: "new finding" }).waitFor();

  // Another person acknowledges an incident; this page, open on it, shows it.
  await page.goto(`${base}/incidents?status=OPEN`);
  const link = page.locator("#list tbody tr td a").first();
  const href = await link.getAttribute("href");
  await link.click();
  await page.locator("body[data-live-state=on]").waitFor();
  assert.equal(await page.locator("#incident-status").innerText(), "OPEN");
  const other = await open();
  await signIn(other.page, key.id, key.secret);
  await other.page.waitForURL(`${base}/`);
  const csrf = await other.page.locator('meta[name="csrf-token"]').getAttribute("content");
  const r = await other.page.request.post(`${base}/ui${href.replace("/incidents/", "/api/v1/incidents/")}/acknowledge`, {
    headers: { "x-csrf-token": csrf },
  });
  assert.equal(r.status(), 200);
  await page.locator("#incident-status", { hasText: "ACKNOWLEDGED" }).waitFor({ timeout: 10_000 });
  await page.locator("#timeline li", { hasText: "ACKNOWLEDGED" }).waitFor();
  await other.context.close();
  assert.deepEqual(errors, []);
  await context.close();
});
