// Loopback ports and bounded waits, shared by the Node tests (../../e2e/*.test.mjs and the Pusher
// tests' harness). Node built-ins only.

import { readFileSync } from "node:fs";
import { createServer } from "node:net";

// A loopback port free now, chosen at random below the kernel's ephemeral range: a port from
// listen(0) lies in that range, so an outgoing connection of a test running in parallel could
// take it before the server binds it. Ports this process returned are not returned again.
const handedOutPorts = new Set();

function ephemeralLow() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function probePort(port) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.unref();
    probe.once("error", () => resolve(null));
    probe.listen(port, "127.0.0.1", () => {
      const chosen = probe.address().port;
      probe.close(() => resolve(chosen));
    });
  });
}

export async function freePort() {
  const low = Math.min(ephemeralLow(), 65536);
  if (low > 12000) {
    for (let i = 0; i < 200; i++) {
      const port = 10000 + Math.floor(Math.random() * (low - 10000));
      if (handedOutPorts.has(port)) continue;
      if ((await probePort(port)) !== null) {
        handedOutPorts.add(port);
        return port;
      }
    }
  }
  const port = await probePort(0);
  if (port === null) throw new Error("no free loopback port");
  return port;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `probe` until it returns something truthy; an error marked `fatal` ends the wait at once.
export async function until(what, deadlineMs, probe) {
  const deadline = Date.now() + deadlineMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
}
