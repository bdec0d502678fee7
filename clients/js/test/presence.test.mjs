// Presence (--presence) against the real server: presence(topic), and the member list the client
// keeps by itself for subscribe(topic, handler, { presence: true }): listed after every
// subscribed reply, then kept by the join and leave events that follow the listing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { RealtimeClient } from "../dist/index.js";
import { clientOptions, makeToken, nextEvent, sleep, startServer, waitFor, withDeadline } from "./support/harness.mjs";

let server;

before(async () => {
  server = await startServer({ args: ["--presence", "room:*"] });
});

after(async () => {
  await server.stop();
});

const clients = [];

/** A connected client of `userId`, with `info` in its token; records its `members` events. */
async function member(userId, { info, getToken, ...extra } = {}) {
  const client = new RealtimeClient(server.wsUrl, clientOptions({
    getToken: getToken ?? (() => makeToken({ userId, info })),
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    ...extra,
  }));
  clients.push(client);
  const changes = [];
  const errors = [];
  client.on("members", (change) => changes.push(change));
  client.on("error", (error) => errors.push(error));
  await withDeadline(client.connect(), 5000, `${userId} connect()`);
  return { client, changes, errors };
}

test.afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

const ids = (list) => list.users.map((user) => user.userId).sort();

/** The server's own list, through the HTTP API. */
async function serverList(topic) {
  const answer = await server.api(`/api/presence?topic=${encodeURIComponent(topic)}`);
  return answer.users.map((user) => user["user-id"]).sort();
}

/**
 * Waits until every event the server sent `client` on `topic` before now has arrived: the answer
 * to a `presence` listing follows every event of the topic sent before it.
 */
async function settle(client, topic) {
  await withDeadline(client.presence(topic), 5000, "presence()");
}

test("the member list is exact with two users and a second tab, and a user leaves with their last connection", async () => {
  const topic = "room:two";
  const ada = await member("ada", { info: { name: "Ada", colour: "green" } });
  const listed = nextEvent(ada.client, "members", { filter: (c) => c.topic === topic && c.reason === "listed" });
  const adaSub = ada.client.subscribe(topic, () => {}, { presence: true });
  await withDeadline(adaSub.ready, 5000, "ready");
  assert.deepEqual((await listed).users, [{ userId: "ada", info: { name: "Ada", colour: "green" } }]);
  assert.deepEqual(ada.client.members(topic), { topic, users: [{ userId: "ada", info: { name: "Ada", colour: "green" } }], truncated: false });

  const bobJoined = nextEvent(ada.client, "members", { filter: (c) => c.topic === topic && c.reason === "join" });
  const bob = await member("bob", { info: { name: "Bob" } });
  const bobListed = nextEvent(bob.client, "members", { filter: (c) => c.topic === topic && c.reason === "listed" });
  bob.client.subscribe(topic, () => {}, { presence: true });
  assert.deepEqual((await bobJoined).user, { userId: "bob", info: { name: "Bob" } });
  assert.deepEqual(ids(ada.client.members(topic)), ["ada", "bob"]);
  assert.deepEqual(ids(await bobListed), ["ada", "bob"]);
  assert.deepEqual(bob.client.members(topic).users.find((u) => u.userId === "ada").info, { name: "Ada", colour: "green" });

  // Bob's second tab: one user with two connections, no join, no duplicate.
  const changesBefore = ada.changes.length;
  const tab = await member("bob", { info: { name: "Bob (tab 2)" } });
  await withDeadline(tab.client.subscribe(topic, () => {}, { presence: true }).ready, 5000, "tab ready");
  await waitFor(() => tab.client.members(topic), { what: "the tab's list" });
  await settle(ada.client, topic);
  assert.equal(ada.changes.length, changesBefore, "a second tab changes nothing");
  assert.deepEqual(ids(ada.client.members(topic)), ["ada", "bob"]);
  assert.deepEqual(ids(tab.client.members(topic)), ["ada", "bob"]);
  const listing = await ada.client.presence(topic);
  assert.equal(listing.truncated, false);
  assert.deepEqual(listing.users.find((u) => u.userId === "bob"), { userId: "bob", connections: 2, info: { name: "Bob" } });

  // The first tab closing leaves Bob present; the last one makes him leave.
  bob.client.disconnect();
  await sleep(150); // past the server's coalescing interval: a leave would have been sent by now
  await settle(ada.client, topic);
  assert.equal(ada.changes.length, changesBefore, "closing one of two tabs changes nothing");
  const bobLeft = nextEvent(ada.client, "members", { filter: (c) => c.topic === topic && c.reason === "leave" });
  tab.client.disconnect();
  const left = await bobLeft;
  assert.deepEqual(left.user, { userId: "bob", info: { name: "Bob" } });
  assert.deepEqual(ids(left), ["ada"]);
  assert.deepEqual(ids(ada.client.members(topic)), ["ada"]);
  assert.deepEqual(ada.errors, []);

  // The list goes with the subscription.
  const dropped = nextEvent(ada.client, "members", { filter: (c) => c.topic === topic && c.reason === "dropped" });
  await adaSub.unsubscribe();
  assert.deepEqual((await dropped).users, []);
  assert.equal(ada.client.members(topic), undefined);
});

