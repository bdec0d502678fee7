// History and recovery (--history) against the real server: the client remembers each stream's
// epoch and offset and, after every reconnect, asks for what it missed by itself. The app's
// getToken holds the reconnect while the test publishes through the HTTP API (which answers
// delivered: 0), so those messages can only arrive through the replay, whatever the timing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient } from "../dist/index.js";
import { clientOptions, makeToken, nextEvent, sleep, startServer, waitFor, withDeadline } from "./support/harness.mjs";

const HISTORY = ["--history", "chat:**=1000"];

/** A getToken the test can hold closed: every call waits until the gate is open. */
function gate() {
  let open = true;
  let waiters = [];
  return {
    close() { open = false; },
    open() { open = true; for (const w of waiters.splice(0)) w(); },
    async wait() { if (!open) await new Promise((resolve) => waiters.push(resolve)); },
  };
}

function recordingClient(server, userId, topic, extra = {}) {
  const held = gate();
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: async () => { await held.wait(); return makeToken({ userId }); },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    ...extra,
  }));
  const received = [];
  const recoveries = [];
  client.on("recovery", (info) => recoveries.push(info));
  const subscription = client.subscribe(topic, (message) => received.push(message));
  return { client, held, received, recoveries, subscription };
}

async function publish(server, topic, from, count) {
  const offsets = [];
  for (let seq = from; seq < from + count; seq++) {
    const answer = await server.api("/api/publish", { topic, message: { type: "tick", seq } });
    offsets.push(answer.offset);
  }
  return offsets;
}

/** Drops the user's connections from the server side and waits until the client noticed. */
async function dropWhileHeld(server, r, userId) {
  r.held.close();
  const disconnected = nextEvent(r.client, "disconnected");
  const answer = await server.api("/api/disconnect", { "user-id": userId });
  assert.equal(answer.disconnected, 1);
  await disconnected;
}

test("after a reconnect the missed messages are replayed exactly once, in order, then live ones follow", async () => {
  const server = await startServer({ args: HISTORY });
  const r = recordingClient(server, "rec-1", "chat:room");
  try {
    await withDeadline(r.client.connect(), 5000, "connect()");
    await withDeadline(r.subscription.ready, 5000, "ready");
    const epoch = r.client.position("chat:room").epoch;
    assert.deepEqual(r.client.position("chat:room"), { epoch, offset: 0 });
    assert.deepEqual(await publish(server, "chat:room", 1, 5), [1, 2, 3, 4, 5]);
    await waitFor(() => r.received.length === 5, { what: "5 live messages" });

    for (const [round, from] of [[1, 6], [2, 13]]) {
      await dropWhileHeld(server, r, "rec-1");
      // Nobody is subscribed now: these reach no one live.
      for (let seq = from; seq < from + 7; seq++) {
        const answer = await server.api("/api/publish", { topic: "chat:room", message: { type: "tick", seq } });
        assert.equal(answer.delivered, 0);
      }
      const recovered = nextEvent(r.client, "recovery", { timeoutMs: 10_000 });
      r.held.open();
      assert.deepEqual(await recovered, { topic: "chat:room", recovered: true, replayed: 7 }, `round ${round}`);
    }
    assert.deepEqual(await publish(server, "chat:room", 20, 3), [20, 21, 22]);
    await waitFor(() => r.received.length === 22, { what: "22 messages" });
    assert.deepEqual(r.received.map((m) => m.seq), Array.from({ length: 22 }, (_, i) => i + 1));
    assert.deepEqual(r.received.map((m) => m.offset), Array.from({ length: 22 }, (_, i) => i + 1));
    assert.equal(r.recoveries.length, 2);
    assert.deepEqual(r.client.position("chat:room"), { epoch, offset: 22 });
  } finally {
    r.client.disconnect();
    await server.stop();
  }
});

test("a server restart loses the history: recovered false, and the client takes the new epoch", async () => {
  let server = await startServer({ args: HISTORY });
  const port = server.port;
  const r = recordingClient(server, "rec-2", "chat:room");
  try {
    await withDeadline(r.client.connect(), 5000, "connect()");
    await withDeadline(r.subscription.ready, 5000, "ready");
    await publish(server, "chat:room", 1, 3);
    await waitFor(() => r.received.length === 3, { what: "3 messages" });
    const before = r.client.position("chat:room");
    assert.equal(before.offset, 3);

    r.held.close();
    await server.stop();
    server = await startServer({ port, args: HISTORY });
    await publish(server, "chat:room", 4, 2); // offsets 1 and 2 of a new epoch, nobody subscribed
    const recovery = nextEvent(r.client, "recovery", { timeoutMs: 10_000 });
    r.held.open();
    assert.deepEqual(await recovery, { topic: "chat:room", recovered: false, replayed: 0 });
    const after = r.client.position("chat:room");
    assert.notEqual(after.epoch, before.epoch);
    assert.equal(after.offset, 2);
    // The new epoch's offset 3 equals the old position's offset: it is delivered all the same.
    await publish(server, "chat:room", 6, 1);
    await waitFor(() => r.received.length === 4, { what: "the live message of the new epoch" });
    assert.deepEqual(r.received.map((m) => m.offset), [1, 2, 3, 3]);
    assert.equal(r.received[3].seq, 6);
  } finally {
    r.client.disconnect();
    await server.stop();
  }
});

