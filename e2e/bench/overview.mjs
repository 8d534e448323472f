// The dashboard's overview over a large store, timed in the browser: scripts/bench
// (VIGIL_BENCH_ONLY=dashboard) fills a store with VIGIL_BENCH_FINDINGS findings,
// then runs this with VIGIL_BIN (a release vigil) and VIGIL_BENCH_STORE (its data
// directory). It serves the store, signs in in Debian's Chromium, loads the
// overview ROUNDS times and prints one table of the browser's own Navigation
// Timing: the server's answer (request sent to first byte), the page parsed, and
// the page loaded. Not a test: nothing is asserted.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const VIGIL = process.env.VIGIL_BIN;
const STORE = process.env.VIGIL_BENCH_STORE;
const FINDINGS = process.env.VIGIL_BENCH_FINDINGS || "?";
const CHROMIUM = process.env.VIGIL_CHROMIUM || "/usr/bin/chromium";
const ROUNDS = Number(process.env.VIGIL_BENCH_DASHBOARD_ROUNDS || 30);
if (!VIGIL || !STORE) {
  console.error("usage: VIGIL_BIN=… VIGIL_BENCH_STORE=… node bench/overview.mjs");
  process.exit(2);
}

const key = { id: "AKIABENCHDASH000001", secret: "bench-dashboard-secret-000000000000001" };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-dash-"));
const config = path.join(dir, "vigil.toml");
fs.writeFileSync(
  config,
  `[[api.keys]]\naccess_key_id = "${key.id}"\nsecret_access_key = "${key.secret}"\nprincipal = "bench"\nrole = "admin"\n` +
    // Nothing but the store: no inbox or HTTP source to start.
    `[[sources]]\ntype = "http"\n`,
  { mode: 0o600 },
);

const svc = spawn(VIGIL, ["serve", "--listen", "127.0.0.1:0", "--config", config, "--data-dir", STORE], {
  stdio: ["ignore", "ignore", "pipe"],
});
const base = await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`vigil serve did not start:\n${seen}`)), 300_000);
  svc.stderr.on("data", (chunk) => {
    seen += chunk.toString();
    const m = seen.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    if (m) {
      clearTimeout(timer);
      resolve(m[1]);
    }
  });
});

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.getByLabel("Access key id").fill(key.id);
  await page.getByLabel("Secret access key").fill(key.secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/`);

  const server = [];
  const parsed = [];
  const loaded = [];
  let open = "";
  for (let i = 0; i <= ROUNDS; i++) {
    await page.goto(`${base}/`, { waitUntil: "load" });
    const t = await page.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0];
      return { server: n.responseStart - n.requestStart, parsed: n.domContentLoadedEventEnd - n.startTime, loaded: n.loadEventEnd - n.startTime };
    });
    if (i === 0) {
      // The first load warms the store's pages; it is not counted.
      open = await page.getByRole("heading", { name: /Open incidents/ }).innerText();
      continue;
    }
    server.push(t.server);
    parsed.push(t.parsed);
    loaded.push(t.loaded);
  }
  const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  };
  const row = (name, xs) =>
    console.log(`| ${name} | ${xs.length} | ${pct(xs, 0.5).toFixed(1)} | ${pct(xs, 0.9).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`);
  console.log(`\nThe dashboard's overview over ${FINDINGS} findings (${open}), in Chromium ${browser.version()}, loopback; goal: loaded under 1,000 ms\n`);
  console.log("| overview, Navigation Timing | loads | p50 ms | p90 ms | max ms |");
  console.log("|---|---|---|---|---|");
  row("request sent → first byte (the server's work)", server);
  row("navigation → DOM parsed", parsed);
  row("navigation → loaded (styles, script, charts)", loaded);
  await context.close();
} finally {
  await browser.close();
  svc.kill("SIGTERM");
  fs.rmSync(dir, { recursive: true, force: true });
}