test("a handler without presence keeps no list; adding one with presence on a subscribed topic lists it", async () => {
  const topic = "room:later";
  const eve = await member("eve");
  const plain = eve.client.subscribe(topic, () => {});
  await withDeadline(plain.ready, 5000, "ready");
  await settle(eve.client, topic);
  assert.equal(eve.client.members(topic), undefined);
  assert.deepEqual(eve.changes, []);

  const listed = nextEvent(eve.client, "members", { filter: (c) => c.reason === "listed" });
  const tracked = eve.client.subscribe(topic, () => {}, { presence: true });
  assert.deepEqual(ids(await listed), ["eve"]);
  // The last handler asking for presence goes: the list goes, the subscription stays.
  const dropped = nextEvent(eve.client, "members", { filter: (c) => c.reason === "dropped" });
  await tracked.unsubscribe();
  await dropped;
  assert.equal(eve.client.members(topic), undefined);
  assert.deepEqual(await serverList(topic), ["eve"], "still subscribed, so still present");
});

test("the member list is rebuilt after a reconnect, with the changes made while the client was away", async () => {
  const topic = "room:again";
  let open = true;
  let release = () => {};
  const gatedToken = async () => {
    if (!open) await new Promise((resolve) => { release = resolve; });
    return makeToken({ userId: "rita", info: { name: "Rita" } });
  };
  const rita = await member("rita", { getToken: gatedToken });
  rita.client.subscribe(topic, () => {}, { presence: true });
  const sam = await member("sam");
  sam.client.subscribe(topic, () => {}, { presence: true });
  await waitFor(() => rita.client.members(topic)?.users.length === 2, { what: "rita to see sam" });

  open = false;
  const disconnected = nextEvent(rita.client, "disconnected");
  const dropped = nextEvent(rita.client, "members", { filter: (c) => c.reason === "dropped" });
  assert.deepEqual(await server.api("/api/disconnect", { "user-id": "rita" }), { disconnected: 1 });
  await disconnected;
  await dropped;
  assert.equal(rita.client.members(topic), undefined, "no stale list while disconnected");

  // While Rita is away: Sam leaves, Tom arrives. Neither event can reach her.
  sam.client.disconnect();
  const tom = await member("tom", { info: { name: "Tom" } });
  await withDeadline(tom.client.subscribe(topic, () => {}, { presence: true }).ready, 5000, "tom ready");
  await waitFor(async () => (await serverList(topic)).join() === "tom", { what: "the server to see only tom" });

  const relisted = nextEvent(rita.client, "members", { filter: (c) => c.reason === "listed" });
  open = true;
  release();
  const list = await relisted;
  assert.deepEqual(ids(list), ["rita", "tom"]);
  assert.deepEqual(list.users.find((u) => u.userId === "tom").info, { name: "Tom" });

  // And it is live again.
  const tomLeft = nextEvent(rita.client, "members", { filter: (c) => c.reason === "leave" });
  tom.client.disconnect();
  assert.equal((await tomLeft).user.userId, "tom");
  assert.deepEqual(ids(rita.client.members(topic)), ["rita"]);
});