test("a topic without history keeps its old behaviour: no position, no recovery event", async () => {
  const server = await startServer({ args: HISTORY });
  const r = recordingClient(server, "rec-3", "order:1"); // outside every --history rule
  try {
    await withDeadline(r.client.connect(), 5000, "connect()");
    await withDeadline(r.subscription.ready, 5000, "ready");
    assert.equal(r.client.position("order:1"), undefined);
    await dropWhileHeld(server, r, "rec-3");
    const reconnected = nextEvent(r.client, "connected", { timeoutMs: 10_000 });
    r.held.open();
    await reconnected;
    await withDeadline(r.subscription.ready, 5000, "ready");
    await waitFor(async () => (await server.api("/api/publish", { topic: "order:1", message: { type: "tick", seq: 1 } })).delivered === 1,
      { what: "the resubscription" });
    await waitFor(() => r.received.length >= 1, { what: "a live message after the reconnect" });
    assert.equal(r.received[0].offset, undefined);
    assert.deepEqual(r.recoveries, []);
  } finally {
    r.client.disconnect();
    await server.stop();
  }
});

test("a stream that restarts under a subscriber is followed, then reported as not recovered", async () => {
  // TTL 1 s: once its newest message is older than that, the stream is dropped and the next
  // publish starts a new epoch at offset 1. The messages carry no epoch, so the client sees the
  // offset go back.
  const server = await startServer({ args: ["--history", "chat:**=1000/1"] });
  const r = recordingClient(server, "rec-4", "chat:brief");
  try {
    await withDeadline(r.client.connect(), 5000, "connect()");
    await withDeadline(r.subscription.ready, 5000, "ready");
    assert.deepEqual(await publish(server, "chat:brief", 1, 2), [1, 2]);
    await waitFor(() => r.received.length === 2, { what: "2 messages" });
    let restarted;
    for (let tries = 0; tries < 20 && restarted !== 1; tries++) {
      await sleep(1200);
      [restarted] = await publish(server, "chat:brief", 100 + tries, 1);
    }
    assert.equal(restarted, 1, "the stream expired and restarted");
    await waitFor(() => r.received.at(-1)?.offset === 1, { what: "the new epoch's first message" });
    assert.equal(r.client.position("chat:brief"), undefined, "the epoch is unknown now");

    await dropWhileHeld(server, r, "rec-4");
    const recovery = nextEvent(r.client, "recovery", { timeoutMs: 10_000 });
    r.held.open();
    assert.deepEqual(await recovery, { topic: "chat:brief", recovered: false, replayed: 0 });
    assert.equal(typeof r.client.position("chat:brief")?.epoch, "string");
  } finally {
    r.client.disconnect();
    await server.stop();
  }
});

test("connections killed mid-stream while messages flow: every message once, in order", async () => {
  const server = await startServer({ args: HISTORY });
  const r = recordingClient(server, "rec-5", "chat:flow");
  const TOTAL = 300;
  try {
    await withDeadline(r.client.connect(), 5000, "connect()");
    await withDeadline(r.subscription.ready, 5000, "ready");
    let drops = 0;
    for (let seq = 1; seq <= TOTAL; seq++) {
      await server.api("/api/publish", { topic: "chat:flow", message: { type: "tick", seq } });
      // Kill the connection every 60 messages, without waiting: the client reconnects while the
      // publishing goes on.
      if (seq % 60 === 30) {
        await waitFor(() => r.client.state === "connected", { timeoutMs: 10_000, what: "the client back" });
        const { disconnected } = await server.api("/api/disconnect", { "user-id": "rec-5" });
        drops += disconnected;
      }
    }
    await waitFor(() => r.received.length >= TOTAL, { timeoutMs: 15_000, what: `${TOTAL} messages` });
    await sleep(200); // anything sent twice would arrive right behind
    assert.deepEqual(r.received.map((m) => m.seq), Array.from({ length: TOTAL }, (_, i) => i + 1));
    assert.equal(drops, TOTAL / 60, "connections killed");
    // A recovery cut short by the next kill is not reported; the last one always completes.
    assert.ok(r.recoveries.length >= 1 && r.recoveries.every((x) => x.recovered), JSON.stringify(r.recoveries));
  } finally {
    r.client.disconnect();
    await server.stop();
  }
});
