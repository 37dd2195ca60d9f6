// xmpp.js (@xmpp/client) logs in with SASL2 + Bind 2, is given a FAST token, and reconnects
// with that token alone (its password replaced by a wrong one, so only the token can work):
//   node xmppjs_fast.mjs '{"service": "xmpp://localhost:5222", "domain": "localhost",
//                          "username": ..., "password": ..., "resource": "xmppjs",
//                          "user_agent_id": "<uuid>", "timeout_ms": 20000}'
// It prints JSON lines: {"event": "online", "login": "password", "jid"}, then
// {"event": "token", "mechanism", "expiry", "length"} (never the token itself), then
// {"event": "online", "login": "token", "jid"} and {"event": "pong"} (an IQ round trip on the
// token session). Any failure or the deadline: a message on stderr and exit 1.
// "service" is xmpp://host:port (STARTTLS, the test CA trusted through NODE_EXTRA_CA_CERTS) or
// ws://host:port/xmpp-websocket (on Node 20 with --experimental-websocket).

import { client, xml } from "@xmpp/client";

const config = JSON.parse(process.argv[2]);
let current = null; // the client that is connected, stopped on failure

function fail(message) {
  process.stderr.write(`xmppjs_fast: ${message}\n`);
  process.exit(1);
}

const deadline = setTimeout(
  () => fail(`not done within ${config.timeout_ms} ms (at ${current?.status ?? "start"})`),
  config.timeout_ms,
);

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function userAgent() {
  // the same installation both times: FAST tokens are bound to it
  return xml(
    "user-agent",
    { id: config.user_agent_id },
    xml("software", {}, "xmpp.js test"),
    xml("device", {}, "minixmpp suite"),
  );
}

function connect(password, savedToken) {
  const xmpp = client({
    service: config.service,
    domain: config.domain,
    resource: config.resource, // Bind 2's <tag/>
    username: config.username,
    password,
    userAgent: userAgent(),
  });
  current = xmpp;
  xmpp.reconnect.stop(); // a lost connection is a failure here, not something to retry
  xmpp.on("error", (err) => fail(`${err.stack ?? err}`));
  if (savedToken !== undefined) {
    xmpp.fast.fetchToken = async () => savedToken;
  }
  return xmpp;
}

try {
  // 1. password login: SASL2 + Bind 2, asking for a token
  const first = connect(config.password);
  let token = null;
  first.fast.saveToken = async (t) => {
    token = t;
  };
  const jid = await first.start();
  emit({ event: "online", login: "password", jid: jid.toString() });
  if (token === null) fail("no FAST token after the password login");
  emit({
    event: "token",
    mechanism: token.mechanism,
    expiry: token.expiry,
    length: token.token.length,
  });
  await first.stop();

  // 2. token login: the password is wrong, the token must do it
  const second = connect("not-the-password", token);
  second.fast.saveToken = async () => {};
  second.fast.deleteToken = async () => fail("xmpp.js dropped the token: the server refused it");
  const jid2 = await second.start();
  emit({ event: "online", login: "token", jid: jid2.toString() });
  await second.iqCaller.request(
    xml("iq", { type: "get", to: config.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })),
  );
  emit({ event: "pong" });
  await second.stop();
  current = null;
} catch (err) {
  fail(err.stack ?? String(err));
}
clearTimeout(deadline);
// Done, and every check made. xmpp.js may still have a connection attempt of its own under
// way (seen now and then after stop(), whose 2 s open timeout would then fail the run): end here.
process.exit(0);
