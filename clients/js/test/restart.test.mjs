// Server restart mid-stream: SIGTERM (server-shutdown, then close 1001), a new server process on
// the same port, and the client comes back by itself, resubscribed, with no help from the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient } from "../dist/index.js";
import { clientOptions, makeToken, nextEvent, sleep, startServer, waitFor, withDeadline } from "./support/harness.mjs";

test("the client reconnects and resubscribes after a server restart on the same port", async () => {
  const SHUTDOWN_DELAY_MS = 400;
  let server = await startServer();
  const port = server.port;
  const tokenCalls = [];
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: () => { tokenCalls.push(Date.now()); return makeToken({ userId: "restart-1" }); },
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    shutdownReconnectDelayMs: SHUTDOWN_DELAY_MS,
  }));
  const timeline = [];
  client.on("server-shutdown", (message) => timeline.push(["server-shutdown", message.message]));
  client.on("disconnected", (info) => timeline.push(["disconnected", info, Date.now()]));
  const received = [];
  const subscription = client.subscribe("chat:live", (message) => {
    if (message.type === "tick") received.push(message.seq);
  });

  // A publisher that keeps going through the restart; failed calls while down are expected.
  let seq = 0;
  let publishing = true;
  const publisher = (async () => {
    const deadline = Date.now() + 20_000;
    while (publishing && Date.now() < deadline) {
      const message = { type: "tick", seq: seq + 1 };
      try {
        await server.api("/api/publish", { topic: "chat:live", message });
        seq += 1;
      } catch {
        // server down or restarting
      }
      await sleep(15);
    }
  })();

  try {
    await withDeadline(client.connect(), 5000, "connect()");
    await withDeadline(subscription.ready, 5000, "ready");
    const firstId = client.connectionId;
    await waitFor(() => received.length >= 3, { what: "ticks before the restart" });

    const exit = await server.stop("SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null }, "graceful exit");
    await waitFor(() => timeline.length >= 2, { what: "server-shutdown and disconnected" });
    assert.equal(timeline[0][0], "server-shutdown", "the shutdown message comes first");
    assert.equal(timeline[1][0], "disconnected");
    assert.deepEqual(timeline[1][1], { code: 1001, reason: timeline[1][1].reason, willReconnect: true });
    const closedAt = timeline[1][2];
    const beforeRestart = received.length;

    const reconnected = nextEvent(client, "connected", { timeoutMs: 10_000 });
    server = await startServer({ port });
    const info = await reconnected;
    assert.notEqual(info.connectionId, firstId);
    assert.equal(client.state, "connected");
    assert.ok(tokenCalls.length >= 2, "getToken called for the reconnect");
    const firstRetry = tokenCalls[1] - closedAt;
    assert.ok(firstRetry >= SHUTDOWN_DELAY_MS - 5, `first reconnect attempt ${firstRetry} ms after the close, expected >= ${SHUTDOWN_DELAY_MS}`);

    // Resubscribed by the client itself: ticks published now arrive.
    await waitFor(() => received.length >= beforeRestart + 5, { timeoutMs: 5000, what: "ticks after the restart" });
    publishing = false;
    await publisher;
    await waitFor(() => received.at(-1) === seq, { what: `the last tick (${seq})` });
    for (let i = 1; i < received.length; i++) {
      assert.ok(received[i] > received[i - 1], `in order and without duplicates at ${i}: ${received.slice(i - 1, i + 1)}`);
    }
  } finally {
    publishing = false;
    await publisher;
    client.disconnect();
    await server.stop();
  }
});
