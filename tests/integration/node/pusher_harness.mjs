// Helpers of the Pusher compatibility tests (../pusher*.test.mjs): a real server process (and a
// real Redis for cluster mode) on loopback ports, and the real client libraries, unchanged:
// pusher-js (Node build), the `pusher` server library and Laravel Echo. They live here so that
// the packages resolve from this directory's node_modules.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

import { freePort, sleep, until } from "./net_helpers.mjs";

export { freePort, sleep, until };

const require = createRequire(import.meta.url);
export const Pusher = require("pusher-js");
export const PusherServer = require("pusher");
export const WebSocket = require("ws");
export const here = path.dirname(fileURLToPath(import.meta.url));
export const SERVER = process.env.REALTIME_SERVER || path.resolve(here, "../../../build/release/realtime-server");
export const JWT_SECRET = "pusher-tests-secret-0123456789abcdef";
export const API_KEY = "pusher-tests-api-key-0123456789";

export async function loadEcho() {
  return (await import("laravel-echo")).default;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
  });
}

// A realtime-server with the given Pusher apps ("id:key:secret") and extra flags.
export async function startServer({ apps, args = [] }) {
  if (!existsSync(SERVER)) throw new Error(`server binary not found: ${SERVER}`);
  const port = await freePort();
  const flags = ["--host", "127.0.0.1", "--port", String(port), "--threads", "2", "--jwt-secret", JWT_SECRET,
                 "--api-key", API_KEY, ...(args.includes("--log-level") ? [] : ["--log-level", "warn"]), ...apps.flatMap((a) => ["--pusher-app", a]), ...args];
  const proc = spawn(SERVER, flags, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => { log += d; });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  await until(`the server on port ${port}`, 10000, async () => {
    if (proc.exitCode !== null) throw Object.assign(new Error(`server exited: ${log}`), { fatal: true });
    return portOpen(port);
  });
  return {
    port,
    log: () => log,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      await exited;
    },
  };
}

export async function startRedis() {
  const port = await freePort();
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                     { stdio: "ignore" });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  await until(`redis on port ${port}`, 10000, () => portOpen(port));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    signal(name) { proc.kill(name); },
    async stop() { proc.kill("SIGCONT"); proc.kill("SIGTERM"); await exited; },
  };
}

// The official server library pointed at this server (plain HTTP on its port).
export function backend(port, [id, key, secret]) {
  return new PusherServer({ appId: id, key, secret, host: "127.0.0.1", port: String(port), useTLS: false });
}

// pusher-js, as an application configures it for a self-hosted server. Private and presence
// channels are authorized by `authorize(socketId, channel)` (what an app's auth endpoint does
// with the server library); `user` is the presence channel_data.
export function client(port, key, { lib, user, authorizeWith, extra = {} } = {}) {
  const signer = authorizeWith || lib;
  const options = {
    wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"], disableStats: true, cluster: "local",
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const auth = channelName.startsWith("presence-")
            ? signer.authorizeChannel(socketId, channelName, user)
            : signer.authorizeChannel(socketId, channelName);
          callback(null, auth);
        } catch (err) {
          callback(err, null);
        }
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) => callback(null, signer.authenticateUser(socketId, user ? { id: String(user.user_id) } : { id: "anon" })),
    },
    ...extra,
  };
  return new Pusher(key, options);
}

export function connected(p) {
  return new Promise((resolve, reject) => {
    if (p.connection.state === "connected") return resolve(p.connection.socket_id);
    p.connection.bind("connected", () => resolve(p.connection.socket_id));
    p.connection.bind("failed", () => reject(new Error("connection failed")));
  });
}

export function subscribed(channel) {
  return new Promise((resolve, reject) => {
    channel.bind("pusher:subscription_succeeded", (data) => resolve(data));
    channel.bind("pusher:subscription_error", (err) => reject(Object.assign(new Error("subscription error"), { err })));
  });
}

// Every event a channel or connection receives, in order.
export function recorder(target) {
  const events = [];
  target.bind_global((name, data) => events.push({ name, data }));
  return events;
}

// A native protocol client (ws) with a token the server's own `token` command signs.
export async function nativeClient(port, userId) {
  const token = await new Promise((resolve, reject) => {
    const p = spawn(SERVER, ["token", "--secret", JWT_SECRET, "--user-id", userId]);
    let out = "";
    p.stdout.on("data", (d) => { out += d; });
    p.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`token exited ${code}`))));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
  const messages = [];
  ws.on("message", (d) => messages.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  await until("the native connected frame", 5000, () => messages.find((m) => m.type === "connected"));
  return { ws, messages, send: (o) => ws.send(JSON.stringify(o)) };
}

export async function nativePublish(port, topic, message) {
  const r = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: "POST", headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ topic, message }),
  });
  return r.status;
}
