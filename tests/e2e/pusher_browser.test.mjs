// End-to-end test of the Pusher protocol (docs/pusher.md) with pusher-js 8's *web* build, unchanged,
// in headless Chromium against the real server binary. The backend side is the official `pusher`
// server library in this Node process: it triggers events over the signed HTTP API and signs the
// channel authorizations that the page's pusher-js asks for (through page.exposeFunction, used
// from pusher-js's channelAuthorization.customHandler). The page is a blank one on a loopback
// origin, served by this process along with the bundle (Chromium blocks WebSockets to 127.0.0.1
// from about:blank); pusher-js and `pusher` come from ../integration/node/node_modules.
//
//   cd tests/e2e && npm install && (cd ../integration/node && npm install) && node --test
//
// Environment:
//   REALTIME_SERVER  server binary (default ../../build/release/realtime-server from this file)
//   CHROMIUM         browser binary (default /usr/bin/chromium; playwright-core downloads none)
//
// Every wait has a deadline; the server and the browser are stopped in `after`.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { until } from "../integration/node/net_helpers.mjs";
import { startServer } from "../integration/node/pusher_harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";

// pusher-js (browser bundle) and the `pusher` server library come from the integration tests'
// node_modules: this directory installs playwright-core only.
const INTEGRATION_NODE = path.resolve(here, "../integration/node");
const PUSHER_JS_WEB = path.join(INTEGRATION_NODE, "node_modules/pusher-js/dist/web/pusher.min.js");

const STARTUP_MS = 15_000;   // server start, browser launch
const WAIT_MS = 5_000;       // anything the page should see after an action
const HTTP_MS = 5_000;       // one HTTP request to the server

const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const APP = { id: "1", key: "app-key", secret: "app-secret-0001" };

// ---- helpers ---------------------------------------------------------------------------------

// The server comes from the Pusher tests' harness (startServer: a real process, stopped by stop()).

// An HTTP server on 127.0.0.1 with a blank page at / and pusher-js's web bundle at /pusher.min.js.
async function servePage() {
  const bundle = readFileSync(PUSHER_JS_WEB);
  const html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>pusher-js e2e</title><link rel=\"icon\" href=\"data:,\"></head><body></body></html>";
  const pages = createHttpServer((req, res) => {
    const [status, type, body] = req.url === "/" ? [200, "text/html; charset=utf-8", html]
      : req.url === "/pusher.min.js" ? [200, "text/javascript; charset=utf-8", bundle]
      : [404, "text/plain", "not found"];
    res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store" });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    pages.once("error", reject);
    pages.listen(0, "127.0.0.1", resolve);
  });
  return {
    base: `http://127.0.0.1:${pages.address().port}`,
    close: () => new Promise((resolve) => { pages.closeAllConnections(); pages.close(() => resolve()); }),
  };
}

// ---- pusher-js in the browser -----------------------------------------------------------------

