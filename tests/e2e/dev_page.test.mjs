// End-to-end test of the dev-mode page (web/dev/index.html, compiled into the server) in headless
// Chromium: the real server binary, the real JS client it serves, the real HTTP API.
//
//   cd tests/e2e && npm install && node --test
//
// Environment:
//   REALTIME_SERVER  server binary (default ../../build/release/realtime-server from this file)
//   CHROMIUM         browser binary (default /usr/bin/chromium; playwright-core downloads none)
//   E2E_OUTPUT_DIR   where the screenshot goes (default tests/e2e/output/)
//
// Every wait has a deadline; the servers and the browser are killed in cleanup.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

import { freePort, sleep, until } from "../integration/node/net_helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = process.env.REALTIME_SERVER || path.resolve(here, "../../build/release/realtime-server");
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
const OUTPUT_DIR = process.env.E2E_OUTPUT_DIR || path.join(here, "output");

const STARTUP_MS = 15_000;   // server start, browser launch
const UI_MS = 10_000;        // anything the page should show after an action
const HTTP_MS = 5_000;       // one HTTP request to the server
const STOP_MS = 5_000;       // SIGTERM before SIGKILL

const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

// ---- helpers ----------------------------------------------------------------------------------

// freePort, sleep and until: ../integration/node/net_helpers.mjs.

// The CA of each TLS server's base URL: fetch() takes no CA, so those requests go through https.
const trustedCa = new Map();

function httpsFetch(url, { method, headers, body, ca }) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca, timeout: HTTP_MS }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { text += chunk; });
      res.on("end", () => {
        const response = { status: res.statusCode, text: async () => text, json: async () => JSON.parse(text) };
        response.clone = () => response;
        resolve(response);
      });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

function http(base, pathname, { method = "GET", key, body } = {}) {
  const headers = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (trustedCa.has(base)) {
    return httpsFetch(base + pathname, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), ca: trustedCa.get(base) });
  }
  return fetch(base + pathname, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_MS),
  });
}

async function publish(base, key, topic, message) {
  const response = await http(base, "/api/publish", { method: "POST", key, body: { topic, message } });
  assert.equal(response.status, 200, `POST /api/publish: ${response.status} ${await response.clone().text()}`);
  return (await response.json()).delivered;
}

// A running realtime-server: its base URL, its output so far, and a stop() that always ends it.
// `tls`: { cert, key, ca } file paths; the server then serves https:// and wss:// only.
async function startServer(extraArgs, tls = null) {
  assert.ok(existsSync(SERVER), `server binary not found: ${SERVER} (build it, or set REALTIME_SERVER)`);
  const port = await freePort();
  const tlsArgs = tls ? ["--tls-cert", tls.cert, "--tls-key", tls.key] : [];
  if (tls) trustedCa.set(`https://127.0.0.1:${port}`, readFileSync(tls.ca, "utf8"));
  const child = spawn(SERVER, ["--port", String(port), "--host", "127.0.0.1", "--threads", "1", ...tlsArgs, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    // Dev mode is "no secret and no key from any source": keep the caller's environment out of it.
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REALTIME_"))),
  });
  const server = { port, base: `${tls ? "https" : "http"}://127.0.0.1:${port}`, child, stdout: "", stderr: "", exited: null };
  child.stdout.on("data", (chunk) => { server.stdout += chunk; });
  child.stderr.on("data", (chunk) => { server.stderr += chunk; });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => {
    server.exited = { code, signal };
    resolve();
  }));
  server.stop = async () => {
    if (server.exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_MS);
    await exited;
    clearTimeout(timer);
  };
  try {
    await until(`the server on port ${port} to answer /health/realtime`, STARTUP_MS, async () => {
      if (server.exited) {
        throw Object.assign(new Error(`server exited early (${JSON.stringify(server.exited)}): ${server.stderr}`), { fatal: true });
      }
      const response = await http(server.base, "/health/realtime");
      return response.status === 200;
    });
  } catch (err) {
    await server.stop();
    throw new Error(`${err.message}\nstdout:\n${server.stdout}\nstderr:\n${server.stderr}`);
  }
  return server;
}

