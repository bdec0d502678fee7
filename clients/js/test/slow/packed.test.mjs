// The package as an application gets it: `npm pack` (which builds dist/ through the prepare
// script), then `npm install <tarball>` into a scratch app next to its own React. Against that
// install: the file list, require() and import, the React hook rendered with react-test-renderer
// (no second React: no "Invalid hook call"), the README's TypeScript examples type-checked in
// strict mode, and the README's quick start run against a dev-mode server.
//
// The scratch install uses the npm cache first (`--prefer-offline`): the packages are the ones
// `npm ci` fetched for this directory, so no network is needed once that ran.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer } from "../support/harness.mjs";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const readme = readFileSync(path.join(root, "README.md"), "utf8");
const lockedVersion = (name) => JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8")).packages[`node_modules/${name}`].version;

let work; // temp dir: source copy, tarball, scratch app
let packed; // npm pack --json's entry for the tarball
let app; // the scratch app's directory
let server; // a dev-mode server

function npm(args, cwd, timeout = 240_000) {
  return run("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, timeout, maxBuffer: 16 << 20 });
}

/** Runs `node <file>` (or `node -e <code>`) in the scratch app; fails with its output. */
async function node(args, { timeout = 30_000 } = {}) {
  try {
    return await run(process.execPath, args, { cwd: app, timeout });
  } catch (error) {
    throw new Error(`node ${args.join(" ").slice(0, 200)} failed:\n${error.stdout}\n${error.stderr}`);
  }
}

/** The README's fenced code blocks of one language, each with the heading it sits under. */
function readmeBlocks(lang) {
  const blocks = [];
  let heading = "";
  const fence = /^```(\w*)\n([\s\S]*?)^```$/gm;
  const headings = [...readme.matchAll(/^#+ (.*)$/gm)];
  for (const match of readme.matchAll(fence)) {
    heading = headings.filter((h) => h.index < match.index).at(-1)?.[1] ?? "";
    if (match[1] === lang) blocks.push({ heading, code: match[2] });
  }
  return blocks;
}

// Packing, installing and type-checking a package take minutes on a busy machine, not the other
// files' 60 s (package.json runs test/slow/ with a longer file deadline); each step still has its
// own deadline (see npm()).
const SLOW = 600_000;

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), "realtime-js-packed-"));
  // Pack a copy without dist/: the prepare script must build it (as for a git or path install).
  const source = path.join(work, "source");
  mkdirSync(source);
  for (const entry of ["package.json", "tsconfig.json", "tsconfig.cjs.json", "README.md", "LICENSE", "src"]) {
    cpSync(path.join(root, entry), path.join(source, entry), { recursive: true });
  }
  symlinkSync(path.join(root, "node_modules"), path.join(source, "node_modules"), "dir");
  const { stdout } = await npm(["pack", "--json", "--pack-destination", work], source);
  packed = JSON.parse(stdout.slice(stdout.indexOf("[")))[0];

  app = path.join(work, "app");
  mkdirSync(app);
  const devPackages = ["react", "react-test-renderer", "ws", "@types/react", "@types/ws"];
  writeFileSync(path.join(app, "package.json"), JSON.stringify({
    name: "scratch-app", version: "1.0.0", private: true, type: "module",
    dependencies: Object.fromEntries([
      [pkg.name, `file:${path.join(work, packed.filename)}`],
      ...devPackages.map((name) => [name, lockedVersion(name)]),
    ]),
  }, null, 2));
  await npm(["install", "--prefer-offline"], app);
  server = await startServer({ dev: true });
}, { timeout: SLOW });

after(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("npm pack ships dist (ESM, CommonJS, .d.ts), README, LICENSE and package.json, nothing else", { timeout: SLOW }, () => {
  assert.equal(packed.filename, "boundary-realtime-client-0.1.0.tgz");
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    "LICENSE", "README.md",
    "dist/cjs/index.d.ts", "dist/cjs/index.js", "dist/cjs/package.json", "dist/cjs/react.d.ts", "dist/cjs/react.js",
    "dist/index.d.ts", "dist/index.js", "dist/react.d.ts", "dist/react.js",
    "package.json",
  ]);
});

test("the installed package is a copy, with react resolved to the app's own", { timeout: SLOW }, async () => {
  const { stdout } = await node(["--input-type=module", "-e", `
    import { realpathSync } from "node:fs";
    import { createRequire } from "node:module";
    const require = createRequire(process.cwd() + "/");
    const hook = createRequire(require.resolve("@boundary/realtime-client/react"));
    console.log(JSON.stringify({ pkg: realpathSync(require.resolve("@boundary/realtime-client")), react: realpathSync(hook.resolve("react")) }));
  `]);
  const { pkg: installed, react } = JSON.parse(stdout);
  assert.ok(installed.startsWith(path.join(app, "node_modules")), `installed in the app, not linked: ${installed}`);
  assert.equal(react, path.join(app, "node_modules/react/index.js"), "one React: the app's");
});

