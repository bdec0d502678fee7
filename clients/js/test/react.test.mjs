// useRealtime against the real server, rendered with react-test-renderer (React 18).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import React from "react";
import TestRenderer from "react-test-renderer";
import { usePresence, useRealtime } from "../dist/react.js";
import { RealtimeClient } from "../dist/index.js";
import { WebSocket, clientOptions, makeToken, nextEvent, startServer, waitFor } from "./support/harness.mjs";

const { act } = TestRenderer;
const h = React.createElement;
// Updates arrive from real sockets, outside act(); the legacy root applies them synchronously.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

let server;

before(async () => {
  server = await startServer({ args: ["--history", "chat:**=100", "--presence", "room:*"] });
});

after(async () => {
  await server.stop();
});

async function connectionsOf(userId) {
  const { delivered } = await server.api("/api/send-to-user", { "user-id": userId, message: { type: "probe" } });
  return delivered;
}

test("useRealtime connects on mount, tracks connected, delivers messages, and disconnects on unmount", async () => {
  const seen = [];
  function Dashboard({ token }) {
    const { client, connected } = useRealtime(server.wsUrl, token, { WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
    const [cpu, setCpu] = React.useState(null);
    React.useEffect(() => client.on("metrics-update", (message) => setCpu(message.cpu)), [client]);
    seen.push({ client, connected });
    return h("p", null, `${connected ? "online" : "offline"} cpu=${cpu ?? "-"}`);
  }
  const text = (renderer) => renderer.toJSON().children.join("");

  let renderer;
  let unmounted = false;
  act(() => {
    renderer = TestRenderer.create(h(Dashboard, { token: makeToken({ userId: "react-1" }) }));
  });
  try {
    assert.equal(text(renderer), "offline cpu=-");
    await waitFor(() => text(renderer).startsWith("online"), { what: "connected to become true" });
    const client = seen.at(-1).client;
    assert.equal(client.state, "connected");
    assert.equal(await connectionsOf("react-1"), 1);

    await server.api("/api/send-to-connection", { "connection-id": client.connectionId, message: { type: "metrics-update", cpu: 42 } });
    await waitFor(() => text(renderer) === "online cpu=42", { what: "the message to render" });

    // A new token from props is used at the next reconnect, by the same client.
    act(() => {
      renderer.update(h(Dashboard, { token: makeToken({ userId: "react-2" }) }));
    });
    assert.ok(seen.every((render) => render.client === client), "one client per url");
    const rendersBefore = seen.length;
    await server.api("/api/disconnect", { "user-id": "react-1" });
    await waitFor(() => client.state === "connected" && client.userId === "react-2", { what: "reconnect with the new token" });
    await waitFor(() => text(renderer).startsWith("online"), { what: "connected again" });
    assert.ok(seen.slice(rendersBefore).some((render) => !render.connected), "connected went false while reconnecting");

    act(() => {
      renderer.unmount();
    });
    unmounted = true;
    assert.equal(client.state, "closed", "unmount disconnects");
    await waitFor(async () => (await connectionsOf("react-2")) === 0, { what: "the server to see the close" });
  } finally {
    // A failed assertion must not leave a client reconnecting: the process would never exit.
    if (!unmounted) act(() => renderer.unmount());
  }
});

test("useRealtime without a WebSocket implementation says so on the console instead of retrying", async (t) => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  delete globalThis.WebSocket; // Node 20 has none; Node 22+ does
  const logged = [];
  const consoleError = console.error;
  console.error = (...args) => logged.push(args);
  t.after(() => {
    console.error = consoleError;
    if (saved) Object.defineProperty(globalThis, "WebSocket", saved);
  });
  let client;
  function Status() {
    ({ client } = useRealtime(server.wsUrl, makeToken({ userId: "react-3" })));
    return null;
  }
  let renderer;
  act(() => {
    renderer = TestRenderer.create(h(Status));
  });
  await waitFor(() => logged.length > 0, { what: "the console error" });
  act(() => renderer.unmount());
  assert.equal(logged[0][0]?.code, "no-websocket");
  assert.match(logged[0][0].message, /\{ WebSocket \}/);
  assert.notEqual(client.state, "reconnecting", "no retry loop");
});

test("useRealtime exposes the last recovery after a reconnect on a topic with history", async () => {
  let hold = false;
  let release = () => {};
  const getToken = async () => {
    if (hold) await new Promise((resolve) => { release = resolve; });
    return makeToken({ userId: "react-4" });
  };
  const renders = [];
  const ticks = [];
  function Room() {
    const { client, recovery } = useRealtime(server.wsUrl, getToken, { WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
    React.useEffect(() => client.subscribe("chat:react", (m) => ticks.push(m.seq)).unsubscribe, [client]);
    renders.push({ client, recovery });
    return h("p", null, recovery ? `recovered=${recovery.recovered} replayed=${recovery.replayed}` : "no recovery");
  }
  let renderer;
  act(() => {
    renderer = TestRenderer.create(h(Room));
  });
  try {
    const text = () => renderer.toJSON().children.join("");
    const client = renders[0].client;
    await waitFor(() => client.position("chat:react") !== undefined, { what: "the subscription" });
    assert.equal(text(), "no recovery");
    hold = true;
    const disconnected = nextEvent(client, "disconnected");
    await server.api("/api/disconnect", { "user-id": "react-4" });
    await disconnected;
    for (let seq = 1; seq <= 4; seq++) await server.api("/api/publish", { topic: "chat:react", message: { type: "tick", seq } });
    hold = false;
    release();
    await waitFor(() => text() === "recovered=true replayed=4", { what: "the recovery to render" });
    assert.deepEqual(ticks, [1, 2, 3, 4]);
  } finally {
    act(() => renderer.unmount());
  }
});

test("usePresence renders who is on a topic, follows joins and leaves, and unsubscribes on unmount", async () => {
  const renders = [];
  function Room({ topic }) {
    const { client } = useRealtime(server.wsUrl, makeToken({ userId: "react-5", info: { name: "Ada" } }), { WebSocket });
    const presence = usePresence(client, topic);
    renders.push({ client, presence });
    const names = presence.users.map((u) => `${u.userId}:${u.info.name ?? "-"}`).sort().join(",");
    return h("p", null, `${presence.synced ? "synced" : "not synced"} [${names}]${presence.truncated ? " +" : ""}${presence.error ? ` error=${presence.error.code}` : ""}`);
  }
  let renderer;
  act(() => {
    renderer = TestRenderer.create(h(Room, { topic: "room:react" }));
  });
  const text = () => renderer.toJSON().children.join("");
  const others = [];
  try {
    assert.equal(text(), "not synced []");
    await waitFor(() => text() === "synced [react-5:Ada]", { what: "the first list" });

    const other = new RealtimeClient(server.wsUrl, clientOptions({ token: makeToken({ userId: "react-6", info: { name: "Bob" } }) }));
    others.push(other);
    await other.connect();
    await other.subscribe("room:react", () => {}).ready;
    await waitFor(() => text() === "synced [react-5:Ada,react-6:Bob]", { what: "the join to render" });
    other.disconnect();
    await waitFor(() => text() === "synced [react-5:Ada]", { what: "the leave to render" });

    // Another topic: the old list goes, the new one is listed, the old subscription ends.
    const client = renders.at(-1).client;
    act(() => {
      renderer.update(h(Room, { topic: "room:other" }));
    });
    await waitFor(() => text() === "synced [react-5:Ada]" && client.members("room:other"), { what: "the new topic's list" });
    assert.equal(client.members("room:react"), undefined);
    await waitFor(async () => (await server.api("/api/presence?topic=room:react")).users.length === 0, { what: "the old topic to be left" });

    // A topic without presence: no list, the error says why.
    act(() => {
      renderer.update(h(Room, { topic: "chat:no-presence" }));
    });
    await waitFor(() => text() === "not synced [] error=bad-request", { what: "the refusal to render" });

    act(() => {
      renderer.update(h(Room, { topic: "room:react" }));
    });
    await waitFor(() => text() === "synced [react-5:Ada]", { what: "the list again" });
  } finally {
    for (const other of others) other.disconnect();
    act(() => renderer.unmount());
  }
  await waitFor(async () => (await server.api("/api/presence?topic=room:react")).users.length === 0, { what: "unmount to leave the topic" });
});
