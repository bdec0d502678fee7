// Test harness: runs the real realtime-server on a free loopback port and talks to its HTTP API.
// Every wait here has a deadline, so a broken feature fails a test instead of hanging the suite.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

/**
 * The server under test: $REALTIME_SERVER, else the release build of this repository
 * (../../build/release/realtime-server from clients/js).
 */
export const SERVER_BIN =
  process.env.REALTIME_SERVER ?? fileURLToPath(new URL("../../../../build/release/realtime-server", import.meta.url));

export const JWT_SECRET = `js-client-tests-${randomBytes(16).toString("hex")}`; // 48 chars
export const API_KEY = `key-${randomBytes(12).toString("hex")}`;

export { WebSocket };

export function assertServerBuilt() {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`realtime-server not found at ${SERVER_BIN}: build it (make build) or set REALTIME_SERVER`);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects if `promise` does not settle within `ms`. */
export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Polls `predicate` (sync or async) until it returns a truthy value. */
export async function waitFor(predicate, { timeoutMs = 5000, intervalMs = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Next `event` emitted by `client` for which `filter` holds. */
export function nextEvent(client, event, { timeoutMs = 5000, filter = () => true } = {}) {
  let off;
  const seen = new Promise((resolve) => {
    off = client.on(event, (payload) => {
      if (filter(payload)) resolve(payload);
    });
  });
  return withDeadline(seen, timeoutMs, `event "${event}"`).finally(() => off());
}

// A loopback port free now, chosen at random below the kernel's ephemeral range: a port from
// listen(0) lies in that range, so an outgoing connection of a test running in parallel could
// take it before the server binds it. Ports this process returned are not returned again.
const handedOutPorts = new Set();

function ephemeralLow() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function probePort(port) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", () => resolve(null));
    probe.listen(port, "127.0.0.1", () => {
      const chosen = probe.address().port;
      probe.close(() => resolve(chosen));
    });
  });
}

export async function freePort() {
  const low = Math.min(ephemeralLow(), 65536);
  if (low > 12000) {
    for (let i = 0; i < 200; i++) {
      const port = 10000 + Math.floor(Math.random() * (low - 10000));
      if (handedOutPorts.has(port)) continue;
      if ((await probePort(port)) !== null) {
        handedOutPorts.add(port);
        return port;
      }
    }
  }
  const port = await probePort(0);
  if (port === null) throw new Error("no free loopback port");
  return port;
}

/**
 * A signed HS256 token from the server's own `token` subcommand. With `info` (the presence claim,
 * which the subcommand does not set) its claims get `info` and are signed again here.
 */
