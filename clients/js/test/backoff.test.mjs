// Reconnection backoff: exponential ceiling, full jitter, a cap, and a reset after success.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient, backoffDelay } from "../dist/index.js";
import { clientOptions, freePort, makeToken, nextEvent, startServer, waitFor, withDeadline } from "./support/harness.mjs";

const options = { initialDelayMs: 500, maxDelayMs: 30_000, factor: 2 };

test("backoffDelay scales random() by min(max, initial * factor^attempt)", () => {
  const half = () => 0.5;
  assert.equal(backoffDelay(0, options, half), 250);
  assert.equal(backoffDelay(1, options, half), 500);
  assert.equal(backoffDelay(3, options, half), 2000);
  assert.equal(backoffDelay(6, options, half), 15_000, "500 * 2^6 = 32 000 is capped at 30 000");
  assert.equal(backoffDelay(3, options, () => 0), 0, "full jitter starts at zero");
  assert.equal(backoffDelay(3, options, () => 0.999), 3996);
});

test("backoffDelay never exceeds maxDelayMs and never goes negative or NaN", () => {
  for (const attempt of [0, 1, 5, 10, 50, 1000, 1e6, Infinity]) {
    for (const r of [0, 0.3, 0.999999, 1, -1, 2, NaN]) {
      const delay = backoffDelay(attempt, options, () => r);
      assert.ok(Number.isFinite(delay) && delay >= 0 && delay <= 30_000, `attempt ${attempt}, random ${r}: ${delay}`);
    }
  }
  assert.equal(backoffDelay(40, options, () => 1), 30_000);
});

test("backoffDelay defaults to 500 ms initial, factor 2, 30 s cap, jittered by Math.random", () => {
  assert.equal(backoffDelay(0, {}, () => 1), 500);
  assert.equal(backoffDelay(2, {}, () => 1), 2000);
  assert.equal(backoffDelay(20, {}, () => 1), 30_000);
  const samples = Array.from({ length: 2000 }, () => backoffDelay(4, {}));
  assert.ok(samples.every((d) => d >= 0 && d <= 8000));
  assert.ok(new Set(samples).size > 500, "jittered, not a fixed delay");
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(mean > 3000 && mean < 5000, `uniform over [0, 8000]: mean ${mean}`);
});

/** Times between connection attempts (getToken calls) against a port where nothing listens. */
async function attemptGaps(random, attempts) {
  const port = await freePort();
  const calls = [];
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, clientOptions({
    getToken: () => { calls.push(performance.now()); return "unused"; },
    reconnect: { initialDelayMs: 40, maxDelayMs: 160, factor: 2 },
    random,
  }));
  client.on("error", () => {});
  client.connect().catch(() => {});
  try {
    await waitFor(() => calls.length >= attempts, { timeoutMs: 10_000, what: `${attempts} attempts` });
  } finally {
    client.disconnect();
  }
  return calls.slice(1, attempts).map((t, i) => t - calls[i]);
}

test("the client waits the jittered delays between attempts, capped at maxDelayMs", async () => {
  const longest = await attemptGaps(() => 1, 7);
  // Ceilings 40, 80, 160, 160, 160, 160 ms (plus the refused connection's own few ms).
  const expected = [40, 80, 160, 160, 160, 160];
  longest.forEach((gap, i) => {
    assert.ok(gap >= expected[i] - 2, `gap ${i} is ${gap} ms, at least ${expected[i]}`);
    assert.ok(gap < expected[i] + 150, `gap ${i} is ${gap} ms, about ${expected[i]}`);
  });

  const shortest = await attemptGaps(() => 0, 7);
  const total = shortest.reduce((a, b) => a + b, 0);
  assert.ok(total < 400, `with random() = 0 the retries are immediate: ${Math.round(total)} ms for 6`);
});

test("the attempt counter resets after a successful connection", async () => {
  const port = await freePort();
  const calls = [];
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, clientOptions({
    getToken: () => { calls.push(Date.now()); return makeToken({ userId: "reset-1" }); },
    reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, factor: 2 },
    random: () => 1,
  }));
  client.on("error", () => {});
  let server;
  try {
    const connected = client.connect();
    await waitFor(() => calls.length >= 4, { timeoutMs: 5000, what: "four failed attempts" }); // 100+200+400 ms
    server = await startServer({ port });
    await withDeadline(connected, 5000, "connect() once the server is up"); // next ceiling 800 ms
    const dropped = nextEvent(client, "disconnected");
    await server.api("/api/disconnect", { "user-id": "reset-1" });
    const droppedAt = Date.now();
    await dropped;
    const before = calls.length;
    await waitFor(() => calls.length > before, { timeoutMs: 5000, what: "the next attempt" });
    const gap = calls.at(-1) - droppedAt;
    assert.ok(gap < 100 + 300, `first retry after ${gap} ms: back to the 100 ms ceiling, not 1600 ms`);
  } finally {
    client.disconnect();
    await server?.stop();
  }
});
