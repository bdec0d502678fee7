// Pusher protocol compatibility (docs/pusher.md) with the real libraries, unchanged: pusher-js 8
// (Node build) as the client, the `pusher` server library for channel authorization and the
// signed HTTP API, Laravel Echo 2 on top of pusher-js, and a native protocol client (ws) next
// to them. One real server process per suite; a real Redis for cluster mode.
//
//   REALTIME_SERVER  server binary (default ../../build/release/realtime-server)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";

import {
  backend, client, connected, loadEcho, nativeClient, nativePublish, Pusher, PusherServer, recorder, sleep, startRedis,
  startServer, subscribed, until,
} from "./node/pusher_harness.mjs";

const APP = ["1", "app-key", "app-secret-0001"];
const OTHER = ["2", "other-key", "other-secret-0002"];
const WAIT = 5000;

const clients = [];
function track(p) {
  clients.push(p);
  return p;
}
function disconnectAll() {
  for (const p of clients.splice(0)) p.disconnect();
}

describe("pusher protocol, single node", () => {
  let server;
  let api;
  before(async () => {
    server = await startServer({ apps: [APP.join(":"), OTHER.join(":")], args: ["--publish-patterns", "**"] });
    api = backend(server.port, APP);
  });
  after(async () => {
    disconnectAll();
    await server.stop();
  });

  test("connects with a Pusher socket id and an activity timeout", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    const socketId = await connected(p);
    assert.match(socketId, /^\d+\.\d+$/);
    assert.equal(p.connection.activityTimeout, 120000);
  });

  test("a public channel gets events the server library triggers, data decoded", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    const channel = p.subscribe("orders");
    await subscribed(channel);
    const got = new Promise((resolve) => channel.bind("order-shipped", resolve));
    const r = await api.trigger("orders", "order-shipped", { id: 7, items: ["a"] });
    assert.equal(r.status, 200);
    assert.deepEqual(await got, { id: 7, items: ["a"] });
  });

  test("one trigger to several channels, and batch_events, arrive in order", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    const a = p.subscribe("multi-a");
    const b = p.subscribe("multi-b");
    await Promise.all([subscribed(a), subscribed(b)]);
    const seen = [];
    a.bind_global((name, data) => { if (!name.startsWith("pusher")) seen.push(`a:${name}:${data.n}`); });
    b.bind_global((name, data) => { if (!name.startsWith("pusher")) seen.push(`b:${name}:${data.n}`); });
    await api.trigger(["multi-a", "multi-b"], "both", { n: 1 });
    await api.triggerBatch([
      { channel: "multi-a", name: "one", data: { n: 2 } },
      { channel: "multi-b", name: "two", data: { n: 3 } },
      { channel: "multi-a", name: "three", data: { n: 4 } },
    ]);
    await until("every event", WAIT, () => seen.length === 5);
    assert.deepEqual(seen.filter((s) => s.startsWith("a:")), ["a:both:1", "a:one:2", "a:three:4"]);
    assert.deepEqual(seen.filter((s) => s.startsWith("b:")), ["b:both:1", "b:two:3"]);
  });

  test("socket_id exclusion: the named connection does not get the event", async () => {
    const sender = track(client(server.port, APP[1], { lib: api }));
    const other = track(client(server.port, APP[1], { lib: api }));
    const senderChannel = sender.subscribe("excl");
    const otherChannel = other.subscribe("excl");
    await Promise.all([subscribed(senderChannel), subscribed(otherChannel)]);
    const senderEvents = recorder(senderChannel);
    const otherEvents = recorder(otherChannel);
    await api.trigger("excl", "first", { n: 1 }, { socket_id: sender.connection.socket_id });
    await api.trigger("excl", "second", { n: 2 });
    await until("both events at the other client", WAIT, () => otherEvents.length === 2);
    await until("the second event at the sender", WAIT, () => senderEvents.some((e) => e.name === "second"));
    assert.deepEqual(senderEvents.map((e) => e.name), ["second"]);
  });

  test("private channels need the app's signature", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    await subscribed(p.subscribe("private-room"));
    const wrong = backend(server.port, [APP[0], APP[1], "not-the-secret"]);
    const q = track(client(server.port, APP[1], { authorizeWith: wrong }));
    const err = await subscribed(q.subscribe("private-room")).then(() => null, (e) => e.err);
    assert.ok(err, "a wrong signature must not subscribe");
    assert.equal(err.status, 401);
    assert.equal(err.type, "AuthError");
    // Nothing sent to the channel reaches the refused client.
    const events = recorder(q.channel("private-room"));
    const seen = new Promise((resolve) => p.channel("private-room").bind("secret", resolve));
    await api.trigger("private-room", "secret", { x: 1 });
    await seen;
    assert.deepEqual(events.filter((e) => e.name === "secret"), []);
  });

  test("private-encrypted channels: the server relays ciphertext it cannot read", async () => {
    // The backend library encrypts with a key derived from its master key and the channel; the
    // auth endpoint hands the client the same key (shared_secret). The server sees neither.
    const encrypting = new PusherServer({
      appId: APP[0], key: APP[1], secret: APP[2], host: "127.0.0.1", port: String(server.port), useTLS: false,
      encryptionMasterKeyBase64: Buffer.alloc(32, 7).toString("base64"),
    });
    const p = track(client(server.port, APP[1], { lib: encrypting }));
    const frames = [];
    p.connection.bind("message", (m) => frames.push(m));
    const channel = p.subscribe("private-encrypted-vault");
    await subscribed(channel);
    const got = new Promise((resolve) => channel.bind("opened", resolve));
    await encrypting.trigger("private-encrypted-vault", "opened", { pin: "4711-secret" });
    assert.deepEqual(await got, { pin: "4711-secret" });
    const wire = frames.find((m) => m.event === "opened");
    assert.ok(wire.data.ciphertext && wire.data.nonce, JSON.stringify(wire));
    assert.ok(!JSON.stringify(wire).includes("4711-secret"), "the plaintext crossed the server");
    // Client events are refused there, as on Pusher.
    const error = new Promise((resolve) => p.connection.bind("error", resolve));
    p.send_event("client-peek", {}, "private-encrypted-vault");
    assert.equal((await error).data.code, 4301);
  });

  test("a signature for another socket does not subscribe", async () => {
    const victim = track(client(server.port, APP[1], { lib: api }));
    await connected(victim);
    const stolen = api.authorizeChannel(victim.connection.socket_id, "private-stolen");
    const thief = track(client(server.port, APP[1], {
      extra: { channelAuthorization: { customHandler: (_params, cb) => cb(null, stolen) } },
    }));
    const err = await subscribed(thief.subscribe("private-stolen")).then(() => null, (e) => e.err);
    assert.equal(err?.status, 401);
  });

  test("client events reach the other subscribers, not the sender", async () => {
    const a = track(client(server.port, APP[1], { lib: api }));
    const b = track(client(server.port, APP[1], { lib: api }));
    const ca = a.subscribe("private-chat");
    const cb = b.subscribe("private-chat");
    await Promise.all([subscribed(ca), subscribed(cb)]);
    const aEvents = recorder(ca);
    const bGot = new Promise((resolve) => cb.bind("client-typing", resolve));
    assert.equal(ca.trigger("client-typing", { who: "a" }), true);
    assert.deepEqual(await bGot, { who: "a" });
    // The server's next event on the channel follows the client event on every connection.
    await api.trigger("private-chat", "after", {});
    await until("the server event at the sender", WAIT, () => aEvents.some((e) => e.name === "after"));
    assert.deepEqual(aEvents.map((e) => e.name), ["after"]);
  });

  test("client events on a public channel are refused with pusher:error", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    const channel = p.subscribe("public-chat");
    await subscribed(channel);
    const error = new Promise((resolve) => p.connection.bind("error", resolve));
    channel.trigger("client-nope", {});  // pusher-js warns but sends
    const e = await error;
    assert.equal(e.data.code, 4301);
  });

  test("presence: members, member_added and member_removed, user_info", async () => {
    const ann = track(client(server.port, APP[1], { lib: api, user: { user_id: "ann", user_info: { name: "Ann" } } }));
    const annChannel = ann.subscribe("presence-lobby");
    const annMembers = await subscribed(annChannel);
    assert.equal(annMembers.count, 1);
    assert.deepEqual(annMembers.me, { id: "ann", info: { name: "Ann" } });
    const added = new Promise((resolve) => annChannel.bind("pusher:member_added", resolve));
    const bob = track(client(server.port, APP[1], { lib: api, user: { user_id: 42, user_info: { name: "Bob" } } }));
    const bobChannel = bob.subscribe("presence-lobby");
    const bobMembers = await subscribed(bobChannel);
    assert.equal(bobMembers.count, 2);
    assert.deepEqual(bobMembers.get("ann").info, { name: "Ann" });
    assert.deepEqual(await added, { id: "42", info: { name: "Bob" } });
    const info = await (await api.get({ path: "/channels/presence-lobby", params: { info: "user_count" } })).json();
    assert.equal(info.occupied, true);
    assert.equal(info.user_count, 2);
    const users = await (await api.get({ path: "/channels/presence-lobby/users" })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ["42", "ann"]);
    const removed = new Promise((resolve) => annChannel.bind("pusher:member_removed", resolve));
    bob.unsubscribe("presence-lobby");
    assert.equal((await removed).id, "42");
    assert.equal(annChannel.members.count, 1);
  });

  test("a second connection of a present user is no new member", async () => {
    const first = track(client(server.port, APP[1], { lib: api, user: { user_id: "carl" } }));
    const watcher = track(client(server.port, APP[1], { lib: api, user: { user_id: "watcher" } }));
    const w = watcher.subscribe("presence-twice");
    await subscribed(w);
    await subscribed(first.subscribe("presence-twice"));
    await until("carl joined", WAIT, () => w.members.count === 2);
    const events = recorder(w);
    const second = track(client(server.port, APP[1], { lib: api, user: { user_id: "carl" } }));
    await subscribed(second.subscribe("presence-twice"));
    second.unsubscribe("presence-twice");
    await api.trigger("presence-twice", "marker", {});
    await until("the marker", WAIT, () => events.some((e) => e.name === "marker"));
    assert.deepEqual(events.map((e) => e.name), ["marker"]);
    assert.equal(w.members.count, 2);
  });

  test("events answer with the channels' counts when asked (info)", async () => {
    const p = track(client(server.port, APP[1], { lib: api, user: { user_id: "info-ann" } }));
    const q = track(client(server.port, APP[1], { lib: api, user: { user_id: "info-bob" } }));
    await Promise.all([subscribed(p.subscribe("info-chan")), subscribed(q.subscribe("info-chan")),
      subscribed(p.subscribe("presence-info"))]);
    const plain = await (await api.trigger("info-chan", "e", {})).json();
    assert.deepEqual(plain, {});
    const counted = await (await api.trigger(["info-chan", "info-empty"], "e", {}, { info: "subscription_count" })).json();
    assert.deepEqual(counted, { channels: { "info-chan": { subscription_count: 2 }, "info-empty": { subscription_count: 0 } } });
    // user_count is a presence channel's; presence counts come after its coalescing window.
    await until("the present user counted", WAIT, async () => {
      const both = await (await api.trigger(["presence-info", "info-chan"], "e", {},
        { info: "user_count,subscription_count" })).json();
      return JSON.stringify(both) === JSON.stringify({ channels: {
        "presence-info": { user_count: 1, subscription_count: 1 }, "info-chan": { subscription_count: 2 } } });
    });
    const batch = await (await api.triggerBatch([
      { channel: "info-chan", name: "e", data: {}, info: "subscription_count" },
      { channel: "info-chan", name: "e", data: {} },
    ])).json();
    assert.deepEqual(batch, { batch: [{ subscription_count: 2 }, {}] });
    await assert.rejects(api.trigger("info-chan", "e", {}, { info: "everything" }), (e) => e.status === 400);
  });

  test("channel info counts subscriptions", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    await subscribed(p.subscribe("counted"));
    const info = await (await api.get({ path: "/channels/counted" })).json();
    assert.deepEqual(info, { occupied: true, subscription_count: 1 });
    const empty = await (await api.get({ path: "/channels/nobody-here" })).json();
    assert.equal(empty.occupied, false);
  });

  test("listing channels, by prefix, with user counts", async () => {
    const other = backend(server.port, OTHER);
    const p = track(client(server.port, APP[1], { lib: api, user: { user_id: "lister" } }));
    const q = track(client(server.port, OTHER[1], { lib: other }));
    await Promise.all([subscribed(p.subscribe("list-a")), subscribed(p.subscribe("list-b")),
                       subscribed(p.subscribe("presence-list")), subscribed(q.subscribe("list-other-app"))]);
    const all = await (await api.get({ path: "/channels", params: { filter_by_prefix: "list-" } })).json();
    assert.deepEqual(all, { channels: { "list-a": {}, "list-b": {} } });
    const counted = await (await api.get({ path: "/channels", params: { filter_by_prefix: "list-a", info: "subscription_count" } })).json();
    assert.deepEqual(counted, { channels: { "list-a": { subscription_count: 1 } } });
    const presence = await (await api.get({ path: "/channels", params: { filter_by_prefix: "presence-list", info: "user_count" } })).json();
    assert.deepEqual(presence, { channels: { "presence-list": { user_count: 1 } } });
    const mine = await (await other.get({ path: "/channels", params: { filter_by_prefix: "list-" } })).json();
    assert.deepEqual(mine, { channels: { "list-other-app": {} } });
    await assert.rejects(api.get({ path: "/channels", params: { info: "user_count" } }), (e) => e.status === 400);
  });

  test("user authentication and terminate_connections", async () => {
    const p = track(client(server.port, APP[1], { lib: api, user: { user_id: "dora" } }));
    await connected(p);
    p.signin();
    await p.user.signinDonePromise;
    await until("the user channel", WAIT, () => p.user.serverToUserChannel?.subscribed);
    const userEvent = new Promise((resolve) => p.user.bind("note", resolve));
    await api.sendToUser("dora", "note", { hi: 1 });
    assert.deepEqual(await userEvent, { hi: 1 });
    const error = new Promise((resolve) => p.connection.bind("error", resolve));
    const r = await api.terminateUserConnections("dora");
    assert.equal(r.status, 200);
    assert.equal((await error).data.code, 4009);
    await until("the connection to stay down", WAIT, () => ["disconnected", "failed"].includes(p.connection.state));
    await sleep(1500);
    assert.ok(["disconnected", "failed"].includes(p.connection.state), `state ${p.connection.state}: it reconnected`);
  });

  test("requests signed with the wrong secret or key are refused", async () => {
    const wrongSecret = backend(server.port, [APP[0], APP[1], "not-the-secret"]);
    await assert.rejects(wrongSecret.trigger("orders", "x", {}), (e) => e.status === 401);
    const wrongKey = backend(server.port, [APP[0], OTHER[1], APP[2]]);
    await assert.rejects(wrongKey.trigger("orders", "x", {}), (e) => e.status === 401);
    const unknownApp = backend(server.port, ["99", APP[1], APP[2]]);
    await assert.rejects(unknownApp.trigger("orders", "x", {}), (e) => e.status === 404);
    // The library checks names itself; a raw signed request shows the server does too.
    await assert.rejects(api.post({ path: "/events", body: { name: "x", data: "{}", channel: "bad:channel" } }),
                         (e) => e.status === 400);
  });

  test("an unknown app key is refused with 4001 and no reconnect", async () => {
    const p = track(new Pusher("no-such-key", {
      wsHost: "127.0.0.1", wsPort: server.port, forceTLS: false, enabledTransports: ["ws"], cluster: "local",
    }));
    // The refusal comes in place of connection_established: pusher-js reports it as the
    // handshake's error and does not retry.
    const error = await new Promise((resolve) => p.connection.bind("error", resolve));
    assert.equal(error.error.data.code, 4001);
    await sleep(1500);
    assert.notEqual(p.connection.state, "connected");
    assert.notEqual(p.connection.state, "connecting");
  });

  test("apps are isolated: the same channel name in two apps", async () => {
    const other = backend(server.port, OTHER);
    const p1 = track(client(server.port, APP[1], { lib: api }));
    const p2 = track(client(server.port, OTHER[1], { lib: other }));
    const c1 = p1.subscribe("shared-name");
    const c2 = p2.subscribe("shared-name");
    await Promise.all([subscribed(c1), subscribed(c2)]);
    const e1 = recorder(c1);
    const e2 = recorder(c2);
    await other.trigger("shared-name", "for-two", {});
    await api.trigger("shared-name", "for-one", {});
    await until("both deliveries", WAIT, () => e1.length === 1 && e2.length === 1);
    assert.equal(e1[0].name, "for-one");
    assert.equal(e2[0].name, "for-two");
    // Another app's signature does not open this app's private channels.
    const cross = track(client(server.port, APP[1], { authorizeWith: other }));
    const err = await subscribed(cross.subscribe("private-x")).then(() => null, (e) => e.err);
    assert.equal(err?.status, 401);
  });

  test("native and Pusher subscribers share the default app's channels", async () => {
    const native = await nativeClient(server.port, "nat");
    try {
      native.send({ action: "subscribe", topic: "mixed" });
      await until("the native subscribe", WAIT, () => native.messages.find((m) => m.type === "subscribed"));
      const p = track(client(server.port, APP[1], { lib: api }));
      const channel = p.subscribe("mixed");
      await subscribed(channel);
      const fromNative = new Promise((resolve) => channel.bind("price-changed", resolve));
      assert.equal(await nativePublish(server.port, "mixed", { type: "price-changed", data: { price: 3 } }), 200);
      assert.deepEqual(await fromNative, { price: 3 });
      await api.trigger("mixed", "from-pusher", { a: 1 });
      const m = await until("the Pusher event at the native client", WAIT,
                            () => native.messages.find((x) => x.event === "from-pusher"));
      assert.equal(m.topic, "mixed");
      assert.equal(m.data, JSON.stringify({ a: 1 }));
      // A native client's own publish reaches Pusher subscribers too.
      const fromClient = new Promise((resolve) => channel.bind("note", resolve));
      native.send({ action: "publish", topic: "mixed", message: { type: "note", data: "plain text" } });
      assert.equal(await fromClient, "plain text");
      // Private channels stay Pusher's: their signature is the only way in, and only the backend
      // (the API) may publish to them.
      native.send({ action: "subscribe", topic: "private-room", ref: 9 });
      const refused = await until("the refusal", WAIT, () => native.messages.find((x) => x.ref === 9));
      assert.equal(refused.type, "error");
      assert.equal(refused.code, "forbidden");
      native.send({ action: "publish", topic: "presence-lobby", message: { type: "x" }, ref: 10 });
      const noPublish = await until("the publish refusal", WAIT, () => native.messages.find((x) => x.ref === 10));
      assert.equal(noPublish.code, "forbidden");
    } finally {
      native.ws.close();
    }
  });

  test("Laravel Echo: public listen, private whisper, presence here/joining/leaving", async () => {
    const Echo = await loadEcho();
    const echoFor = (user) => new Echo({
      broadcaster: "pusher", key: APP[1], wsHost: "127.0.0.1", wsPort: server.port, forceTLS: false,
      enabledTransports: ["ws"], cluster: "local", disableStats: true,
      client: track(client(server.port, APP[1], { lib: api, user })),
    });
    const ann = echoFor({ user_id: "e-ann", user_info: { name: "Ann" } });
    const bob = echoFor({ user_id: "e-bob", user_info: { name: "Bob" } });
    try {
      // A Laravel event class: Echo listens for ".Name" or the App\\Events namespace.
      const shipped = new Promise((resolve) => ann.channel("echo-orders").listen(".OrderShipped", resolve));
      await until("the public subscription", WAIT, () => ann.connector.pusher.channel("echo-orders")?.subscribed);
      await api.trigger("echo-orders", "OrderShipped", { order: 5 });
      assert.deepEqual(await shipped, { order: 5 });

      const whisper = new Promise((resolve) => bob.private("echo-room").listenForWhisper("typing", resolve));
      const annRoom = ann.private("echo-room");
      await until("both private subscriptions", WAIT, () =>
        ann.connector.pusher.channel("private-echo-room")?.subscribed && bob.connector.pusher.channel("private-echo-room")?.subscribed);
      annRoom.whisper("typing", { name: "Ann" });
      assert.deepEqual(await whisper, { name: "Ann" });

      const here = new Promise((resolve) => ann.join("echo-lobby").here(resolve));
      assert.deepEqual(await here, [{ name: "Ann" }]);
      const joining = new Promise((resolve) => ann.join("echo-lobby").joining(resolve));
      const leaving = new Promise((resolve) => ann.join("echo-lobby").leaving(resolve));
      const bobHere = new Promise((resolve) => bob.join("echo-lobby").here(resolve));
      assert.equal((await bobHere).length, 2);
      assert.deepEqual(await joining, { name: "Bob" });
      bob.leave("echo-lobby");
      assert.deepEqual(await leaving, { name: "Bob" });
    } finally {
      ann.disconnect();
      bob.disconnect();
    }
  });
});