// The API key a dev-mode server printed in its banner.
function devApiKey(server) {
  return until("the API key in the dev-mode banner", STARTUP_MS, () => /^\s*API key\s*:\s*(\S+)\s*$/m.exec(server.stdout)?.[1]);
}

// An HS256 token signed with the JWT secret a dev-mode server printed in its banner.
function signToken(server, claims) {
  const secret = /^\s*JWT secret\s*:\s*(\S+)\s*$/m.exec(server.stdout)?.[1];
  assert.ok(secret, "the JWT secret in the dev-mode banner");
  const now = Math.floor(Date.now() / 1000);
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({ iat: now, exp: now + 600, ...claims })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

// Chromium with a fresh profile, on `url`; close() ends it and removes the profile.
async function openPage(url) {
  const profileDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: BROWSER, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 }, timeout: STARTUP_MS,
  });
  context.setDefaultTimeout(UI_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url, { timeout: UI_MS });
  return {
    page,
    close: async () => {
      await context.close().catch(() => {});
      await rm(profileDir, { recursive: true, force: true });
    },
  };
}

// ---- the dev-mode page ------------------------------------------------------------------------

describe("dev page (server in dev mode)", { timeout: 120_000 }, () => {
  let server, apiKey, context, page, profileDir;
  const pageErrors = [];

  before(async () => {
    // Presence on the test's e2e:* rooms; `demo`, the page's default topic, has none.
    server = await startServer(["--presence", "e2e:*"]);
    apiKey = await until("the API key in the dev-mode banner", STARTUP_MS, () => {
      const match = /^\s*API key\s*:\s*(\S+)\s*$/m.exec(server.stdout);
      return match && match[1];
    });
    profileDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-chromium-"));
    // launchPersistentContext is how Playwright takes a --user-data-dir of our choosing: a fresh one.
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: BROWSER,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: STARTUP_MS,
    });
    context.setDefaultTimeout(UI_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => { if (msg.type() === "error") pageErrors.push(`console: ${msg.text()}`); });
  });

  after(async () => {
    await context?.close().catch(() => {});
    await server?.stop();
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  });

  const text = (selector) => page.locator(selector).innerText();
  const subscription = (topic) => page.locator(`#subscriptions li[data-topic="${topic}"]`);
  const messages = (selector = "") => page.locator(`#messages .message${selector}`);

  async function subscribeThroughForm(topic) {
    await page.fill("#topic-input", topic);
    await page.click("#subscribe-button");
  }

  test("the banner points at the page, and the page and the client are served", async () => {
    assert.match(server.stdout, /DEV MODE/);
    assert.ok(server.stdout.includes(`open ${server.base}/ in a browser`), server.stdout);
    assert.match(server.stdout, /^\s*Publish\s*: clients may publish to demo:\*\* \(--publish-patterns\)$/m);
    const check = await (await http(server.base, `/dev/check-origin?origin=${encodeURIComponent(server.base)}`)).json();
    assert.equal(check.allowed, true, "no --allowed-origins: every origin is allowed");
    const client = await http(server.base, "/realtime-client.js");
    assert.equal(client.status, 200);
    assert.match(client.headers.get("content-type"), /javascript/);
    assert.match(await client.text(), /RealtimeClient/);
    const index = await http(server.base, "/");
    assert.equal(index.status, 200);
    assert.match(index.headers.get("content-type"), /text\/html/);
    const html = await index.text();
    assert.ok(!html.includes("__REALTIME_DEV_TOKEN__") && !html.includes("__REALTIME_API_KEY__"), "placeholders left in the page");
    assert.ok(html.includes(apiKey), "the page carries this run's API key");
  });

  test("connects and shows its state, connection id and user", async () => {
    await page.goto(server.base + "/", { timeout: UI_MS });
    await page.waitForFunction(() => document.getElementById("state")?.textContent === "connected", null, { timeout: UI_MS });
    assert.match(await text("#connection-id"), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(await text("#user"), /dev-user/);
    const connections = await (await http(server.base, "/api/connections", { key: apiKey })).json();
    assert.equal(connections.count, 1);
    // The page subscribes to the default topic on its own.
    await subscription("demo").and(page.locator('[data-status="subscribed"]')).waitFor();
  });

  const room = `e2e:room-${process.pid}`;

  test("subscribes through the form and shows a message published through the HTTP API", async () => {
    await subscribeThroughForm(room);
    await subscription(room).and(page.locator('[data-status="subscribed"]')).waitFor();
    assert.equal(await publish(server.base, apiKey, room, { type: "e2e-check", text: "hello from the test" }), 1);
    const message = messages(`[data-type="e2e-check"]`);
    await message.waitFor();
    assert.equal(await message.count(), 1);
    const shown = await message.innerText();
    assert.ok(shown.includes("hello from the test"), shown);
    assert.ok(shown.includes(room), shown);
    assert.match(shown, /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/, "the server's timestamp is shown");
  });

  test("shows who is on a subscribed topic with presence, and follows another user's join and leave", async () => {
    const members = subscription(room).locator(".presence .member");
    await subscription(room).locator('.presence .member[data-user-id="dev-user"]').waitFor();
    assert.equal(await members.count(), 1);
    assert.equal(await subscription("demo").locator(".presence").count(), 0, "demo has no presence: no list");

    // Another user, with a name in the token's info claim, joins from a WebSocket the page opens.
    const token = signToken(server, { "user-id": "e2e-guest", roles: ["user"], info: { name: "Grace Hopper" } });
    await page.evaluate(async ({ token, room }) => {
      const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
      window.e2eGuest = ws;
      await new Promise((resolve, reject) => {
        ws.onmessage = (event) => {
          const message = JSON.parse(event.data);
          if (message.type === "connected") ws.send(JSON.stringify({ action: "subscribe", topic: room, ref: "g1" }));
          if (message.type === "subscribed") resolve();
        };
        ws.onerror = () => reject(new Error("the guest connection failed"));
      });
    }, { token, room });
    const guest = subscription(room).locator('.presence .member[data-user-id="e2e-guest"]');
    await guest.waitFor();
    assert.equal(await guest.innerText(), "e2e-guest Grace Hopper");
    assert.equal(await members.count(), 2);
    assert.equal(await subscription(room).locator(".presence").getAttribute("data-count"), "2");
    await messages(`[data-type="presence-join"]`).filter({ hasText: "e2e-guest" }).waitFor();

    await page.evaluate(() => window.e2eGuest.close());
    await guest.waitFor({ state: "detached" });
    assert.equal(await members.count(), 1);
    await messages(`[data-type="presence-leave"]`).filter({ hasText: "e2e-guest" }).waitFor();
    await subscription(room).locator(".topic").click();
  });

  test("a refused subscription shows its code", async () => {
    await subscribeThroughForm("user:intruder");
    const refused = subscription("user:intruder").and(page.locator('[data-status="refused"]'));
    await refused.waitFor();
    assert.equal(await refused.getAttribute("data-code"), "forbidden");
    assert.match(await refused.innerText(), /forbidden/);
    // The connection survives a refusal.
    assert.equal(await text("#state"), "connected");
  });

  test("the curl line publishes to the selected topic, and works when pasted in a shell", async () => {
    await subscription(room).locator(".topic").click();
    const curl = await text("#curl");
    assert.ok(curl.startsWith(`curl -s -X POST ${server.base}/api/publish `), curl);
    assert.ok(curl.includes(`'Authorization: Bearer ${apiKey}'`), curl);
    assert.ok(curl.includes(`"topic":"${room}"`), curl);
    const before = await messages(`[data-type="hello"]`).count();
    const { stdout } = await promisify(execFile)("sh", ["-c", curl], { timeout: HTTP_MS });
    assert.deepEqual(JSON.parse(stdout), { delivered: 1 });
    await until("the curl message on the page", UI_MS, async () => (await messages(`[data-type="hello"]`).count()) === before + 1);
  });

  test("the Send test message button publishes through the page and the message arrives", async () => {
    await page.fill("#test-text", "sent by the button");
    await page.click("#send-test");
    const arrived = messages(`[data-type="hello"]`).filter({ hasText: "sent by the button" });
    await arrived.waitFor();
    assert.equal(await arrived.getAttribute("data-topic"), room);
    await page.waitForFunction(() => /delivered to 1 connection\b/.test(document.getElementById("send-result").textContent), null, { timeout: UI_MS });
    // Newest first.
    assert.ok((await messages().first().innerText()).includes("sent by the button"));
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, "dev-page.png"), fullPage: true, animations: "disabled" });
  });

  test("long topic names and the API key stay inside the page at phone and desktop widths", async () => {
    const long = `e2e:${"a-very-long-topic-name-without-spaces-".repeat(6)}${process.pid}`; // under the 256-byte limit
    await subscribeThroughForm(long);
    await subscription(long).and(page.locator('[data-status="subscribed"]')).waitFor();
    assert.equal(await publish(server.base, apiKey, long, { type: "long-topic", [`key-${"x".repeat(150)}`]: "y".repeat(300) }), 1);
    await messages(`[data-type="long-topic"]`).waitFor();
    assert.ok((await text("#curl")).includes(apiKey), "the curl line shows the API key");
    assert.equal(await text("#publish-topic"), long, "the long topic is the selected one");
    await mkdir(OUTPUT_DIR, { recursive: true });
    try {
      for (const [name, width] of [["phone", 390], ["desktop", 1280]]) {
        await page.setViewportSize({ width, height: 844 });
        await page.screenshot({ path: path.join(OUTPUT_DIR, `dev-page-long-topic-${name}.png`), fullPage: true, animations: "disabled" });
        const size = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
        assert.equal(size.innerWidth, width);
        assert.ok(size.scrollWidth <= size.innerWidth, `${name}: the page is ${size.scrollWidth} px wide in a ${size.innerWidth} px window`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
      await subscription(long).locator("button.unsubscribe").click();
      await subscription(room).locator(".topic").click();
    }
  });

  test("unsubscribing removes the subscription on the server too", async () => {
    await subscription(room).locator("button.unsubscribe").click();
    await subscription(room).waitFor({ state: "detached" });
    await until("the server to drop the subscription", UI_MS, async () => (await publish(server.base, apiKey, room, { type: "late" })) === 0);
  });

  test("keeps only the last 200 messages, newest first", async () => {
    for (let i = 1; i <= 210; i++) assert.equal(await publish(server.base, apiKey, "demo", { type: "flood", n: i }), 1);
    await until("message 210 on the page", UI_MS, async () => (await messages().first().innerText()).includes('"n": 210'));
    assert.equal(await messages().count(), 200);
    assert.ok((await messages().last().innerText()).includes('"n": 11'), "the oldest kept is number 11");
  });

  test("no script errors on the page", () => {
    assert.deepEqual(pageErrors, []);
  });

  // Last: the server goes away (the browser's failed reconnects log console errors after this).
  test("shows the server's shutdown notice and goes to reconnecting", async () => {
    await server.stop();
    assert.deepEqual(server.exited, { code: 0, signal: null }, "graceful shutdown exits with 0");
    await messages(`[data-type="server-shutdown"]`).waitFor();
    await page.waitForFunction(() => document.getElementById("state")?.textContent === "reconnecting", null, { timeout: UI_MS });
    assert.equal(await text("#connection-id"), "—");
    assert.equal(await subscription("demo").getAttribute("data-status"), "pending");
  });
});