test("the list stays exact while users come and go during the listing", async () => {
  const topic = "room:churn";
  const users = ["u1", "u2", "u3", "u4", "u5", "u6"];
  const churners = [];
  for (const userId of users) churners.push(await member(userId));
  let stop = false;
  const churn = (async () => {
    let i = 0;
    const subs = new Map();
    while (!stop) {
      const index = i++ % churners.length;
      const held = subs.get(index);
      if (held) {
        subs.delete(index);
        await held.unsubscribe().catch(() => {});
      } else {
        subs.set(index, churners[index].client.subscribe(topic, () => {}));
      }
      await sleep(Math.random() * 15);
    }
  })();
  const observers = [];
  for (let n = 0; n < 8; n++) {
    const observer = await member(`obs${n}`);
    observer.client.subscribe(topic, () => {}, { presence: true });
    observers.push(observer);
    await sleep(Math.random() * 40);
  }
  await sleep(200);
  stop = true;
  await churn;
  await sleep(150); // let the last coalesced events go out
  const truth = await serverList(topic);
  for (const observer of observers) {
    await settle(observer.client, topic);
    const list = observer.client.members(topic);
    assert.ok(list, "listed");
    const listed = list.users.map((u) => u.userId);
    assert.equal(new Set(listed).size, listed.length, "no duplicate");
    assert.deepEqual([...listed].sort(), truth);
  }
});

test("a topic without presence: presence() rejects, the list is refused without an error event", async () => {
  const nia = await member("nia");
  await assert.rejects(nia.client.presence("chat:plain"), (e) => e.code === "bad-request" && /presence/.test(e.message));
  await assert.rejects(nia.client.presence("user:someone-else"), (e) => e.code === "forbidden");

  const failed = nextEvent(nia.client, "members", { filter: (c) => c.topic === "chat:plain" });
  const sub = nia.client.subscribe("chat:plain", () => {}, { presence: true });
  await withDeadline(sub.ready, 5000, "the subscription itself works");
  const change = await failed;
  assert.equal(change.reason, "failed");
  assert.equal(change.error.code, "bad-request");
  assert.equal(change.error.topic, "chat:plain");
  assert.deepEqual(change.users, []);
  assert.equal(nia.client.members("chat:plain"), undefined);
  assert.deepEqual(nia.errors, [], "not reported as a failed subscription");
  assert.equal(nia.client.state, "connected");
  // Messages still arrive on it.
  const got = new Promise((resolve) => nia.client.subscribe("chat:plain", resolve));
  await server.api("/api/publish", { topic: "chat:plain", message: { type: "note", n: 1 } });
  assert.equal((await withDeadline(got, 5000, "the message")).n, 1);
});

test("truncated: the listing says so when more users are present than the server lists", async () => {
  const small = await startServer({ args: ["--presence", "room:*", "--presence-max-users", "2"] });
  const local = [];
  try {
    for (const userId of ["t1", "t2", "t3"]) {
      const client = new RealtimeClient(small.wsUrl, clientOptions({ token: makeToken({ userId }) }));
      local.push(client);
      await client.connect();
      await client.subscribe("room:big", () => {}, { presence: true }).ready;
    }
    const listing = await local[0].presence("room:big");
    assert.equal(listing.truncated, true);
    assert.equal(listing.users.length, 2);
    await waitFor(() => local[2].members("room:big"), { what: "the last list" });
    assert.equal(local[2].members("room:big").truncated, true);
    assert.equal(local[2].members("room:big").users.length, 2);
  } finally {
    for (const client of local) client.disconnect();
    await small.stop();
  }
});

test("presence events are not handed to the topic's handlers, only to on(\"presence-join\"/\"presence-leave\")", async () => {
  const topic = "room:handlers";
  const ada = await member("ada");
  const handled = [];
  const joins = [];
  const leaves = [];
  ada.client.on("presence-join", (m) => joins.push(m["user-id"]));
  ada.client.on("presence-leave", (m) => leaves.push(m["user-id"]));
  await withDeadline(ada.client.subscribe(topic, (m) => handled.push(m.type)).ready, 5000, "ready");
  const bob = await member("bob");
  await withDeadline(bob.client.subscribe(topic, () => {}).ready, 5000, "bob ready");
  await waitFor(() => joins.includes("bob"), { what: "bob's join" });
  bob.client.disconnect();
  await waitFor(() => leaves.includes("bob"), { what: "bob's leave" });
  await server.api("/api/publish", { topic, message: { type: "note" } });
  await waitFor(() => handled.includes("note"), { what: "the published note" });
  assert.deepEqual(joins, ["ada", "bob"]);
  assert.deepEqual(handled, ["note"], "the topic handler saw only the published message");
});