describe("pusher webhooks", () => {
  let server;
  let api;
  let hook;
  const received = [];  // {body, headers, status}
  let failNext = 0;     // answer this many requests with 500 first
  before(async () => {
    hook = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d) => { body += d; });
      req.on("end", () => {
        const status = failNext > 0 ? (failNext--, 500) : 200;
        received.push({ body, headers: req.headers, status });
        res.writeHead(status, { "Content-Type": "application/json" }).end("{}");
      });
    });
    await new Promise((resolve) => hook.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${hook.address().port}/pusher/webhooks`;
    server = await startServer({ apps: [`${APP.join(":")}:${url}`] });
    api = backend(server.port, APP);
  });
  after(async () => {
    disconnectAll();
    await server?.stop();
    hook?.close();
  });

  // Every event of every accepted request, checked with the server library's own verification.
  function events() {
    const out = [];
    for (const r of received) {
      if (r.status !== 200) continue;
      const webhook = api.webhook({ headers: r.headers, rawBody: r.body });
      assert.equal(webhook.isValid(), true, "a webhook the library does not verify");
      out.push(...webhook.getEvents());
    }
    return out;
  }
  const has = (pred) => () => events().some(pred);

  test("occupied, member, client and vacated events, signed for the app", async () => {
    const ann = track(client(server.port, APP[1], { lib: api, user: { user_id: "w-ann", user_info: { n: 1 } } }));
    const bob = track(client(server.port, APP[1], { lib: api, user: { user_id: "w-bob" } }));
    await subscribed(ann.subscribe("wh-public"));
    await until("channel_occupied", WAIT, has((e) => e.name === "channel_occupied" && e.channel === "wh-public"));
    const annRoom = ann.subscribe("presence-wh");
    const bobRoom = bob.subscribe("presence-wh");
    await Promise.all([subscribed(annRoom), subscribed(bobRoom)]);
    await until("member_added for both", WAIT, () =>
      ["w-ann", "w-bob"].every((u) => events().some((e) => e.name === "member_added" && e.channel === "presence-wh" && e.user_id === u)));
    bobRoom.trigger("client-wave", { hi: true });
    const ce = await until("client_event", WAIT, () => events().find((e) => e.name === "client_event"));
    assert.equal(ce.channel, "presence-wh");
    assert.equal(ce.event, "client-wave");
    assert.deepEqual(JSON.parse(ce.data), { hi: true });
    assert.equal(ce.socket_id, bob.connection.socket_id);
    assert.equal(ce.user_id, "w-bob");
    bob.unsubscribe("presence-wh");
    await until("member_removed", WAIT, has((e) => e.name === "member_removed" && e.user_id === "w-bob"));
    ann.unsubscribe("wh-public");
    await until("channel_vacated", WAIT, has((e) => e.name === "channel_vacated" && e.channel === "wh-public"));
    // Another app's signature does not verify them.
    const last = received.at(-1);
    const foreign = backend(server.port, [APP[0], APP[1], "not-the-secret"]);
    assert.equal(foreign.webhook({ headers: last.headers, rawBody: last.body }).isValid(), false);
    assert.equal(last.headers["x-pusher-key"], APP[1]);
  });

  test("a failed request is retried with the same batch until it is accepted", async () => {
    const before = received.length;
    failNext = 2;
    const p = track(client(server.port, APP[1], { lib: api }));
    await subscribed(p.subscribe("wh-retry"));
    await until("the accepted retry", 15000, () => received.slice(before).some((r) => r.status === 200));
    const tries = received.slice(before);
    assert.deepEqual(tries.map((r) => r.status), [500, 500, 200]);
    const bodies = new Set(tries.map((r) => r.body));
    assert.equal(bodies.size, 1, "a retry must resend the same batch");
    const body = JSON.parse(tries[0].body);
    assert.ok(body.batch_id);
    assert.deepEqual(body.events, [{ name: "channel_occupied", channel: "wh-retry" }]);
  });
});

describe("pusher webhooks, bounded queue", () => {
  let server;
  let api;
  let hook;
  const received = new Map();  // batch_id -> body (a retried batch counts once)
  const held = [];             // responses held back while `holding`
  let holding = true;
  before(async () => {
    hook = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d) => { body += d; });
      req.on("end", () => {
        const answer = () => {
          received.set(JSON.parse(body).batch_id, body);
          res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
        };
        if (holding) held.push(answer);
        else answer();
      });
    });
    await new Promise((resolve) => hook.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${hook.address().port}/hooks`;
    server = await startServer({ apps: [`${APP.join(":")}:${url}`], args: ["--commands-per-second", "0"] });
    api = backend(server.port, APP);
  });
  after(async () => {
    disconnectAll();
    for (const answer of held.splice(0)) answer();
    await server?.stop();
    hook?.close();
  });

  async function dropped() {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("realtime_pusher_webhook_events_dropped_total "));
    return Number(line?.split(" ")[1]);
  }

  test("past 10,000 waiting events the oldest are dropped and counted; the rest arrive", async () => {
    const p = track(client(server.port, APP[1], { lib: api }));
    const channel = p.subscribe("private-flood");
    await subscribed(channel);
    // channel_occupied leaves first, and its request is held: everything after it waits.
    await until("the first request", WAIT, () => held.length === 1);
    for (let i = 0; i < 10200; i++) channel.trigger("client-flood", { i });
    await until("200 events dropped", 15000, async () => (await dropped()) === 200);
    holding = false;
    for (const answer of held.splice(0)) answer();
    const events = () => [...received.values()].flatMap((b) => JSON.parse(b).events);
    await until("every kept event delivered", 30000, () =>
      events().filter((e) => e.name === "client_event").length === 10000);
    const flood = events().filter((e) => e.name === "client_event").map((e) => JSON.parse(e.data).i);
    // The oldest 200 went; the newest 10,000 arrived in order.
    assert.deepEqual(flood, Array.from({ length: 10000 }, (_, k) => k + 200));
    assert.equal(await dropped(), 200);
  });
});