// ---- the dev page over https ------------------------------------------------------------------

describe("dev page over https (--tls-cert)", { timeout: 120_000 }, () => {
  let server, apiKey, context, page, profileDir, certDir;

  before(async () => {
    certDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-tls-"));
    // A CA and a certificate for 127.0.0.1, made with Python's `cryptography` for this run.
    await promisify(execFile)("/usr/bin/python3", [path.resolve(here, "../integration/tls_certs.py"), certDir], { timeout: STARTUP_MS });
    server = await startServer([], { cert: path.join(certDir, "cert.pem"), key: path.join(certDir, "key.pem"), ca: path.join(certDir, "ca.pem") });
    apiKey = await until("the API key in the dev-mode banner", STARTUP_MS, () => {
      const match = /^\s*API key\s*:\s*(\S+)\s*$/m.exec(server.stdout);
      return match && match[1];
    });
    profileDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-chromium-"));
    // The browser does not know the test CA: it is told to accept the certificate instead.
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: BROWSER, headless: true, args: [...CHROMIUM_ARGS, "--ignore-certificate-errors"],
      viewport: { width: 1280, height: 900 }, timeout: STARTUP_MS,
    });
    context.setDefaultTimeout(UI_MS);
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => {});
    await server?.stop();
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
    if (certDir) await rm(certDir, { recursive: true, force: true });
  });

  test("the banner gives https:// and wss:// URLs, and the page connects over wss and shows a publish", async () => {
    assert.ok(server.stdout.includes(`open ${server.base}/ in a browser`), server.stdout);
    assert.match(server.stdout, /Connect\s*: wss:\/\/127\.0\.0\.1:\d+\/ws/);
    await page.goto(server.base + "/", { timeout: UI_MS });
    assert.equal(new URL(page.url()).protocol, "https:");
    await page.waitForFunction(() => document.getElementById("state")?.textContent === "connected", null, { timeout: UI_MS });
    await page.locator('#subscriptions li[data-topic="demo"][data-status="subscribed"]').waitFor();
    assert.equal(await publish(server.base, apiKey, "demo", { type: "tls-check", text: "over https" }), 1);
    const message = page.locator('#messages .message[data-type="tls-check"]');
    await message.waitFor();
    assert.ok((await message.innerText()).includes("over https"));
  });
});

