// Node `ws` broadcast relay, a peer for the performance benchmark (see README.md).
// Every message a client sends goes to every other open client, as in the ws README's
// "Server broadcast" example. Usage: node ws-server.mjs --port P
import { WebSocketServer, WebSocket } from "ws";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string", default: "3901" } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`bad --port: ${values.port}`);
  process.exit(2);
}

const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws) => {
  ws.on("error", console.error);
  ws.on("message", (data, isBinary) => {
    for (const client of wss.clients) {
      if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});

wss.on("listening", () => console.log(`listening on ${port}`));
wss.on("error", (err) => {
  console.error(err.message);
  process.exit(1);
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