describe("pusher protocol, limits", () => {
  let server;
  let api;
  before(async () => {
    server = await startServer({ apps: [APP.join(":")],
                                 args: ["--commands-per-second", "5", "--command-burst", "5",
                                        "--max-connections-per-user", "1"] });
    api = backend(server.port, APP);
  });
  after(async () => {
    disconnectAll();
    await server.stop();
  });

  test("client events past --commands-per-second get pusher:error 4301 and the connection stays", async () => {
    const a = track(client(server.port, APP[1], { lib: api }));
    const b = track(client(server.port, APP[1], { lib: api }));
    const ca = a.subscribe("private-rate");
    const cb = b.subscribe("private-rate");
    await Promise.all([subscribed(ca), subscribed(cb)]);
    const got = recorder(cb);
    const errors = [];
    a.connection.bind("error", (e) => errors.push(e.data?.code));
    for (let i = 0; i < 20; i++) ca.trigger("client-burst", { i });
    await until("pusher:error 4301", WAIT, () => errors.includes(4301));
    // A marker from the server: every client event that passed arrived before it.
    await api.trigger("private-rate", "marker", {});
    await until("the marker", WAIT, () => got.some((e) => e.name === "marker"));
    const passed = got.filter((e) => e.name === "client-burst").length;
    assert.ok(passed >= 1 && passed < 20, `${passed} of 20 client events passed`);
    // The bucket refills: the same connection sends again.
    await sleep(1500);
    const later = new Promise((resolve) => cb.bind("client-later", resolve));
    ca.trigger("client-later", { ok: true });
    assert.deepEqual(await later, { ok: true });
    assert.equal(a.connection.state, "connected");
  });

  test("--max-connections-per-user: each anonymous Pusher connection is a user of its own", async () => {
    // With a limit of one connection per user, anonymous connections would refuse each other if
    // they shared a user.
    const ps = [0, 1, 2].map(() => track(client(server.port, APP[1], { lib: api })));
    const ids = await Promise.all(ps.map(connected));
    assert.equal(new Set(ids).size, 3);
    await sleep(300);
    for (const p of ps) assert.equal(p.connection.state, "connected");
  });
});