test("require() and import both load the installed package", { timeout: SLOW }, async () => {
  const { stdout: cjs } = await node(["-e", `
    const { RealtimeClient, RealtimeError } = require("@boundary/realtime-client");
    const { useRealtime } = require("@boundary/realtime-client/react");
    console.log(typeof RealtimeClient, typeof RealtimeError, typeof useRealtime, require.resolve("@boundary/realtime-client"));
  `]);
  assert.match(cjs, /^function function function .*dist\/cjs\/index\.js$/m);
  const { stdout: esm } = await node(["--input-type=module", "-e", `
    import { RealtimeClient } from "@boundary/realtime-client";
    import { useRealtime } from "@boundary/realtime-client/react";
    console.log(typeof RealtimeClient, typeof useRealtime, import.meta.resolve("@boundary/realtime-client"));
  `]);
  assert.match(esm, /^function function .*\/dist\/index\.js$/m);
});

test("useRealtime from the installed package renders and connects: no Invalid hook call", { timeout: SLOW }, async () => {
  writeFileSync(path.join(app, "render.mjs"), `
    import React from "react";
    import TestRenderer from "react-test-renderer";
    import WebSocket from "ws";
    import { useRealtime } from "@boundary/realtime-client/react";
    globalThis.IS_REACT_ACT_ENVIRONMENT = false;
    const errors = [];
    const consoleError = console.error;
    console.error = (...args) => { errors.push(args.map(String).join(" ")); };
    function Status() {
      const { client, connected } = useRealtime(process.argv[2], process.argv[3], { WebSocket });
      return React.createElement("p", null, connected ? "online as " + client.userId : "offline");
    }
    let renderer;
    TestRenderer.act(() => { renderer = TestRenderer.create(React.createElement(Status)); });
    const text = () => renderer.toJSON().children.join("");
    const deadline = Date.now() + 10000;
    while (!text().startsWith("online") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const shown = text();
    TestRenderer.act(() => renderer.unmount());
    console.error = consoleError;
    console.log(JSON.stringify({ shown, errors }));
  `);
  const { stdout } = await node(["render.mjs", server.wsUrl, server.devToken]);
  const { shown, errors } = JSON.parse(stdout.trim().split("\n").at(-1));
  assert.ok(!errors.some((e) => /Invalid hook call/.test(e)), errors.join("\n"));
  assert.deepEqual(errors, []);
  assert.equal(shown, "online as dev-user");
});

test("the README's TypeScript and React examples type-check in strict mode against the package", { timeout: SLOW }, async () => {
  const blocks = [...readmeBlocks("ts").map((b) => ({ ...b, ext: "ts" })), ...readmeBlocks("tsx").map((b) => ({ ...b, ext: "tsx" }))];
  assert.ok(blocks.some((b) => b.ext === "tsx" && /React \(useRealtime\)/.test(b.heading)), "the React example is a tsx block");
  assert.ok(blocks.some((b) => b.ext === "ts" && /TypeScript/.test(b.heading)), "the TypeScript example is a ts block");
  const dir = path.join(app, "readme");
  mkdirSync(dir, { recursive: true });
  const files = blocks.map((block, i) => {
    const file = path.join(dir, `example-${i}.${block.ext}`);
    writeFileSync(file, block.code);
    return file;
  });
  // And a CommonJS consumer: `require` must find the CommonJS build's own declarations.
  const cjs = path.join(dir, "consumer.cts");
  writeFileSync(cjs, `import realtime = require("@boundary/realtime-client");
import react = require("@boundary/realtime-client/react");
const client: realtime.RealtimeClient = new realtime.RealtimeClient("ws://h/ws", { token: "t" });
client.on<{ type: "n"; n: number }>("n", (msg) => msg.n.toFixed());
export const hook: typeof react.useRealtime = react.useRealtime;
`);
  files.push(cjs);
  const tsc = path.join(root, "node_modules/typescript/bin/tsc");
  try {
    await run(process.execPath, [tsc, "--noEmit", "--strict", "--target", "ES2022", "--module", "NodeNext",
      "--moduleResolution", "NodeNext", "--jsx", "react-jsx", "--lib", "ES2022,DOM", ...files], { cwd: app, timeout: 120_000 });
  } catch (error) {
    assert.fail(`tsc reported:\n${error.stdout}${error.stderr}`);
  }
});

test("the README's quick start runs against a dev-mode server and prints what the README says", { timeout: SLOW }, async () => {
  const [quick] = readmeBlocks("js").filter((b) => b.heading === "Quick start");
  assert.ok(quick, "a js block under Quick start");
  const urlLine = 'const URL = "ws://127.0.0.1:3000/ws";';
  const tokenLine = 'const TOKEN = "<the sample token the dev-mode server prints>";';
  assert.ok(quick.code.includes(urlLine) && quick.code.includes(tokenLine), "the lines a reader edits are there");
  const code = quick.code
    .replace(urlLine, `const URL = ${JSON.stringify(server.wsUrl)};`)
    .replace(tokenLine, `const TOKEN = ${JSON.stringify(server.devToken)};`);
  writeFileSync(path.join(app, "quickstart.mjs"), code);
  const { stdout } = await node(["quickstart.mjs"]);

  const [expected] = readmeBlocks("text").filter((b) => b.heading === "Quick start");
  assert.ok(expected, "the README shows the output");
  const lines = (text) => text.trim().split("\n").map((l) => l.trim()).sort();
  assert.deepEqual(lines(stdout), lines(expected.code));
});
