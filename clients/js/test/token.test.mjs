// Tokens: getToken runs before every connect and reconnect, so expired tokens are replaced; a
// failing getToken and a refused upgrade (401) are retried with backoff.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient, RealtimeError } from "../dist/index.js";
import {
  JWT_SECRET, SERVER_BIN, WebSocket, clientOptions, makeToken, nextEvent, sleep, startServer, waitFor, withDeadline,
} from "./support/harness.mjs";
import { execFileSync } from "node:child_process";

let server;
const clients = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const client of clients) client.disconnect();
  await server.stop();
});

function upgradeStatus(token) {
  return withDeadline(new Promise((resolve) => {
    const ws = new WebSocket(`${server.wsUrl}?token=${encodeURIComponent(token)}`);
    ws.on("open", () => { ws.close(); resolve(101); });
    ws.on("unexpected-response", (_request, response) => { resolve(response.statusCode); ws.terminate(); });
    ws.on("error", () => {});
  }), 5000, "upgrade answer");
}

test("an expired token is replaced by getToken on the next reconnect", async () => {
  const issued = [];
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => {
      const token = makeToken({ userId: "exp-1", ttl: 2 });
      issued.push(token);
      return token;
    },
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
  }));
  clients.push(client);
  await withDeadline(client.connect(), 5000, "connect()");
  const firstId = client.connectionId;
  const exp = JSON.parse(Buffer.from(issued[0].split(".")[1], "base64url").toString()).exp;

  await waitFor(async () => (await upgradeStatus(issued[0])) === 401, {
    timeoutMs: 6000, intervalMs: 250, what: "the first token to expire",
  });
  assert.ok(Date.now() / 1000 >= exp, "the server refuses the token only once it expired");

  const errors = [];
  client.on("error", (error) => errors.push(error));
  const reconnected = nextEvent(client, "connected", { timeoutMs: 5000 });
  assert.deepEqual(await server.api("/api/disconnect", { "connection-id": firstId }), { disconnected: 1 });
  const info = await reconnected;
  assert.notEqual(info.connectionId, firstId);
  assert.equal(info.userId, "exp-1");
  assert.equal(issued.length, 2, "getToken called once more, and its fresh token accepted at once");
  assert.deepEqual(errors, []);
  await withDeadline(client.ping(), 3000, "ping on the resumed connection");
});

test("a getToken that throws or rejects is reported as error and retried with backoff", async () => {
  let calls = 0;
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: async () => {
      calls += 1;
      if (calls === 1) throw new Error("auth service down");
      if (calls === 2) return Promise.reject(new Error("still down"));
      return makeToken({ userId: "tok-2" });
    },
    reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
  }));
  clients.push(client);
  const errors = [];
  client.on("error", (error) => errors.push(error));
  await withDeadline(client.connect(), 5000, "connect() after two getToken failures");
  assert.equal(calls, 3);
  assert.equal(errors.length, 2);
  for (const error of errors) {
    assert.ok(error instanceof RealtimeError);
    assert.equal(error.code, "token-failed");
  }
  assert.match(errors[0].message, /auth service down/);
  assert.equal(client.userId, "tok-2");
});

test("a refused upgrade (401) counts as a failed attempt, and getToken is asked again", async () => {
  const wrongSecret = "another-secret-that-is-long-enough-0123456789";
  const badToken = execFileSync(SERVER_BIN, ["token", "--secret", wrongSecret, "--user-id", "tok-3"]).toString().trim();
  assert.notEqual(wrongSecret, JWT_SECRET);
  assert.equal(await upgradeStatus(badToken), 401, "premise: the server refuses this token");
  const tokens = [badToken, badToken, makeToken({ userId: "tok-3" })];
  let calls = 0;
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => tokens[Math.min(calls++, tokens.length - 1)],
    reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
  }));
  clients.push(client);
  const errors = [];
  const states = [];
  client.on("error", (error) => errors.push(error.code));
  client.on("state", (state) => states.push(state));
  await withDeadline(client.connect(), 5000, "connect() after two refusals");
  assert.equal(calls, 3);
  assert.deepEqual(errors, ["connect-failed", "connect-failed"]);
  assert.deepEqual(states, ["connecting", "reconnecting", "connected"]);
});