describe("pusher protocol, cluster of two nodes over Redis", () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    a = await startServer({ apps: [APP.join(":")], args: ["--redis", redis.url, "--node-id", "a"] });
    b = await startServer({ apps: [APP.join(":")], args: ["--redis", redis.url, "--node-id", "b"] });
  });
  after(async () => {
    disconnectAll();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  test("an event triggered on one node reaches subscribers on the other", async () => {
    const apiA = backend(a.port, APP);
    const p = track(client(b.port, APP[1], { lib: apiA }));
    const channel = p.subscribe("cluster-orders");
    await subscribed(channel);
    const got = new Promise((resolve) => channel.bind("shipped", resolve));
    await apiA.trigger("cluster-orders", "shipped", { id: 1 });
    assert.deepEqual(await got, { id: 1 });
    const info = await (await apiA.get({ path: "/channels/cluster-orders" })).json();
    assert.deepEqual(info, { occupied: true, subscription_count: 1 });
    // A private channel on node b, signed for its socket there, hears node a's API too.
    const room = p.subscribe("private-cluster-room");
    await subscribed(room);
    const secret = new Promise((resolve) => room.bind("note", resolve));
    await apiA.trigger("private-cluster-room", "note", { n: 2 });
    assert.deepEqual(await secret, { n: 2 });
  });

  test("the channel listing covers every node's channels", async () => {
    const apiA = backend(a.port, APP);
    const pa = track(client(a.port, APP[1], { lib: apiA }));
    const pb = track(client(b.port, APP[1], { lib: apiA, user: { user_id: "cl-bob" } }));
    await Promise.all([subscribed(pa.subscribe("cl-shared")), subscribed(pb.subscribe("cl-shared")),
      subscribed(pb.subscribe("cl-b-only")), subscribed(pb.subscribe("presence-cl-room"))]);
    const list = async (params) => (await apiA.get({ path: "/channels", params })).json();
    // A subscription is confirmed once it is in effect in Redis: node a lists node b's channels.
    assert.deepEqual(await list({ filter_by_prefix: "cl-", info: "subscription_count" }),
      { channels: { "cl-b-only": { subscription_count: 1 }, "cl-shared": { subscription_count: 2 } } });
    assert.deepEqual(await list({ filter_by_prefix: "cl-" }), { channels: { "cl-b-only": {}, "cl-shared": {} } });
    // Polled: a node announces presence changes after a short coalescing window.
    const present = { channels: { "presence-cl-room": { user_count: 1 } } };
    await until("the presence channel's user counted", WAIT, async () =>
      JSON.stringify(await list({ filter_by_prefix: "presence-cl", info: "user_count" })) === JSON.stringify(present));
    // A channel whose only subscriber (on node b) left is no longer listed by node a.
    pb.unsubscribe("cl-b-only");
    await until("cl-b-only gone", WAIT, async () =>
      JSON.stringify(await list({ filter_by_prefix: "cl-" })) === JSON.stringify({ channels: { "cl-shared": {} } }));
  });

  test("presence and client events across nodes", async () => {
    const apiA = backend(a.port, APP);
    const ann = track(client(a.port, APP[1], { lib: apiA, user: { user_id: "c-ann" } }));
    const bob = track(client(b.port, APP[1], { lib: apiA, user: { user_id: "c-bob" } }));
    const annChannel = ann.subscribe("presence-cluster");
    await subscribed(annChannel);
    const added = new Promise((resolve) => annChannel.bind("pusher:member_added", resolve));
    const bobChannel = bob.subscribe("presence-cluster");
    await subscribed(bobChannel);
    assert.equal((await added).id, "c-bob");
    // Each node announces its own changes after a short coalescing window (docs/presence.md): a
    // listing may precede another node's join, whose member_added then follows.
    await until("both members at bob", WAIT, () => bobChannel.members.count === 2);
    assert.deepEqual(Object.keys(bobChannel.members.members).sort(), ["c-ann", "c-bob"]);
    const whisper = new Promise((resolve) => annChannel.bind("client-hello", resolve));
    bobChannel.trigger("client-hello", { from: "bob" });
    assert.deepEqual(await whisper, { from: "bob" });
    const removed = new Promise((resolve) => annChannel.bind("pusher:member_removed", resolve));
    bob.disconnect();
    assert.equal((await removed).id, "c-bob");
  });

  // A webhook receiver and two webhook-enabled nodes; `count` tallies the verified events.
  async function webhookCluster(prefix) {
    const received = [];
    const hook = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d) => { body += d; });
      req.on("end", () => { received.push({ body, headers: req.headers }); res.writeHead(200).end("{}"); });
    });
    await new Promise((resolve) => hook.listen(0, "127.0.0.1", resolve));
    const app = `${APP.join(":")}:http://127.0.0.1:${hook.address().port}/hooks`;
    const wa = await startServer({ apps: [app], args: ["--redis", redis.url, "--node-id", `${prefix}a`] });
    const wb = await startServer({ apps: [app], args: ["--redis", redis.url, "--node-id", `${prefix}b`] });
    const apiA = backend(wa.port, APP);
    const events = () => received.flatMap((r) => {
      const webhook = apiA.webhook({ headers: r.headers, rawBody: r.body });
      assert.equal(webhook.isValid(), true);
      return webhook.getEvents();
    });
    const count = (name, channel, user) =>
      events().filter((e) => e.name === name && e.channel === channel && (!user || e.user_id === user)).length;
    const close = async () => {
      await wa.stop();
      await wb.stop();
      hook.close();
    };
    return { wa, wb, apiA, count, close };
  }

  test("webhooks: one per event for the cluster, from the node whose change it was", async () => {
    const { wa, wb, apiA, count, close } = await webhookCluster("w");
    try {
      // The same user on both nodes, and a public channel with subscribers on both.
      const annA = track(client(wa.port, APP[1], { lib: apiA, user: { user_id: "cw-ann" } }));
      const annB = track(client(wb.port, APP[1], { lib: apiA, user: { user_id: "cw-ann" } }));
      await Promise.all([subscribed(annA.subscribe("cw-public")), subscribed(annA.subscribe("presence-cw"))]);
      await Promise.all([subscribed(annB.subscribe("cw-public")), subscribed(annB.subscribe("presence-cw"))]);
      await until("occupied and added", WAIT, () =>
        count("channel_occupied", "cw-public") >= 1 && count("member_added", "presence-cw", "cw-ann") >= 1);
      annA.unsubscribe("cw-public");
      annA.unsubscribe("presence-cw");
      annB.unsubscribe("cw-public");
      annB.unsubscribe("presence-cw");
      await until("vacated and removed", WAIT, () =>
        count("channel_vacated", "cw-public") >= 1 && count("member_removed", "presence-cw", "cw-ann") >= 1);
      // A marker from each node: its webhooks leave in order, so once both markers are in, any
      // duplicate from either node would be too.
      const ma = track(client(wa.port, APP[1], { lib: apiA }));
      const mb = track(client(wb.port, APP[1], { lib: apiA }));
      await Promise.all([subscribed(ma.subscribe("cw-mark-a")), subscribed(mb.subscribe("cw-mark-b"))]);
      await until("both markers", WAIT, () => count("channel_occupied", "cw-mark-a") && count("channel_occupied", "cw-mark-b"));
      assert.equal(count("channel_occupied", "cw-public"), 1);
      assert.equal(count("channel_vacated", "cw-public"), 1);
      assert.equal(count("member_added", "presence-cw", "cw-ann"), 1);
      assert.equal(count("member_removed", "presence-cw", "cw-ann"), 1);
    } finally {
      await close();
    }
  });

  test("webhooks: a node killed without leaving has its channels vacated and members removed, once", async () => {
    const { wa, wb, apiA, count, close } = await webhookCluster("k");
    try {
      // On node b only: a public channel and a presence member. On both: a channel and a user.
      const onA = track(client(wa.port, APP[1], { lib: apiA, user: { user_id: "kw-both" } }));
      const onB = track(client(wb.port, APP[1], { lib: apiA, user: { user_id: "kw-b" } }));
      const bothB = track(client(wb.port, APP[1], { lib: apiA, user: { user_id: "kw-both" } }));
      await Promise.all([subscribed(onA.subscribe("kw-shared")), subscribed(onA.subscribe("presence-kw"))]);
      await Promise.all([subscribed(onB.subscribe("kw-b-only")), subscribed(onB.subscribe("kw-shared")),
        subscribed(onB.subscribe("presence-kw")), subscribed(bothB.subscribe("presence-kw"))]);
      await until("occupied and added", WAIT, () => count("channel_occupied", "kw-b-only") === 1 &&
        count("channel_occupied", "kw-shared") === 1 && count("member_added", "presence-kw", "kw-b") === 1 &&
        count("member_added", "presence-kw", "kw-both") === 1);
      await wb.stop("SIGKILL");
      // The node's instance stops beating; within its 5 s deadline and a beat, node a sweeps it.
      await until("node b's channel vacated and member removed", 30000, () =>
        count("channel_vacated", "kw-b-only") === 1 && count("member_removed", "presence-kw", "kw-b") === 1);
      // What node a still holds stays: no vacated, no removed, until node a's own last leave.
      const mark = track(client(wa.port, APP[1], { lib: apiA }));
      await subscribed(mark.subscribe("kw-mark"));
      await until("the marker", WAIT, () => count("channel_occupied", "kw-mark") === 1);
      assert.equal(count("channel_vacated", "kw-shared"), 0);
      assert.equal(count("member_removed", "presence-kw", "kw-both"), 0);
      onA.unsubscribe("kw-shared");
      onA.unsubscribe("presence-kw");
      await until("node a's last leave", WAIT, () =>
        count("channel_vacated", "kw-shared") === 1 && count("member_removed", "presence-kw", "kw-both") === 1);
      mark.unsubscribe("kw-mark");
      await until("the marker vacated", WAIT, () => count("channel_vacated", "kw-mark") === 1);
      assert.equal(count("channel_vacated", "kw-b-only"), 1);
      assert.equal(count("member_removed", "presence-kw", "kw-b"), 1);
    } finally {
      await close();
    }
  });

  test("terminate_connections reaches the user's connections on every node", async () => {
    const apiA = backend(a.port, APP);
    const p = track(client(b.port, APP[1], { lib: apiA, user: { user_id: "c-dora" } }));
    await connected(p);
    p.signin();
    await p.user.signinDonePromise;
    await until("the user channel", WAIT, () => p.user.serverToUserChannel?.subscribed);
    const error = new Promise((resolve) => p.connection.bind("error", resolve));
    await apiA.terminateUserConnections("c-dora");
    assert.equal((await error).data.code, 4009);
  });

  test("webhooks: a change whose claim got no answer while Redis hung is reported once Redis is back", async () => {
    const { wa, apiA, count, close } = await webhookCluster("s");
    try {
      const p = track(client(wa.port, APP[1], { lib: apiA }));
      await subscribed(p.subscribe("hung-chan"));
      await until("occupied", WAIT, () => count("channel_occupied", "hung-chan") === 1);
      redis.signal("SIGSTOP");
      try {
        p.unsubscribe("hung-chan");
        // The node gives up on a Redis that answers nothing after three beats and reconnects; the
        // leave's claim is then unanswered (it may or may not run when Redis resumes).
        await sleep(4500);
      } finally {
        redis.signal("SIGCONT");
      }
      await until("vacated after Redis resumed", 20000, () => count("channel_vacated", "hung-chan") >= 1);
    } finally {
      await close();
    }
  });

  test("webhooks: after Redis lost the claims, each node claims what it holds again", async () => {
    const { wa, apiA, count, close } = await webhookCluster("f");
    try {
      const p = track(client(wa.port, APP[1], { lib: apiA }));
      await subscribed(p.subscribe("fl-chan"));
      await until("occupied", WAIT, () => count("channel_occupied", "fl-chan") === 1);
      execFileSync("redis-cli", ["-p", String(redis.port), "FLUSHALL"]);
      // The node's next beat finds its instance gone and claims its channels as a new instance:
      // the channel is the cluster's first again (the backend hears it once more, at least once).
      await until("claimed again", WAIT, () => count("channel_occupied", "fl-chan") === 2);
      p.unsubscribe("fl-chan");
      await until("vacated", WAIT, () => count("channel_vacated", "fl-chan") === 1);
    } finally {
      await close();
    }
  });
});
