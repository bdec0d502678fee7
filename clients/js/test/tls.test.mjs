// wss:// against a server with --tls-cert: the `ws` package on its own and RealtimeClient, both
// trusting the test CA through ws's `ca` option.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RealtimeClient } from "../dist/index.js";
import { WebSocket, makeTestCertificates, makeToken, startServer, withDeadline } from "./support/harness.mjs";

describe("over TLS", () => {
  let server;
  let dir;
  let certs;
  const sockets = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rt-js-tls-"));
    certs = makeTestCertificates(dir);
    server = await startServer({ tls: certs });
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function messages(ws) {
    const queue = [];
    const waiting = [];
    ws.on("message", (data) => {
      const msg = JSON.parse(data.toString());
      if (waiting.length) waiting.shift()(msg);
      else queue.push(msg);
    });
    return () => withDeadline(queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)), 5000, "a message");
  }

  test("the ws package connects with the CA, subscribes and gets an https publish", async () => {
    assert.match(server.wsUrl, /^wss:\/\//);
    const ws = new WebSocket(`${server.wsUrl}?token=${encodeURIComponent(makeToken({ userId: "node-1" }))}`, { ca: certs.caPem });
    sockets.push(ws);
    const next = messages(ws);
    const connected = await next();
    assert.equal(connected.type, "connected");
    assert.equal(connected["user-id"], "node-1");
    ws.send(JSON.stringify({ action: "subscribe", topic: "news", ref: "s" }));
    assert.equal((await next()).type, "subscribed");
    const reply = await server.api("/api/publish", { topic: "news", message: { type: "headline", text: "tls" } });
    assert.deepEqual(reply, { delivered: 1 });
    const msg = await next();
    assert.equal(msg.type, "headline");
    assert.equal(msg.text, "tls");
  });

  test("without the CA the certificate is refused", async () => {
    const ws = new WebSocket(`${server.wsUrl}?token=${encodeURIComponent(makeToken())}`);
    sockets.push(ws);
    const error = await withDeadline(new Promise((resolve) => ws.once("error", resolve)), 5000, "the TLS error");
    assert.match(String(error.code ?? error.message), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER|SELF_SIGNED/);
  });

  test("RealtimeClient connects to wss:// through a WebSocket class that adds the CA", async () => {
    // RealtimeClient constructs `new WebSocket(url)`: a subclass supplies the ws options.
    class TrustingWebSocket extends WebSocket {
      constructor(url) {
        super(url, { ca: certs.caPem });
      }
    }
    const client = new RealtimeClient(server.wsUrl, { WebSocket: TrustingWebSocket, token: makeToken({ userId: "js-1" }) });
    try {
      await withDeadline(client.connect(), 5000, "connect()");
      assert.equal(client.userId, "js-1");
      let delivered;
      const seen = new Promise((resolve) => { delivered = resolve; });
      const subscription = client.subscribe("chat:tls", (m) => delivered(m));
      await withDeadline(subscription.ready, 5000, "subscribed");
      await server.api("/api/publish", { topic: "chat:tls", message: { type: "note", text: "hello" } });
      const msg = await withDeadline(seen, 5000, "the publish");
      assert.equal(msg.text, "hello");
    } finally {
      client.disconnect();
    }
  });
});