test("with reconnect: false a failed connect rejects and nothing is retried", async () => {
  let calls = 0;
  const badToken = execFileSync(SERVER_BIN, ["token", "--secret", "x".repeat(40), "--user-id", "tok-4"]).toString().trim();
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => { calls += 1; return badToken; },
    reconnect: false,
  }));
  clients.push(client);
  const queued = client.ping().then(() => null, (e) => e.code);
  const error = await withDeadline(client.connect().then(() => null, (e) => e), 5000, "connect() to fail");
  assert.ok(error instanceof RealtimeError);
  assert.equal(error.code, "connect-failed");
  assert.equal(client.state, "closed");
  assert.equal(await withDeadline(queued, 1000, "queued ping"), "disconnected", "queued commands are not left hanging");
  await sleep(300);
  assert.equal(calls, 1);
});

test("a refused token is reported as HTTP 401 (with ws), not as a bare close code 1006", async () => {
  const badToken = execFileSync(SERVER_BIN, ["token", "--secret", "y".repeat(40), "--user-id", "tok-5"]).toString().trim();
  const client = new RealtimeClient(server.wsUrl, clientOptions({ token: badToken, reconnect: false }));
  clients.push(client);
  const events = [];
  client.on("error", (error) => events.push(error));
  const error = await withDeadline(client.connect().then(() => null, (e) => e), 5000, "connect() to fail");
  assert.ok(error instanceof RealtimeError);
  assert.equal(error.code, "connect-failed");
  assert.equal(error.status, 401);
  assert.match(error.message, /HTTP 401/);
  assert.doesNotMatch(error.message, /1006/);
  assert.deepEqual(events.map((e) => e.status), [401], "the error event says the same");
});

test("without a WebSocket implementation connect() fails at once and names the option to pass", async (t) => {
  // Node 20 has no global WebSocket; on Node 22+ take it away for this test.
  const saved = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  delete globalThis.WebSocket;
  t.after(() => { if (saved) Object.defineProperty(globalThis, "WebSocket", saved); });
  const client = new RealtimeClient(server.wsUrl, { token: makeToken({ userId: "tok-6" }) });
  clients.push(client);
  const events = [];
  client.on("error", (error) => events.push(error.code));
  const states = [];
  client.on("state", (state) => states.push(state));
  const error = await withDeadline(client.connect().then(() => null, (e) => e), 1000, "connect() to fail");
  assert.ok(error instanceof RealtimeError);
  assert.equal(error.code, "no-websocket");
  assert.match(error.message, /\{ WebSocket \}/);
  assert.match(error.message, /"ws"/);
  assert.deepEqual(events, ["no-websocket"]);
  await sleep(200);
  assert.deepEqual(states, [], "no attempt, no retry loop");
  assert.notEqual(client.state, "reconnecting");
});

test("an unhandled connect() without a WebSocket implementation is printed, not silent", () => {
  // What a user's script does on Node 20 when it forgets the option: the process must say why.
  const script = `delete globalThis.WebSocket;
    const { RealtimeClient } = await import(${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)});
    new RealtimeClient("ws://127.0.0.1:9/ws", { token: "t" }).connect();`;
  let result;
  try {
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { stdio: "pipe", timeout: 10_000 });
    assert.fail("the script should have exited with an error");
  } catch (error) {
    result = error;
  }
  assert.notEqual(result.status, 0);
  assert.match(String(result.stderr), /no WebSocket implementation.*\{ WebSocket \}/s);
});

test("a connection that fails before any HTTP answer says why (with ws)", async () => {
  const { freePort } = await import("./support/harness.mjs");
  const port = await freePort(); // nothing listens there
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, clientOptions({ token: "t", reconnect: false }));
  clients.push(client);
  const error = await withDeadline(client.connect().then(() => null, (e) => e), 5000, "connect() to fail");
  assert.equal(error.code, "connect-failed");
  assert.equal(error.status, undefined);
  assert.match(error.message, /ECONNREFUSED/);
});