// ---- an origin the server does not allow -----------------------------------------------------

describe("dev page whose origin --allowed-origins excludes", { timeout: 120_000 }, () => {
  let server, context, page, profileDir;

  before(async () => {
    server = await startServer(["--allowed-origins", "https://app.example.com"]); // default log level: info
    profileDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-chromium-"));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: BROWSER, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 }, timeout: STARTUP_MS,
    });
    context.setDefaultTimeout(UI_MS);
    page = context.pages()[0] ?? (await context.newPage());
  });

  after(async () => {
    await context?.close().catch(() => {});
    await server?.stop();
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  });

  test("the page says that its origin is not allowed, and how to allow it", async () => {
    await page.goto(server.base + "/", { timeout: UI_MS });
    await page.locator("#notice").waitFor({ state: "visible" });
    const notice = await page.locator("#notice").innerText();
    assert.ok(notice.includes(`its origin ${server.base} is not in the server's --allowed-origins`), notice);
    assert.ok(notice.includes(`--allowed-origins https://app.example.com,${server.base}`), notice);
    assert.equal(await page.locator("#state").innerText(), "error");
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, "dev-page-origin-refused.png"), animations: "disabled" });
  });

  test("GET /dev/check-origin judges the Origin header, or the origin the page names", async () => {
    const check = async (headers, query = "") =>
      (await fetch(`${server.base}/dev/check-origin${query}`, { headers, signal: AbortSignal.timeout(HTTP_MS) })).json();
    assert.deepEqual(await check({ Origin: "https://app.example.com" }),
      { allowed: true, origin: "https://app.example.com", "allowed-origins": ["https://app.example.com"] });
    assert.equal((await check({ Origin: "https://other.example.com" })).allowed, false);
    assert.equal((await check({}, `?origin=${encodeURIComponent("https://APP.example.com")}`)).allowed, true);
  });

  test("the server logs a refused upgrade at info with the reason, once a second at most, never the token", async () => {
    const token = "eyJhbGciOiJIUzI1NiJ9.not-a-real-token-0123456789.sig";
    const upgrade = () => new Promise((resolve, reject) => {
      const request = httpRequest(`${server.base}/ws?token=${token}`, {
        headers: {
          Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", Origin: "https://evil.example.com",
        },
        timeout: HTTP_MS,
      });
      request.on("response", (response) => { response.resume(); resolve(response.statusCode); });
      request.on("upgrade", () => reject(new Error("the upgrade was accepted")));
      request.on("error", reject);
      request.end();
    });
    const statuses = await Promise.all(Array.from({ length: 10 }, upgrade));
    assert.deepEqual(statuses, Array(10).fill(403));
    const log = () => server.stdout + server.stderr;
    await until("the refusal in the server log", UI_MS, () => /info upgrade refused \(origin\):/.test(log()));
    const lines = log().split("\n").filter((line) => line.includes("upgrade refused (origin):"));
    assert.ok(lines[0].includes("https://evil.example.com"), lines[0]);
    // Ten refusals at once (a page retrying, a scan): not ten lines.
    assert.ok(lines.length < 10, lines.join("\n"));
    assert.ok(!log().includes(token) && !log().includes("not-a-real-token"), "the token is never logged");
  });
});

