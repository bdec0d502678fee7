// Tokens: getToken runs before every connect and reconnect, so expired tokens are replaced, and
// ahead of exp to refresh the open connection; a 4001 close (token expired) is followed by a
// reconnect; a failing getToken and a refused upgrade (401) are retried with backoff.
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

function expOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()).exp;
}

test("an expired token is replaced by getToken on the next reconnect", async () => {
  const issued = [];
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => {
      const token = makeToken({ userId: "exp-1", ttl: 2 });
      issued.push(token);
      return token;
    },
    refreshAhead: false,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
  }));
  clients.push(client);
  await withDeadline(client.connect(), 5000, "connect()");
  const firstId = client.connectionId;
  const exp = expOf(issued[0]);

  // Without a refresh the server closes the connection with 4001 at exp; that is not a
  // permanent failure: the client reconnects at once with a fresh token from getToken.
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const closed = nextEvent(client, "disconnected", { timeoutMs: 6000 });
  const reconnected = nextEvent(client, "connected", { timeoutMs: 8000 });
  const { code, reason, willReconnect } = await closed;
  assert.deepEqual({ code, reason, willReconnect }, { code: 4001, reason: "token expired", willReconnect: true });
  assert.ok(Date.now() / 1000 >= exp - 0.05, "closed only once the token expired");
  const info = await reconnected;
  assert.notEqual(info.connectionId, firstId);
  assert.equal(info.userId, "exp-1");
  assert.equal(issued.length, 2, "getToken called once more, and its fresh token accepted at once");
  assert.equal(await upgradeStatus(issued[0]), 401, "the first token is expired");
  assert.deepEqual(errors, []);
  await withDeadline(client.ping(), 3000, "ping on the resumed connection");
});

test("with getToken the client refreshes ahead of exp and keeps its connection", async () => {
  const issued = [];
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => {
      const token = makeToken({ userId: "refresh-1", roles: [issued.length === 0 ? "first" : "later"], ttl: 3 });
      issued.push(token);
      return token;
    },
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
  }));
  clients.push(client);
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const refreshed = [];
  client.on("refreshed", (message) => refreshed.push(message));
  const disconnects = [];
  client.on("disconnected", (event) => disconnects.push(event.code));
  await withDeadline(client.connect(), 5000, "connect()");
  const firstId = client.connectionId;
  const firstExp = expOf(issued[0]);

  await waitFor(() => Date.now() / 1000 > firstExp + 1.5, { timeoutMs: 6000, intervalMs: 100, what: "the first exp to pass" });
  assert.deepEqual(disconnects, [], "no 4001 close");
  assert.equal(client.connectionId, firstId, "the same connection");
  assert.ok(issued.length >= 2, "getToken was called for the refresh");
  assert.ok(refreshed.length >= 1);
  assert.equal(Date.parse(refreshed[0]["expires-at"]) / 1000, expOf(issued[1]), "expires-at is the new token's exp");
  assert.deepEqual(errors, []);
  // The server routes by the refreshed roles.
  assert.deepEqual(await server.api("/api/send-to-role", { role: "later", message: { type: "to-later" } }), { delivered: 1 });
  assert.deepEqual(await server.api("/api/send-to-role", { role: "first", message: { type: "to-first" } }), { delivered: 0 });
  await withDeadline(client.ping(), 3000, "ping after the refresh");
});

test("refreshToken() with another user's token is refused and the connection stays", async () => {
  const client = new RealtimeClient(server.wsUrl, clientOptions({ token: makeToken({ userId: "refresh-2" }) }));
  clients.push(client);
  await withDeadline(client.connect(), 5000, "connect()");
  const error = await client.refreshToken(makeToken({ userId: "someone-else" })).then(() => null, (e) => e);
  assert.ok(error instanceof RealtimeError);
  assert.equal(error.code, "forbidden");
  assert.match(error.message, /another user/);
  const ok = await client.refreshToken(makeToken({ userId: "refresh-2", ttl: 600 }));
  assert.match(ok.expiresAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
  await withDeadline(client.ping(), 3000, "ping after the refusal");
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

test("tokenExpiry reads exp from the payload without verifying; refreshDelay leads by min(30 s, 10%)", async () => {
  const { tokenExpiry, refreshDelay } = await import("../dist/index.js");
  const token = makeToken({ userId: "pure", ttl: 100 });
  assert.equal(tokenExpiry(token), expOf(token));
  assert.equal(tokenExpiry("not-a-jwt"), undefined);
  assert.equal(tokenExpiry(undefined), undefined);
  const noExp = `e30.${Buffer.from(JSON.stringify({ "user-id": "x" })).toString("base64url")}.sig`;
  assert.equal(tokenExpiry(noExp), undefined);
  // A one-hour token refreshes 30 s early; a 100 s one 10 s early; a past exp at once.
  assert.equal(refreshDelay(3600, 0, 0), 3_570_000);
  assert.equal(refreshDelay(100, 0, 0), 90_000);
  assert.equal(refreshDelay(100, 0, 50_000), 40_000);
  assert.equal(refreshDelay(10, 0, 20_000), 0);
});