export function makeToken({ userId = "42", roles = ["user"], ttl = 3600, info } = {}) {
  const token = execFileSync(SERVER_BIN, [
    "token", "--secret", JWT_SECRET, "--user-id", String(userId), "--roles", roles.join(","), "--ttl", String(ttl),
  ]).toString().trim();
  if (info === undefined) return token;
  const [header, payload] = token.split(".");
  const claims = { ...JSON.parse(Buffer.from(payload, "base64url").toString("utf8")), info };
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${body}.${createHmac("sha256", JWT_SECRET).update(body).digest("base64url")}`;
}

// Servers still running when a test file's process exits (a test failed before stopping one).
const running = new Set();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/**
 * Starts the server and waits for /health/realtime. Returns a handle with `wsUrl`, `api()`,
 * `stop()` (SIGTERM, waits for exit), `pause()`/`resume()` (SIGSTOP/SIGCONT).
 */
/**
 * A CA and a certificate for 127.0.0.1 made by tests/integration/tls_certs.py (Python
 * `cryptography`) in `dir`: { ca, cert, key } file paths and `caPem`, the CA's text.
 */
export function makeTestCertificates(dir) {
  const maker = fileURLToPath(new URL("../../../../tests/integration/tls_certs.py", import.meta.url));
  execFileSync("/usr/bin/python3", [maker, dir]);
  const files = { ca: `${dir}/ca.pem`, cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
  return { ...files, caPem: readFileSync(files.ca, "utf8") };
}

/** fetch()'s subset the harness uses, over HTTPS trusting `ca` (fetch takes no CA option). */
function fetchWithCa(ca) {
  return (url, { method = "GET", headers = {}, body } = {}) => new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { text += chunk; });
      res.on("end", () => resolve({ status: res.statusCode, text: async () => text, json: async () => JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

export async function startServer({ port, args = [], dev = false, tls = null } = {}) {
  assertServerBuilt();
  const listenPort = port ?? (await freePort());
  // Dev mode (`dev: true`) is the server as `make run` starts it: no secret, no key, its own
  // defaults; `devToken` is the sample token from its banner. Keep the caller's REALTIME_* out.
  const keyed = dev ? [] : ["--jwt-secret", JWT_SECRET, "--api-key", API_KEY, "--publish-patterns", "chat:*", "--log-level", "warn"];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REALTIME_")));
  const proc = spawn(SERVER_BIN, [
    "--host", "127.0.0.1", "--port", String(listenPort), "--threads", "2", ...keyed,
    ...(tls ? ["--tls-cert", tls.cert, "--tls-key", tls.key] : []), ...args,
  ], { stdio: ["ignore", "pipe", "pipe"], env });
  running.add(proc);
  proc.once("exit", () => running.delete(proc));
  let output = "";
  proc.stdout.on("data", (chunk) => { output += chunk; });
  proc.stderr.on("data", (chunk) => { output += chunk; });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  exited.then(() => { hasExited = true; });

  // `tls` ({ cert, key, caPem } from makeTestCertificates): https:// and wss:// with that CA.
  const base = `${tls ? "https" : "http"}://127.0.0.1:${listenPort}`;
  const fetch = tls ? fetchWithCa(tls.caPem) : globalThis.fetch;
  const server = {
    port: listenPort,
    proc,
    exited,
    wsUrl: `${tls ? "wss" : "ws"}://127.0.0.1:${listenPort}/ws`,
    output: () => output,
    async api(path, body) {
      const response = await withDeadline(fetch(base + path, {
        method: body === undefined ? "GET" : "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }), 5000, `${path}`);
      const text = await response.text();
      if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${text}`);
      return JSON.parse(text);
    },
    async health() {
      const response = await fetch(`${base}/health/realtime`);
      return response.status === 200 ? response.json() : null;
    },
    async stop(signal = "SIGTERM") {
      if (hasExited) return exited;
      proc.kill("SIGCONT"); // a paused server cannot handle SIGTERM
      proc.kill(signal);
      try {
        return await withDeadline(exited, 10_000, "server exit");
      } catch (error) {
        proc.kill("SIGKILL");
        throw error;
      }
    },
    /** SIGSTOP, and waits until every thread has stopped (signal delivery is asynchronous). */
    async pause() {
      proc.kill("SIGSTOP");
      await waitFor(() => allThreadsStopped(proc.pid), { timeoutMs: 2000, intervalMs: 2, what: "the server to stop" });
    },
    resume() { proc.kill("SIGCONT"); },
  };

  await waitFor(async () => {
    if (hasExited) throw new Error(`realtime-server exited during startup:\n${output}`);
    try {
      return await server.health();
    } catch {
      return null; // not listening yet
    }
  }, { timeoutMs: 10_000, intervalMs: 25, what: "/health/realtime" });
  if (dev) {
    const banner = await waitFor(() => /Sample token[^\n]*:\s*\n\s*(\S+)/.exec(output), { what: "the dev-mode banner" });
    server.devToken = banner[1];
  }
  return server;
}

function allThreadsStopped(pid) {
  const tasks = `/proc/${pid}/task`;
  if (!existsSync(tasks)) return true; // not Linux: nothing to check
  return readdirSync(tasks).every((tid) => {
    try {
      // The state follows the parenthesised command name: "T" is stopped by a signal.
      const stat = readFileSync(`${tasks}/${tid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "T";
    } catch {
      return true; // the thread is gone
    }
  });
}

/** Options every test client uses on Node 20, which has no global WebSocket. */
export function clientOptions(extra = {}) {
  return { WebSocket, ...extra };
}
