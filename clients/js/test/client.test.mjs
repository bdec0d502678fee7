// RealtimeClient against the real server: handshake, events, topics, requests, offline queue.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient, RealtimeError } from "../dist/index.js";
import {
  clientOptions, makeToken, nextEvent, sleep, startServer, waitFor, withDeadline,
} from "./support/harness.mjs";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("RealtimeClient on a running server", () => {
  let server;
  const clients = [];

  function newClient(options = {}, url = server.wsUrl) {
    const client = new RealtimeClient(url, clientOptions({ token: makeToken({ userId: "42", roles: ["admin", "user"] }), ...options }));
    clients.push(client);
    return client;
  }

  async function connected(options, url) {
    const client = newClient(options, url);
    await withDeadline(client.connect(), 5000, "connect()");
    return client;
  }

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    for (const client of clients) client.disconnect();
    await server.stop();
  });

  test("connect resolves on the connected frame and exposes its fields", async () => {
    const client = newClient();
    const states = [];
    client.on("state", (state) => states.push(state));
    const info = nextEvent(client, "connected");
    assert.equal(client.state, "idle");
    assert.equal(client.connectionId, null);
    await withDeadline(client.connect(), 5000, "connect()");
    assert.equal(client.state, "connected");
    assert.match(client.connectionId, UUID_V4);
    assert.equal(client.userId, "42");
    assert.deepEqual([...client.roles], ["admin", "user"]);
    assert.deepEqual(await info, { connectionId: client.connectionId, userId: "42", roles: ["admin", "user"] });
    assert.deepEqual(states, ["connecting", "connected"]);
  });

  test("the token is appended with & when the url already has a query", async () => {
    const client = await connected({}, `${server.wsUrl}?client=js`);
    assert.match(client.connectionId, UUID_V4);
  });

  test("on(type) receives send-to-user messages and its off function stops them", async () => {
    const client = await connected();
    const received = [];
    const off = client.on("notification", (message) => received.push(message));
    const result = await server.api("/api/send-to-user", { "user-id": "42", message: { type: "notification", content: "hello" } });
    assert.ok(result.delivered >= 1);
    await waitFor(() => received.length === 1, { what: "notification" });
    assert.equal(received[0].content, "hello");
    assert.match(received[0].timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    off();
    const probe = nextEvent(client, "probe");
    await server.api("/api/send-to-user", { "user-id": "42", message: { type: "notification", content: "again" } });
    await server.api("/api/send-to-user", { "user-id": "42", message: { type: "probe" } });
    await probe; // sent after the second notification, so that one has been dispatched by now
    assert.equal(received.length, 1);
  });

  test("on(\"*\") receives every server message of any type, after the type's own handlers", async () => {
    const client = await connected();
    const seen = [];
    client.on("alert", () => seen.push("typed"));
    const off = client.on("*", (message) => seen.push(message.type));
    await server.api("/api/send-to-user", { "user-id": "42", message: { type: "alert" } });
    await server.api("/api/broadcast", { message: { type: "anything-at-all" } });
    await waitFor(() => seen.length === 3, { what: "catch-all deliveries" });
    assert.deepEqual(seen, ["typed", "alert", "anything-at-all"]);
    off();
    const probe = nextEvent(client, "probe");
    await server.api("/api/broadcast", { message: { type: "probe" } });
    await probe;
    assert.equal(seen.length, 3);
  });

  test("job progress reaches the one connection named by connectionId", async () => {
    const worker = await connected();
    const other = await connected();
    const progress = [];
    worker.on("job-progress", (message) => progress.push(message.progress));
    other.on("job-progress", () => assert.fail("delivered to another connection"));
    for (const step of [25, 50, 100]) {
      const result = await server.api("/api/send-to-connection", {
        "connection-id": worker.connectionId, message: { type: "job-progress", progress: step },
      });
      assert.equal(result.delivered, true);
    }
    await waitFor(() => progress.length === 3, { what: "three progress messages" });
    assert.deepEqual(progress, [25, 50, 100]);
  });

  test("subscribe delivers topic publishes from the API, and only for that topic", async () => {
    const client = await connected();
    const received = [];
    const subscription = client.subscribe("metrics:cpu", (message) => received.push(message));
    assert.equal(subscription.topic, "metrics:cpu");
    await withDeadline(subscription.ready, 5000, "ready");
    const other = client.subscribe("metrics:memory", () => assert.fail("wrong topic"));
    await withDeadline(other.ready, 5000, "ready");

    const result = await server.api("/api/publish", { topic: "metrics:cpu", message: { type: "metrics-update", value: 0.5 } });
    assert.equal(result.delivered, 1);
    await waitFor(() => received.length === 1, { what: "topic message" });
    assert.equal(received[0].topic, "metrics:cpu");
    assert.equal(received[0].type, "metrics-update");
    assert.equal(received[0].value, 0.5);

    await withDeadline(subscription.unsubscribe(), 5000, "unsubscribe");
    const after = await server.api("/api/publish", { topic: "metrics:cpu", message: { type: "metrics-update", value: 1 } });
    assert.equal(after.delivered, 0, "the server subscription ends with the last handler");
  });

  test("handlers on one topic share one server subscription", async () => {
    const client = await connected();
    const first = [];
    const second = [];
    const a = client.subscribe("order:7", (message) => first.push(message.n));
    const b = client.subscribe("order:7", (message) => second.push(message.n));
    await withDeadline(Promise.all([a.ready, b.ready]), 5000, "ready");
    assert.equal((await server.api("/api/publish", { topic: "order:7", message: { type: "order", n: 1 } })).delivered, 1,
      "one connection, one delivery");
    await waitFor(() => first.length === 1 && second.length === 1, { what: "both handlers" });

    await withDeadline(a.unsubscribe(), 5000, "unsubscribe");
    assert.equal((await server.api("/api/publish", { topic: "order:7", message: { type: "order", n: 2 } })).delivered, 1,
      "the remaining handler keeps the subscription");
    await waitFor(() => second.length === 2, { what: "second handler" });
    assert.deepEqual(first, [1]);

    await withDeadline(b.unsubscribe(), 5000, "unsubscribe");
    assert.equal((await server.api("/api/publish", { topic: "order:7", message: { type: "order", n: 3 } })).delivered, 0);
  });

  test("a forbidden subscription rejects ready with code forbidden and delivers nothing", async () => {
    const client = await connected();
    const subscription = client.subscribe("user:other", () => assert.fail("delivered a forbidden topic"));
    const error = await withDeadline(subscription.ready.then(() => null, (e) => e), 5000, "ready");
    assert.ok(error instanceof RealtimeError, "a RealtimeError");
    assert.equal(error.code, "forbidden");
    assert.equal(error.topic, "user:other");
    assert.ok(error.message.length > 0);
    assert.equal((await server.api("/api/publish", { topic: "user:other", message: { type: "x" } })).delivered, 0);

    const own = client.subscribe("user:42", () => {});
    await withDeadline(own.ready, 5000, "own user topic");
  });

  test("an invalid topic rejects ready with code invalid-topic", async () => {
    const client = await connected();
    const error = await withDeadline(client.subscribe("has space", () => {}).ready.then(() => null, (e) => e), 5000, "ready");
    assert.equal(error?.code, "invalid-topic");
  });

  test("publish resolves with the delivered count; a topic outside the patterns rejects with forbidden", async () => {
    const publisher = await connected();
    const listeners = [await connected(), await connected()];
    const got = [];
    await withDeadline(Promise.all(listeners.map((client) => client.subscribe("chat:lobby", (m) => got.push(m.text)).ready)), 5000, "ready");
    const result = await withDeadline(publisher.publish("chat:lobby", { type: "chat", text: "hi" }), 5000, "publish");
    assert.deepEqual(result, { delivered: 2 });
    await waitFor(() => got.length === 2, { what: "two deliveries" });

    const refused = await withDeadline(publisher.publish("orders:1", { type: "chat" }).then(() => null, (e) => e), 5000, "refusal");
    assert.ok(refused instanceof RealtimeError);
    assert.equal(refused.code, "forbidden");
  });

  test("ping resolves with the pong", async () => {
    const client = await connected();
    const pongs = [];
    client.on("pong", (message) => pongs.push(message));
    assert.equal(await withDeadline(client.ping(), 5000, "ping"), undefined);
    assert.equal(pongs.length, 1, "the reply is also an ordinary pong message");
  });

  test("concurrent requests are matched to their replies by ref, not by order", async () => {
    const client = await connected();
    await withDeadline(client.subscribe("chat:busy", () => {}).ready, 5000, "ready");
    // The server answers a publish after the fan-out, so pings sent later overtake it.
    const calls = [];
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 0) calls.push(client.publish("chat:busy", { type: "chat", i }).then((r) => ["published", r.delivered]));
      else if (i % 3 === 1) calls.push(client.publish("chat:empty", { type: "chat", i }).then((r) => ["published", r.delivered]));
      else calls.push(client.ping().then((r) => ["pong", r]));
    }
    const forbidden = client.publish("nope:1", { type: "x" }).then(() => "resolved", (e) => e.code);
    const results = await withDeadline(Promise.all(calls), 5000, "30 replies");
    results.forEach((result, i) => {
      const expected = i % 3 === 0 ? ["published", 1] : i % 3 === 1 ? ["published", 0] : ["pong", undefined];
      assert.deepEqual(result, expected, `request ${i}`);
    });
    assert.equal(await withDeadline(forbidden, 5000, "refusal"), "forbidden");
  });

  test("commands issued before connect are queued, sent after connect, and over the bound reject with queue-full", async () => {
    const client = newClient({ maxQueuedCommands: 2 });
    const received = [];
    client.subscribe("chat:queued", (message) => received.push(message.n));
    const first = client.publish("chat:queued", { type: "chat", n: 1 });
    const second = client.publish("chat:queued", { type: "chat", n: 2 });
    const third = await withDeadline(client.ping().then(() => null, (e) => e), 1000, "queue-full");
    assert.ok(third instanceof RealtimeError);
    assert.equal(third.code, "queue-full");

    await withDeadline(client.connect(), 5000, "connect()");
    // Subscriptions go out before the queue, so the queued publishes reach this client.
    assert.deepEqual(await withDeadline(Promise.all([first, second]), 5000, "queued publishes"), [{ delivered: 1 }, { delivered: 1 }]);
    await waitFor(() => received.length === 2, { what: "queued publishes delivered" });
    assert.deepEqual(received, [1, 2], "sent in issue order");
  });

  test("commands issued while reconnecting are queued and flushed after the reconnect", async () => {
    const client = await connected({ reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, maxQueuedCommands: 2 });
    const received = [];
    await withDeadline(client.subscribe("chat:resume", (message) => received.push(message.n)).ready, 5000, "ready");
    const firstId = client.connectionId;
    const issued = new Promise((resolve) => {
      const off = client.on("state", (state) => {
        if (state !== "reconnecting") return;
        off();
        const queued = [
          client.publish("chat:resume", { type: "chat", n: 1 }),
          client.publish("chat:resume", { type: "chat", n: 2 }),
        ];
        const overflow = client.publish("chat:resume", { type: "chat", n: 3 }).then(() => null, (e) => e.code);
        resolve({ queued, overflow });
      });
    });
    const dropped = nextEvent(client, "disconnected");
    assert.deepEqual(await server.api("/api/disconnect", { "connection-id": firstId }), { disconnected: 1 });
    const info = await dropped;
    assert.equal(info.willReconnect, true);
    const { queued, overflow } = await withDeadline(issued, 5000, "reconnecting state");
    assert.equal(await withDeadline(overflow, 1000, "queue-full"), "queue-full");
    assert.deepEqual(await withDeadline(Promise.all(queued), 5000, "flushed publishes"), [{ delivered: 1 }, { delivered: 1 }]);
    assert.notEqual(client.connectionId, firstId);
    await waitFor(() => received.length === 2, { what: "messages after the reconnect" });
    assert.deepEqual(received, [1, 2]);
  });

  test("connect(), disconnect(), connect() in a row leaves one connection with its subscriptions (React StrictMode's effect order)", async () => {
    let tokens = 0;
    const client = newClient({ getToken: () => { tokens += 1; return makeToken({ userId: "strict-1" }); } });
    const got = [];
    client.subscribe("chat:strict", (message) => got.push(message.n));
    const first = client.connect();
    client.disconnect();
    const cancelled = await withDeadline(first.then(() => null, (e) => e), 1000, "cancelled connect()");
    assert.equal(cancelled?.code, "disconnected", "the first connect() was cancelled");
    await withDeadline(client.connect(), 5000, "second connect()");
    assert.equal(client.state, "connected");
    assert.equal(tokens, 2);
    await waitFor(async () => (await server.api("/api/publish", { topic: "chat:strict", message: { type: "chat", n: 1 } })).delivered === 1,
      { what: "the subscription to be sent again" });
    await waitFor(() => got.length >= 1, { what: "a message" });
    const { delivered } = await server.api("/api/send-to-user", { "user-id": "strict-1", message: { type: "probe" } });
    assert.equal(delivered, 1, "exactly one live connection");
  });

  test("after disconnect() the client never reconnects and pending requests reject with disconnected", async () => {
    let tokens = 0;
    const client = newClient({
      getToken: () => { tokens += 1; return makeToken({ userId: "disc-1" }); },
      reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    });
    await withDeadline(client.connect(), 5000, "connect()");
    const states = [];
    client.on("state", (state) => states.push(state));
    const disconnected = [];
    client.on("disconnected", (info) => disconnected.push(info));

    await server.pause(); // the ping stays unanswered
    let pending;
    try {
      pending = client.ping().then(() => null, (e) => e.code);
      await sleep(20);
      client.disconnect();
    } finally {
      server.resume();
    }
    assert.equal(await withDeadline(pending, 1000, "pending ping"), "disconnected");
    assert.equal(await withDeadline(client.ping().then(() => null, (e) => e.code), 1000, "refusal"), "disconnected");
    assert.equal(client.state, "closed");
    assert.equal(client.connectionId, null);
    assert.deepEqual(disconnected, [{ code: 1000, reason: "client disconnect", willReconnect: false }]);

    await sleep(500); // many times the 5-20 ms backoff
    assert.equal(tokens, 1, "getToken is not called again");
    assert.deepEqual(states, ["closed"]);
    const count = await waitFor(async () => {
      const { delivered } = await server.api("/api/send-to-user", { "user-id": "disc-1", message: { type: "x" } });
      return delivered === 0 ? "gone" : null;
    }, { what: "the server to drop the connection" });
    assert.equal(count, "gone");
  });
});