// ---- outside dev mode there is no page --------------------------------------------------------

describe("permessage-deflate with Chromium (--compression on)", { timeout: 120_000 }, () => {
  let server, apiKey, token, browser, page;

  before(async () => {
    server = await startServer(["--compression", "on"]);
    apiKey = await devApiKey(server);
    const html = await (await http(server.base, "/")).text();
    token = /const DEV_TOKEN = "([^"]+)"/.exec(html)?.[1];
    assert.ok(token && !token.startsWith("__REALTIME"), "the dev page carries its sample token");
    browser = await openPage(server.base + "/");
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("the browser negotiates it, sends compressed and receives the compressed frame", async () => {
    const big = { type: "report", rows: Array.from({ length: 40 }, (_, i) => ({ id: i, name: "row name", status: "ok" })) };
    const url = server.base.replace(/^http/, "ws") + "/ws?token=" + encodeURIComponent(token);
    // In the page: connect, subscribe, publish `big` through the socket (Chromium compresses what
    // it sends once the extension is negotiated), then wait for a second message published
    // through the HTTP API.
    const result = page.evaluate(async ({ url, big, deadline }) => {
      const ws = new WebSocket(url);
      const received = [];
      const next = () => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no message in time")), deadline);
        ws.addEventListener("message", (e) => { clearTimeout(timer); resolve(JSON.parse(e.data)); }, { once: true });
      });
      let msg = await next();
      if (msg.type !== "connected") throw new Error("first message: " + msg.type);
      ws.send(JSON.stringify({ action: "subscribe", topic: "demo:deflate" }));
      msg = await next();
      ws.send(JSON.stringify({ action: "publish", topic: "demo:deflate", message: big }));
      while (received.length < 2) {
        msg = await next();
        if (msg.type === "report" || msg.type === "api-report") received.push(msg);
        if (msg.type === "report") window.__deflateReady = true;
      }
      const extensions = ws.extensions;
      ws.close();
      return { extensions, received };
    }, { url, big, deadline: UI_MS });
    await page.waitForFunction(() => window.__deflateReady === true, null, { timeout: UI_MS });
    const metrics = await (await http(server.base, "/metrics")).text();
    const compressed = Number(/^realtime_compressed_connections (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(compressed >= 1, "the dev page's and the test's connections negotiated it: " + compressed);
    // Every byte the server read from WebSocket clients so far (the dev page's and this socket's
    // frames) is fewer than the publish command alone: Chromium sent it compressed.
    const bytesIn = Number(/^realtime_bytes_received_total (\d+)$/m.exec(metrics)?.[1]);
    const command = JSON.stringify({ action: "publish", topic: "demo:deflate", message: big }).length;
    assert.ok(bytesIn > 0 && bytesIn < command, `bytes received ${bytesIn}, publish command ${command}`);
    assert.ok(await publish(server.base, apiKey, "demo:deflate", { ...big, type: "api-report" }) >= 1);
    const out = await result;
    assert.equal(out.extensions, "permessage-deflate; server_no_context_takeover");
    const strip = ({ timestamp, topic, ...rest }) => rest;
    assert.deepEqual(out.received.map(strip), [big, { ...big, type: "api-report" }]);
  });
});

