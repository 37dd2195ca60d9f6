// xmpp.js (@xmpp/client) with its stream management (XEP-0198) resumes a stream after the
// server drops its connection; the test drives it through stdin:
//   node xmppjs_smacks.mjs '{"service": "ws://…", "domain", "username", "password", "resource",
//                            "timeout_ms": 20000}'
// It logs in (enabling stream management, resumably, as xmpp.js does; inline in Bind 2 when
// the server offers SASL2) and prints {"event": "online", "jid", "sm_id", "sasl2"}. Every message with a body it receives is printed as
// {"event": "received", "id", "body"} while connected. Commands, one a line on stdin:
//   "dropped N"    the server has dropped the connection: wait for xmpp.js to notice, then
//                  reconnect (xmpp.js logs in again and sends <resume/>), wait until it is
//                  resumed and N messages more have come, and print {"event": "resumed",
//                  "messages": [{id, body, delay}…], "jid"}
//   "stop"         close the stream and print {"event": "stopped", "all": [every body]}
// Any failure or the deadline: a message on stderr and exit 1.
// On Node 20 run it with --experimental-websocket (xmpp.js uses the global WebSocket).

import { createInterface } from "node:readline";
import { client } from "@xmpp/client";

const config = JSON.parse(process.argv[2]);
let phase = "start";

function fail(message) {
  process.stderr.write(`xmppjs_smacks (${phase}): ${message}\n`);
  process.exit(1);
}

const deadline = setTimeout(() => fail(`not done within ${config.timeout_ms} ms`), config.timeout_ms);

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const xmpp = client({
  service: config.service,
  domain: config.domain,
  resource: config.resource,
  username: config.username,
  password: config.password,
});
xmpp.reconnect.stop(); // the test says when to reconnect
xmpp.on("error", (err) => {
  if (phase === "dropping") {
    process.stderr.write(`(expected while dropped) ${err}\n`);
  } else {
    fail(err.stack ?? String(err));
  }
});

// whether the server offered SASL2 (xmpp.js then logs in with it, Bind 2 and SM inline)
let usedSasl2 = false;
xmpp.on("nonza", (element) => {
  if (element.is("features") && element.getChild("authentication", "urn:xmpp:sasl:2")) {
    usedSasl2 = true;
  }
});

const all = []; // every body received, in order
let waiting = null; // {count, got: [], resolve} while a resumption is awaited
xmpp.on("stanza", (stanza) => {
  if (!stanza.is("message") || stanza.getChildText("body") === null) return;
  const body = stanza.getChildText("body");
  all.push(body);
  const delay = stanza.getChild("delay", "urn:xmpp:delay");
  const message = { id: stanza.attrs.id, body, delay: delay ? delay.attrs.from : null };
  if (waiting) {
    waiting.got.push(message);
    if (waiting.got.length >= waiting.count && waiting.resumed) waiting.resolve();
  } else {
    emit({ event: "received", ...message });
  }
});

function once(emitter, name) {
  return new Promise((resolve) => emitter.once(name, resolve));
}

async function dropped(count) {
  phase = "dropping";
  if (xmpp.status !== "disconnect") await once(xmpp, "disconnect");
  const done = new Promise((resolve) => {
    waiting = { count, got: [], resumed: false, resolve };
  });
  xmpp.streamManagement.once("resumed", () => {
    waiting.resumed = true;
    if (waiting.got.length >= waiting.count) waiting.resolve();
  });
  phase = "resuming";
  await xmpp.reconnect.reconnect();
  await done;
  emit({ event: "resumed", messages: waiting.got, jid: xmpp.jid.toString() });
  waiting = null;
  phase = "online";
}

try {
  const jid = await xmpp.start();
  phase = "online";
  // xmpp.js is online once bound; its <enable/> is answered right after
  while (!xmpp.streamManagement.enabled) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const sasl2 = xmpp.sasl2 !== undefined && usedSasl2;
  emit({ event: "online", jid: jid.toString(), sm_id: xmpp.streamManagement.id, sasl2 });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [command, argument] = line.trim().split(" ");
    if (command === "dropped") {
      await dropped(Number(argument));
    } else if (command === "stop") {
      phase = "stopping";
      await xmpp.stop();
      emit({ event: "stopped", all });
      break;
    } else {
      fail(`unknown command ${JSON.stringify(line)}`);
    }
  }
} catch (err) {
  fail(err.stack ?? String(err));
}
clearTimeout(deadline);
process.exit(0);
