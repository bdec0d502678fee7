// Socket.IO 4.8 broadcast relay, a peer for the performance benchmark (see README.md).
// A `publish` event from one socket is emitted as `message` to every other socket.
// WebSocket transport only, no compression. Usage: node socketio-server.mjs --port P
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values } = parseArgs({ options: { port: { type: "string", default: "3902" } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`bad --port: ${values.port}`);
  process.exit(2);
}

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
});

io.on("connection", (socket) => {
  socket.on("publish", (message) => {
    socket.broadcast.emit("message", message);
  });
});

httpServer.on("error", (err) => {
  console.error(err.message);
  process.exit(1);
});
httpServer.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
