// Open a page in headless Chromium through the DevTools protocol, let it
// run for a while (live pages keep event streams open, which headless
// --dump-dom cannot wait for), then print its DOM and save a screenshot.
//
//   node --experimental-websocket snapshot.mjs CHROMIUM URL WAIT_MS SCREENSHOT.png
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, url, waitMs, shot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "polysync-chromium-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
  `--user-data-dir=${profile}`, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
  "--window-size=1200,800", "about:blank",
], { stdio: "ignore" });
const exited = new Promise((r) => browser.once("exit", r));
// Stop the browser and wait for it, then remove its profile.
async function finish(code) {
  try { browser.kill("SIGKILL"); } catch {}
  await exited;
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch {}
  process.exit(code);
}
setTimeout(() => { console.error("gave up after 60 s"); finish(3); }, 60000).unref();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let port;
for (let i = 0; i < 200 && !port; i++) {
  const f = join(profile, "DevToolsActivePort");
  if (existsSync(f)) port = readFileSync(f, "utf8").split("\n")[0];
  else await sleep(50);
}
if (!port) { console.error("chromium did not open its DevTools port"); await finish(2); }
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = targets.find((t) => t.type === "page");
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r, e) => { ws.onopen = r; ws.onerror = e; });
let next = 0;
const waiting = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
};
const call = (method, params = {}) => new Promise((resolve) => {
  const id = ++next;
  waiting.set(id, resolve);
  ws.send(JSON.stringify({ id, method, params }));
});
await call("Page.enable");
await call("Page.navigate", { url });
await sleep(Number(waitMs));
const dom = await call("Runtime.evaluate", { expression: "document.documentElement.outerHTML", returnByValue: true });
process.stdout.write(dom.result.result.value + "\n");
const png = await call("Page.captureScreenshot", { format: "png" });
writeFileSync(shot, Buffer.from(png.result.data, "base64"));
ws.close();
await finish(0);
