// xmpp.js (@xmpp/client) logs in over each WebSocket URL in turn and chats with a peer that the
// test drives (slixmpp on TCP):
//   node xmppjs_chat.mjs '{"services": [...], "username": ..., "password": ..., "resource": ...,
//                           "peer": "bob@localhost/r", "timeout_ms": 20000}'
// For each service it prints one JSON line {"event": "online", "service", "jid"}, sends the peer
// "hello from xmpp.js over <scheme>", waits for the peer's message "hello xmpp.js, slixmpp here
// over <scheme>" and prints {"event": "received", "service", "from", "body"}, then closes the
// stream. Any failure or the deadline: a message on stderr and exit 1.
// wss:// trusts the test CA through NODE_EXTRA_CA_CERTS (Node reads it at start-up). On Node 20
// run it with --experimental-websocket (xmpp.js uses the global WebSocket).

import { client, xml } from "@xmpp/client";

const config = JSON.parse(process.argv[2]);
let current = null; // the client that is connected, stopped on failure

function fail(message) {
  process.stderr.write(`xmppjs_chat: ${message}\n`);
  process.exit(1);
}

const deadline = setTimeout(
  () => fail(`not done within ${config.timeout_ms} ms (at ${current?.status ?? "start"})`),
  config.timeout_ms,
);

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

async function chatOver(service) {
  const scheme = new URL(service).protocol.replace(":", "");
  const xmpp = client({
    service,
    domain: config.domain,
    resource: config.resource,
    username: config.username,
    password: config.password,
  });
  current = xmpp;
  xmpp.reconnect.stop(); // a lost connection is a failure here, not something to retry
  xmpp.timeout = 15000; // xmpp.js waits 2 s for the server by default: short on a busy CI machine
  xmpp.on("error", (err) => fail(`${service}: ${err.stack ?? err}`));
  const expected = `hello xmpp.js, slixmpp here over ${scheme}`;
  const received = new Promise((resolve) => {
    xmpp.on("stanza", (stanza) => {
      if (stanza.is("message") && stanza.getChildText("body") !== null) {
        resolve(stanza);
      }
    });
  });
  const jid = await xmpp.start();
  emit({ event: "online", service, jid: jid.toString() });
  await xmpp.send(
    xml(
      "message",
      { to: config.peer, type: "chat", id: `xmppjs-${scheme}` },
      xml("body", {}, `hello from xmpp.js over ${scheme}`),
    ),
  );
  const message = await received;
  const body = message.getChildText("body");
  emit({ event: "received", service, from: message.attrs.from, body });
  if (message.attrs.from !== config.peer || body !== expected) {
    fail(`${service}: expected ${JSON.stringify(expected)} from ${config.peer}`);
  }
  await xmpp.stop();
  current = null;
}

try {
  for (const service of config.services) {
    await chatOver(service);
  }
} catch (err) {
  fail(err.stack ?? String(err));
}
clearTimeout(deadline);
