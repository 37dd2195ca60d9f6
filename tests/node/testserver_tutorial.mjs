// Tutorial 2: a Node test suite drives `minixmpp testserver` and its control API, and tests
// an xmpp.js client against it. (docs/testing.md walks through it.)
//
//   node testserver_tutorial.mjs '{"minixmpp": ["minixmpp"], "timeout_ms": 30000}'
//
// `minixmpp` is the command that runs minixmpp (["python3", "-m", "minixmpp"] works too).
// Prints {"event": "passed", "checks": N} and exits 0, or says what failed and exits 1.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";

const config = JSON.parse(process.argv[2]);
const deadline = setTimeout(() => fail(`not done within ${config.timeout_ms} ms`), config.timeout_ms);
let server = null;
let checks = 0;

function fail(message) {
  process.stderr.write(`testserver_tutorial: ${message}\n`);
  server?.kill("SIGTERM");
  process.exit(1);
}

// 1. Start the server: it prints one JSON line once it is ready (no port polling).
async function startServer(args) {
  const [command, ...first] = config.minixmpp;
  server = spawn(command, [...first, "testserver", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: server.stdout });
  const [line] = await Promise.race([
    new Promise((resolve) => lines.once("line", (l) => resolve([l]))),
    new Promise((_, reject) => server.once("exit", (code) => reject(new Error(`exit ${code}`)))),
  ]);
  return JSON.parse(line);
}

// 2. A small client for the control API: JSON in and out, the bearer token on every call.
function controlApi(info) {
  return async (method, path, body) => {
    const response = await fetch(info.control_url + path, {
      method,
      headers: { Authorization: `Bearer ${info.control_token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
}

function check(condition, what) {
  assert.ok(condition, what);
  checks += 1;
  process.stderr.write(`ok ${checks}: ${what}\n`);
}

async function online(info, account, resource) {
  const xmpp = client({
    service: info.websocket_url, domain: info.host, resource,
    username: account.jid.split("@")[0], password: account.password,
  });
  xmpp.reconnect.stop();
  xmpp.timeout = 15000; // xmpp.js waits 2 s for the server by default: short on a busy CI machine
  xmpp.on("error", (err) => fail(err.stack ?? String(err)));
  await xmpp.start();
  return xmpp;
}

try {
  const info = await startServer(["--user", "alice:alice-pw", "--module", "websocket"]);
  const call = controlApi(info);

  // 3. Arrange: a second account, made through the API; alice and bob are contacts.
  const bob = (await call("POST", "/users", { username: "bob", password: "bob-pw" })).body;
  check(bob.jid === "bob@localhost", "bob made");
  const roster = await call("POST", "/rosters", { owner: "alice@localhost", contact: bob.jid });
  check(roster.status === 204, "contacts");

  // 4. Act: the client under test (xmpp.js over WebSocket) sends a message.
  const alice = await online(info, info.accounts[0], "node");
  const mark = (await call("GET", "/mark")).body;
  await alice.send(xml("message", { to: bob.jid, type: "chat", id: "m1" }, xml("body", {}, "hi")));

  // 5. Assert on what the server received, waiting for it instead of sleeping.
  const seen = await call("POST", "/wait", { tag: "message", jid: "alice@localhost", attrs: { id: "m1" }, since: mark });
  check(seen.status === 200 && seen.body.data.includes("<body>hi</body>"), "the server got it");
  const offline = await call("POST", "/assert-nothing-sent", { jid: "alice@localhost", tag: "message", since: mark });
  check(offline.status === 204, "bob is offline: nothing came back to alice");

  // 6. Faults: the server closes alice's stream; xmpp.js sees it.
  const closed = new Promise((resolve) => alice.once("disconnect", resolve));
  alice.removeAllListeners("error");
  alice.on("error", () => {}); // the stream error arrives here first: expected
  await call("POST", "/faults/close-streams", { jid: "alice@localhost", condition: "conflict" });
  await closed;
  check(true, "stream closed by the server");

  // 7. Time: freeze the clock and move it a day on (invites expire, throttles refill).
  const clock = await call("POST", "/clock", { freeze: true, advance: 86400 });
  check(clock.body.frozen === true, "clock frozen");

  // 8. Between tests: back to the start state (alice only), in milliseconds.
  check((await call("POST", "/reset")).status === 204, "reset");
  const users = (await call("GET", "/users")).body;
  assert.deepEqual(users, ["alice@localhost"]);
  checks += 1;

  await call("POST", "/stop");
  await new Promise((resolve) => server.once("exit", resolve));
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify({ event: "passed", checks }) + "\n");
} catch (err) {
  fail(err.stack ?? String(err));
}
