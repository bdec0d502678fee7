// A Node `ws` client that negotiates permessage-deflate (threshold 0: every message it sends is
// compressed), for test_compression.py. Input (stdin, JSON):
//   {"url": "...", "topic": "t", "publish": {...} | null, "expect": N}
// It subscribes to `topic`, prints {"subscribed": true, "extensions": "<the 101's header>"} on
// a line, publishes `publish` (if any) once subscribed, then prints {"messages": [...]} with the
// first `expect` messages of type other than subscribed/published and exits. Deadline: 10 s.
import WebSocket from "ws";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (d) => (text += d));
  process.stdin.on("end", () => resolve(text));
}));
const timer = setTimeout(() => {
  console.error("ws_deflate: deadline passed");
  process.exit(2);
}, 10_000);

let extensions = null;
const ws = new WebSocket(input.url, { perMessageDeflate: { threshold: 0 } });
ws.on("upgrade", (res) => (extensions = res.headers["sec-websocket-extensions"] ?? ""));
const messages = [];
ws.on("message", (data, isBinary) => {
  if (isBinary) throw new Error("binary frame");
  const msg = JSON.parse(data.toString("utf8"));
  if (msg.type === "connected") return ws.send(JSON.stringify({ action: "subscribe", topic: input.topic }));
  if (msg.type === "subscribed") {
    console.log(JSON.stringify({ subscribed: true, extensions }));
    if (input.publish) ws.send(JSON.stringify({ action: "publish", topic: input.topic, message: input.publish }));
    return;
  }
  if (msg.type === "published") return;
  messages.push(msg);
  if (messages.length >= input.expect) {
    console.log(JSON.stringify({ messages }));
    clearTimeout(timer);
    ws.close(1000);
  }
});
ws.on("error", (err) => {
  console.error(`ws_deflate: ${err.message}`);
  process.exit(3);
});
