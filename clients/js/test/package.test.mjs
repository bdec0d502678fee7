// The package as published: self-contained browser bundle, exports, types, lock file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { RealtimeClient, urlWithToken } from "../dist/index.js";
import { waitFor } from "./support/harness.mjs";

const root = fileURLToPath(new URL("../", import.meta.url));
const read = (path) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

test("dist/index.js imports nothing, so the server can serve it alone as /realtime-client.js", async () => {
  const source = read("dist/index.js");
  assert.doesNotMatch(source, /^\s*import[\s{*"']/m, "no static import");
  assert.doesNotMatch(source, /\bimport\s*\(/, "no dynamic import");
  assert.doesNotMatch(source, /^\s*export\s[^;]*\bfrom\s/m, "no re-export");
  assert.doesNotMatch(source, /\brequire\s*\(/, "no require");
  // A data: URL module can resolve no specifier at all: loading it proves there is none.
  const module = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
  assert.equal(typeof module.RealtimeClient, "function");
  assert.equal(typeof module.RealtimeError, "function");
});

test("dist/react.js imports only react and ./index.js", () => {
  const specifiers = [...read("dist/react.js").matchAll(/^\s*import\b[^"']*["']([^"']+)["']/gm)].map((m) => m[1]);
  assert.deepEqual(specifiers.sort(), ["./index.js", "react"]);
});

test("package.json exports ESM and CommonJS with their types for . and ./react, MIT, with react as an optional peer", () => {
  const pkg = JSON.parse(read("package.json"));
  assert.equal(pkg.name, "@boundary/realtime-client");
  assert.equal(pkg.license, "MIT");
  assert.match(read("LICENSE"), /^MIT License[\s\S]*Boundary Realtime contributors[\s\S]*WITHOUT WARRANTY OF ANY KIND/);
  assert.equal(pkg.type, "module");
  assert.match(pkg.scripts.prepare, /\bbuild\b/, "an install from a path or git builds dist/");
  for (const [entry, name] of [[".", "index"], ["./react", "react"]]) {
    assert.deepEqual(pkg.exports[entry], {
      import: { types: `./dist/${name}.d.ts`, default: `./dist/${name}.js` },
      require: { types: `./dist/cjs/${name}.d.ts`, default: `./dist/cjs/${name}.js` },
    });
    for (const file of [`dist/${name}.js`, `dist/${name}.d.ts`, `dist/cjs/${name}.js`, `dist/cjs/${name}.d.ts`]) {
      assert.ok(existsSync(`${root}${file}`), `${file} is built`);
    }
  }
  assert.deepEqual(JSON.parse(read("dist/cjs/package.json")), { type: "commonjs" });
  assert.ok(pkg.peerDependencies.react);
  assert.equal(pkg.peerDependenciesMeta.react.optional, true);
  assert.equal(pkg.dependencies, undefined, "no runtime dependencies");
  assert.ok(pkg.devDependencies.typescript && pkg.devDependencies.ws);
});

test("require() loads the CommonJS build, the same API as the ES module", async () => {
  const require = createRequire(import.meta.url);
  const cjs = require("../dist/cjs/index.js");
  const esm = await import("../dist/index.js");
  assert.deepEqual(Object.keys(cjs).filter((k) => k !== "__esModule").sort(), Object.keys(esm).sort());
  assert.equal(typeof cjs.RealtimeClient, "function");
  assert.equal(cjs.urlWithToken("ws://h/ws", "t"), "ws://h/ws?token=t");
  assert.equal(typeof require("../dist/cjs/react.js").useRealtime, "function");
});

test("package-lock.json names no registry but the default one", () => {
  const lock = read("package-lock.json");
  const urls = [...lock.matchAll(/"resolved":\s*"([^"]+)"/g)].map((m) => m[1]);
  for (const url of urls) assert.ok(url.startsWith("https://registry.npmjs.org/"), url);
  assert.doesNotMatch(lock, /https?:\/\/(?!registry\.npmjs\.org\/)[^"\s]*\.(tgz|tar\.gz)/);
});

test("the published types accept the documented usage (tsc --noEmit)", () => {
  const tsc = `${root}node_modules/typescript/bin/tsc`;
  const args = ["--noEmit", "--strict", "--skipLibCheck", "--target", "ES2020", "--module", "NodeNext",
    "--moduleResolution", "NodeNext", "--lib", "ES2020,DOM", "--types", "node", `${root}test/fixtures/usage.ts`];
  try {
    execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: "pipe" });
  } catch (error) {
    assert.fail(`tsc reported:\n${error.stdout}${error.stderr}`);
  }
});

test("the token goes into the query string, URL-encoded, after ? or &", async () => {
  assert.equal(urlWithToken("ws://h/ws", "a.b.c"), "ws://h/ws?token=a.b.c");
  assert.equal(urlWithToken("ws://h/ws?x=1", "a+b/c=d&e"), "ws://h/ws?x=1&token=a%2Bb%2Fc%3Dd%26e");
  assert.equal(urlWithToken("ws://h/ws", undefined), "ws://h/ws");

  // What the client hands to the WebSocket constructor, on the first attempt and on a retry.
  const urls = [];
  class FakeWebSocket {
    constructor(url) {
      urls.push(url);
      this.readyState = 0;
      this.listeners = {};
      setTimeout(() => this.listeners.close?.({ code: 1006, reason: "" }), 1);
    }
    addEventListener(type, listener) { this.listeners[type] = listener; }
    send() {}
    close() {}
  }
  let n = 0;
  const client = new RealtimeClient("ws://h/ws?room=1", {
    WebSocket: FakeWebSocket,
    getToken: () => `tok en/${++n}`,
    reconnect: { initialDelayMs: 1, maxDelayMs: 1 },
  });
  client.on("error", () => {});
  client.connect().catch(() => {});
  await waitFor(() => urls.length >= 2, { what: "two attempts" });
  client.disconnect();
  assert.deepEqual(urls.slice(0, 2), ["ws://h/ws?room=1&token=tok%20en%2F1", "ws://h/ws?room=1&token=tok%20en%2F2"]);
});
