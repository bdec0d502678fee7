// Request timeout: a server that stops answering (SIGSTOP) makes requests reject with `timeout`;
// its late replies, once it runs again (SIGCONT), must not settle newer requests.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient, RealtimeError } from "../dist/index.js";
import { clientOptions, makeToken, nextEvent, startServer, withDeadline } from "./support/harness.mjs";

let server;
let client;

before(async () => {
  server = await startServer();
});

after(async () => {
  client?.disconnect();
  await server.stop();
});

test("a request without a reply rejects with timeout, and a late reply settles nothing newer", async () => {
  client = new RealtimeClient(server.wsUrl, clientOptions({ token: makeToken(), requestTimeoutMs: 150 }));
  await withDeadline(client.connect(), 5000, "connect()");
  await withDeadline(client.subscribe("chat:after-timeout", () => {}).ready, 5000, "subscribed");

  await server.pause();
  let started;
  let error;
  try {
    started = Date.now();
    error = await withDeadline(client.ping().then(() => null, (e) => e), 3000, "the timeout");
  } finally {
    server.resume();
  }
  const waited = Date.now() - started;
  assert.ok(error instanceof RealtimeError, "a RealtimeError");
  assert.equal(error.code, "timeout");
  assert.ok(waited >= 140 && waited < 2000, `rejected after ${waited} ms`);

  // The stopped server now answers the old ping; a fresh request must get its own reply.
  const latePong = nextEvent(client, "pong", { timeoutMs: 3000 });
  const result = await withDeadline(client.publish("chat:after-timeout", { type: "chat" }), 3000, "publish");
  assert.deepEqual(result, { delivered: 1 }, "settled by the published reply, not by the late pong");
  await latePong;
  assert.equal(client.state, "connected", "a timeout does not drop the connection");
  await withDeadline(client.ping(), 3000, "ping after the timeout");
});
