// The web view of `operonx serve`, used as a person would, in Debian's headless Chromium:
// open the runs list, start a run from the page, watch it finish on its run page (tree,
// timeline, result), start one that asks a question and answer it there; then the same
// server with tokens: the page asks for a token once and shows that tenant's runs only.
//
//   node web.mjs OPERONX_BINARY [SCREENSHOT.png]
//
// Exits non-zero, saying what failed, on any difference.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const binary = resolve(process.argv[2] || "target/debug/operonx");
const screenshot = process.argv[3];
const graphs = resolve(here, "..", "graphs");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

function fail(message) {
  console.error("web view test failed: " + message);
  process.exitCode = 1;
  throw new Error(message);
}

// Start `operonx serve` on a free port; resolves with its base URL once it listens.
function serve(dir, extra) {
  const child = spawn(binary, ["serve", "--graphs", graphs, "--store", join(dir, "runs.db"),
    "--trace-store", join(dir, "traces.db"), "--bind", "127.0.0.1:0", ...extra], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((ok, ko) => {
    let err = "";
    const timer = setTimeout(() => ko(new Error("the server did not start: " + err)), TIMEOUT);
    child.stderr.on("data", (d) => {
      err += d.toString();
      const m = err.match(/on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); ok({ child, base: m[1] }); }
    });
    child.on("exit", (code) => ko(new Error(`the server exited (${code}): ${err}`)));
  });
}

async function expectText(locator, pattern, what) {
  try {
    await locator.filter({ hasText: pattern }).first().waitFor({ timeout: TIMEOUT });
  } catch (e) {
    fail(`${what}: expected ${pattern}, page shows: ${await locator.first().innerText().catch(() => "(nothing)")}`);
  }
}

async function startRun(page, base, graph, inputs) {
  await page.goto(base + "/");
  await page.locator("#start-form").waitFor({ timeout: TIMEOUT });
  await page.selectOption("#start-graph", graph);
  await page.fill("#start-inputs", JSON.stringify(inputs));
  await Promise.all([page.waitForURL(/\/runs\/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, { timeout: TIMEOUT }), page.click("#start-button")]);
  return page.url().split("/").pop();
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "operonx-web-"));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const servers = [];
  try {
    const { child, base } = await serve(dir, []);
    servers.push(child);
    const page = await browser.newPage();
    page.on("pageerror", (e) => fail("script error on the page: " + e.message));

    // The list, empty at first.
    await page.goto(base + "/");
    await page.locator("#no-runs").waitFor({ timeout: TIMEOUT });

    // A run started from the page finishes on its run page: status, result, tree, timeline.
    const id = await startRun(page, base, "greet", { text: "Hello Web" });
    await expectText(page.locator("#run-head"), /done/, "the run's status");
    await expectText(page.locator("#result"), /hello web/, "the run's result");
    await expectText(page.locator("#tree"), /low/, "the run's tree");
    await expectText(page.locator("#timeline"), /low/, "the run's timeline");
    await expectText(page.locator("#events li"), /result/, "the run's live events");

    // A run that asks: the page shows the question and a form; answering finishes it.
    const asking = await startRun(page, base, "approve", {});
    await expectText(page.locator("#answer-form"), /Ship it\?/, "the question");
    await page.fill('input[data-interrupt="main.ask"]', "Approved");
    await page.click("#answer-button");
    await expectText(page.locator("#run-head"), /done/, "the answered run's status");
    await expectText(page.locator("#result"), /approved/, "the answered run's result");

    // Both runs are listed, with their ids, filtered by status.
    await page.goto(base + "/");
    for (const run of [id, asking]) {
      await expectText(page.locator("#runs tbody tr"), new RegExp(run), "the runs list");
    }
    await page.goto(base + "/?status=waiting");
    await page.locator("#no-runs").waitFor({ timeout: TIMEOUT });
    await page.goto(base + "/");
    await page.locator("#runs tbody tr").first().waitFor({ timeout: TIMEOUT });
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

    // With tokens: the page asks once, then shows only that tenant's runs.
    const tokens = join(dir, "tokens.yaml");
    writeFileSync(tokens, "acme: acme-token-0123456789abcdef\nglobex: globex-token-0123456789abcdef\n");
    const secured = await serve(dir, ["--tokens", tokens]);
    servers.push(secured.child);
    const p2 = await browser.newPage();
    p2.on("pageerror", (e) => fail("script error on the page: " + e.message));
    await p2.goto(secured.base + "/");
    await p2.locator("#token-form").waitFor({ timeout: TIMEOUT });
    await p2.fill("#token", "globex-token-0123456789abcdef");
    await p2.click('#token-form button[type="submit"]');
    await p2.locator("#no-runs").waitFor({ timeout: TIMEOUT });
    const own = await startRun(p2, secured.base, "greet", { text: "Tenant" });
    await expectText(p2.locator("#result"), /tenant/, "the tenant's run");
    await p2.goto(secured.base + "/");
    await p2.locator("#runs tbody tr").first().waitFor({ timeout: TIMEOUT });
    const rows = await p2.locator("#runs tbody tr").allInnerTexts();
    if (rows.length !== 1 || !rows[0].includes(own)) fail("the tenant sees other runs: " + rows.join(" | "));
    console.log("web view: ok");
  } finally {
    await browser.close();
    for (const s of servers) s.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { if (!process.exitCode) { console.error(e); process.exitCode = 1; } });