describe("history on the dev page (--history)", { timeout: 120_000 }, () => {
  let server, apiKey, browser, page;

  before(async () => {
    server = await startServer(["--history", "demo=100"]);
    apiKey = await devApiKey(server);
    browser = await openPage(server.base + "/");
    page = browser.page;
    await page.locator('#subscriptions li[data-topic="demo"][data-status="subscribed"]').waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const offsets = async () => (await page.locator("#messages .message .offset").allInnerTexts()).map((t) => Number(t.replace("offset ", ""))).sort((a, b) => a - b);

  test("shows each message's offset, and after a reconnect the messages it recovered", async () => {
    for (let i = 1; i <= 2; i++) assert.equal(await publish(server.base, apiKey, "demo", { type: "tick", i }), 1);
    await until("offsets 1 and 2 shown", UI_MS, async () => (await offsets()).length === 2);
    assert.deepEqual(await offsets(), [1, 2]);

    // Drop the page's connection; publish until one message found nobody subscribed (the page
    // reconnects by itself meanwhile), so at least that one can only come through recovery.
    const dropped = await http(server.base, "/api/disconnect", { method: "POST", key: apiKey, body: { "user-id": "dev-user" } });
    assert.equal(dropped.status, 200);
    let published = 2;
    let missed = 0;
    while (missed === 0 && published < 50) {
      published++;
      if ((await publish(server.base, apiKey, "demo", { type: "tick", i: published })) === 0) missed++;
    }
    assert.ok(missed > 0, "a message was published while the page was away");
    const line = page.locator('#messages .message[data-type="recovery"]');
    await line.waitFor();
    assert.match(await line.innerText(), /^demo: recovered [1-9]\d* messages?$/);
    await until("every offset shown", UI_MS, async () => (await offsets()).length >= published);
    assert.deepEqual(await offsets(), Array.from({ length: published }, (_, i) => i + 1), "each offset once, none missing");
  });
});

describe("no dev page outside dev mode", { timeout: 60_000 }, () => {
  let server;
  before(async () => { server = await startServer(["--jwt-secret", "e2e-secret-0123456789abcdef0123456789abc", "--api-key", "e2e-api-key-0123456789"]); });
  after(async () => { await server?.stop(); });

  test("GET / and GET /realtime-client.js answer 404", async () => {
    assert.doesNotMatch(server.stdout, /DEV MODE/);
    assert.equal((await http(server.base, "/")).status, 404);
    assert.equal((await http(server.base, "/realtime-client.js")).status, 404);
    // The server itself is up and keyed.
    assert.equal((await http(server.base, "/api/connections", { key: "e2e-api-key-0123456789" })).status, 200);
  });
});