describe("pusher-js (web build) in Chromium", { timeout: 120_000 }, () => {
  let server, api, context, page, profileDir, pageServer;
  const pageErrors = [];

  before(async () => {
    assert.ok(existsSync(PUSHER_JS_WEB), `pusher-js web build not found: ${PUSHER_JS_WEB} (npm install in ${INTEGRATION_NODE})`);
    const PusherServer = createRequire(path.join(INTEGRATION_NODE, "package.json"))("pusher");

    server = await startServer({ apps: [`${APP.id}:${APP.key}:${APP.secret}`] });
    api = new PusherServer({
      appId: APP.id, key: APP.key, secret: APP.secret, host: "127.0.0.1", port: String(server.port), useTLS: false,
      timeout: HTTP_MS,
    });

    profileDir = await mkdtemp(path.join(tmpdir(), "realtime-e2e-chromium-"));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: BROWSER, headless: true, args: CHROMIUM_ARGS, timeout: STARTUP_MS,
    });
    context.setDefaultTimeout(WAIT_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => { if (msg.type() === "error") pageErrors.push(`console: ${msg.text()}`); });

    // What an app's auth endpoint does: sign with the server library, in this process.
    await page.exposeFunction("e2eAuthorize", (socketId, channelName, user) => (
      channelName.startsWith("presence-")
        ? api.authorizeChannel(socketId, channelName, user)
        : api.authorizeChannel(socketId, channelName)
    ));
    // A blank page from a loopback origin, served by this process (the server serves no pages
    // outside dev mode): from about:blank or a routed page, Chromium's Local Network Access
    // checks block WebSockets to 127.0.0.1. The page then loads the bundle as a script.
    pageServer = await servePage();
    await page.goto(`${pageServer.base}/`, { timeout: WAIT_MS });
    await page.addScriptTag({ url: `${pageServer.base}/pusher.min.js` });
    assert.equal(await page.evaluate(() => typeof window.Pusher), "function", "the bundle defines window.Pusher");
    const { version } = JSON.parse(readFileSync(path.join(INTEGRATION_NODE, "node_modules/pusher-js/package.json"), "utf8"));
    assert.match(version, /^8\./, "pusher-js 8");

    // A registry of pusher-js instances and what each saw, so the test can read it back.
    await page.evaluate(({ key, port }) => {
      window.e2e = { clients: {}, events: {} };
      window.e2eCreate = (name, user) => {
        const events = (window.e2e.events[name] = []);
        const pusher = new window.Pusher(key, {
          wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"], cluster: "local",
          disableStats: true,
          channelAuthorization: {
            customHandler: ({ socketId, channelName }, callback) => {
              window.e2eAuthorize(socketId, channelName, user ?? null)
                .then((auth) => callback(null, auth), (err) => callback(err, null));
            },
          },
        });
        pusher.connection.bind("state_change", ({ current }) => events.push({ kind: "state", current }));
        window.e2e.clients[name] = pusher;
        return name;
      };
      // Records every event of `channel` on client `name`, members lists as plain data.
      window.e2eSubscribe = (name, channelName) => {
        const channel = window.e2e.clients[name].subscribe(channelName);
        channel.bind_global((event, data, metadata) => {
          let plain = data;
          if (event === "pusher:subscription_succeeded" && channelName.startsWith("presence-")) {
            const members = [];
            channel.members.each((m) => members.push({ id: m.id, info: m.info }));
            plain = { count: channel.members.count, me: channel.members.me, members };
          }
          window.e2e.events[name].push({ kind: "channel", channel: channelName, event, data: plain, metadata: metadata ?? null });
        });
        return channelName;
      };
    }, { key: APP.key, port: server.port });
  });

  after(async () => {
    await page?.evaluate(() => { for (const p of Object.values(window.e2e?.clients ?? {})) p.disconnect(); }).catch(() => {});
    await context?.close().catch(() => {});
    await server?.stop();
    await pageServer?.close();
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  });

  const create = (name, user) => page.evaluate(([n, u]) => window.e2eCreate(n, u), [name, user ?? null]);
  const subscribe = (name, channel) => page.evaluate(([n, c]) => window.e2eSubscribe(n, c), [name, channel]);
  const eventsOf = (name) => page.evaluate((n) => window.e2e.events[n], name);

  async function waitConnected(name) {
    await page.waitForFunction((n) => window.e2e.clients[n].connection.state === "connected", name, { timeout: WAIT_MS })
      .catch(async (err) => {
        throw new Error(`${name} did not connect: ${err.message}\nevents: ${JSON.stringify(await eventsOf(name))}\nserver: ${server.log()}`);
      });
    return page.evaluate((n) => window.e2e.clients[n].connection.socket_id, name);
  }

  // The first event `event` on `channel` that client `name` recorded, waiting for it.
  async function waitEvent(name, channel, event) {
    const handle = await page.waitForFunction(
      ([n, c, e]) => window.e2e.events[n].find((x) => x.kind === "channel" && x.channel === c && x.event === e),
      [name, channel, event], { timeout: WAIT_MS },
    ).catch(async (err) => {
      throw new Error(`${name} got no ${event} on ${channel}: ${err.message}\nevents: ${JSON.stringify(await eventsOf(name))}`);
    });
    const value = await handle.jsonValue();
    await handle.dispose();
    return value;
  }

  async function waitSubscribed(name, channel) {
    const seen = await page.waitForFunction(
      ([n, c]) => window.e2e.events[n].find((x) => x.kind === "channel" && x.channel === c &&
        (x.event === "pusher:subscription_succeeded" || x.event === "pusher:subscription_error")),
      [name, channel], { timeout: WAIT_MS },
    ).then((h) => h.jsonValue());
    assert.equal(seen.event, "pusher:subscription_succeeded", `${name} on ${channel}: ${JSON.stringify(seen.data)}`);
    return seen.data;
  }

  const suffix = `${process.pid}`;

  test("connects: state connected and a Pusher socket id", async () => {
    await create("alice");
    const socketId = await waitConnected("alice");
    assert.match(socketId, /^\d+\.\d+$/);
    assert.equal(await page.evaluate(() => window.e2e.clients.alice.connection.state), "connected");
    const states = (await eventsOf("alice")).filter((x) => x.kind === "state").map((x) => x.current);
    assert.deepEqual(states.slice(-1), ["connected"]);
    assert.ok(!states.includes("failed") && !states.includes("unavailable"), states.join(","));
  });

  test("a public channel gets an event the server library triggers, data decoded", async () => {
    const channel = `orders-${suffix}`;
    await subscribe("alice", channel);
    await waitSubscribed("alice", channel);
    const response = await api.trigger(channel, "order-shipped", { id: 7, items: ["a", "b"], note: "héllo" });
    assert.equal(response.status, 200);
    const got = await waitEvent("alice", channel, "order-shipped");
    assert.deepEqual(got.data, { id: 7, items: ["a", "b"], note: "héllo" });
  });

  test("a private channel: signed subscriptions, and a client event reaches the other instance, not the sender", async () => {
    const channel = `private-chat-${suffix}`;
    await create("bob");
    await waitConnected("bob");
    await subscribe("alice", channel);
    await subscribe("bob", channel);
    await waitSubscribed("alice", channel);
    await waitSubscribed("bob", channel);

    const sent = await page.evaluate((c) => window.e2e.clients.bob.channel(c).trigger("client-x", { text: "hi alice", n: 1 }), channel);
    assert.equal(sent, true, "pusher-js sent the client event");
    const got = await waitEvent("alice", channel, "client-x");
    assert.deepEqual(got.data, { text: "hi alice", n: 1 });

    // The sender is not echoed its own event. The server delivers a channel's events in order, so
    // once a server event triggered after it reaches bob, a client-x for bob would have come first.
    assert.equal((await api.trigger(channel, "after-x", { n: 2 })).status, 200);
    await waitEvent("bob", channel, "after-x");
    await waitEvent("alice", channel, "after-x");
    const bobEvents = (await eventsOf("bob")).filter((x) => x.channel === channel).map((x) => x.event);
    assert.deepEqual(bobEvents, ["pusher:subscription_succeeded", "after-x"]);
    const aliceEvents = (await eventsOf("alice")).filter((x) => x.channel === channel).map((x) => x.event);
    assert.deepEqual(aliceEvents, ["pusher:subscription_succeeded", "client-x", "after-x"]);
  });

  test("a private channel refuses a subscription signed with another secret", async () => {
    const channel = `private-forged-${suffix}`;
    const name = "mallory";
    await create(name);
    await waitConnected(name);
    // Sign with a wrong secret in the page, bypassing the server library's signer.
    await page.evaluate(([n, c]) => {
      const pusher = window.e2e.clients[n];
      pusher.config.channelAuthorizer = (_params, callback) => callback(null, { auth: "app-key:" + "0".repeat(64) });
      return window.e2eSubscribe(n, c);
    }, [name, channel]);
    const seen = await page.waitForFunction(
      ([n, c]) => window.e2e.events[n].find((x) => x.channel === c && x.event.startsWith("pusher:subscription_")),
      [name, channel], { timeout: WAIT_MS },
    ).then((h) => h.jsonValue());
    assert.equal(seen.event, "pusher:subscription_error", JSON.stringify(seen));
    assert.equal(seen.data.status, 401, JSON.stringify(seen.data));
    await page.evaluate((n) => window.e2e.clients[n].disconnect(), name);
  });

  test("a presence channel: members include the user, and another instance joining is member_added", async () => {
    const channel = `presence-room-${suffix}`;
    const carol = { user_id: "carol", user_info: { name: "Carol" } };
    const dave = { user_id: "dave", user_info: { name: "Dave" } };
    await create("carol", carol);
    await waitConnected("carol");
    await subscribe("carol", channel);
    const first = await waitSubscribed("carol", channel);
    assert.equal(first.count, 1);
    assert.deepEqual(first.me, { id: "carol", info: { name: "Carol" } });
    assert.deepEqual(first.members, [{ id: "carol", info: { name: "Carol" } }]);

    await create("dave", dave);
    await waitConnected("dave");
    await subscribe("dave", channel);
    const second = await waitSubscribed("dave", channel);
    assert.equal(second.count, 2);
    assert.deepEqual(second.me, { id: "dave", info: { name: "Dave" } });
    assert.deepEqual(second.members.sort((a, b) => a.id.localeCompare(b.id)),
      [{ id: "carol", info: { name: "Carol" } }, { id: "dave", info: { name: "Dave" } }]);

    const added = await waitEvent("carol", channel, "pusher:member_added");
    assert.deepEqual(added.data, { id: "dave", info: { name: "Dave" } });
    assert.equal(await page.evaluate((c) => window.e2e.clients.carol.channel(c).members.count, channel), 2);

    // And leaving: dave's unsubscribe is member_removed on carol's side.
    await page.evaluate((c) => window.e2e.clients.dave.unsubscribe(c), channel);
    const removed = await waitEvent("carol", channel, "pusher:member_removed");
    assert.deepEqual(removed.data, { id: "dave", info: { name: "Dave" } });
  });

  test("no page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
