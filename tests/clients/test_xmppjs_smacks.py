"""xmpp.js (@xmpp/client from npm, in Node) resumes its stream (XEP-0198) over ws:// after the
server loses its connection, with no message lost and none twice; slixmpp on TCP sends them.
Both ways xmpp.js knows: after a SASL login, and inline in a SASL2 + Bind 2 one."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.session import C2SSession
from minixmpp.testing import running_server
from tests.clients.node import NPM_TIMEOUT, NodeScript, NodeTools
from tests.conftest import PASSWORDS
from tests.xmpp import TIMEOUT, slix_login, wait_until

# The first test of a cold session waits for npm ci; every wait in the test itself is bounded.
pytestmark = pytest.mark.timeout(NPM_TIMEOUT + 60)


@pytest.mark.parametrize(
    "login",
    [
        "sasl",  # SASL, bind, <enable/>; then <resume/> after SASL
        "sasl2",  # <enable/> inside Bind 2, <resume/> inside SASL2's <authenticate/>
    ],
)
async def test_xmppjs_resumes_after_a_dropped_connection(
    tmp_path: Path, node_clients: NodeTools, login: str
) -> None:
    modules = ["disco", "ping", "websocket", "smacks"]
    if login == "sasl2":
        modules += ["sasl2", "sasl2_bind2"]
    async with running_server(tmp_path / "server", modules=modules) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost", PASSWORDS["bob"])
        config = {
            "service": srv.websocket_url,
            "domain": "localhost",
            "username": "alice",
            "password": PASSWORDS["alice"],
            "resource": "xmppjs",
            "timeout_ms": int(4 * TIMEOUT * 1000),
        }
        node = await NodeScript.start(
            node_clients, "xmppjs_smacks.mjs", config, tmp_path, commands=True
        )
        try:
            online = await node.event("online")
            jid = online["jid"]
            assert online["sm_id"] and online["sasl2"] == (login == "sasl2")
            if login == "sasl":
                assert jid == "alice@localhost/xmppjs"  # Bind 2 chooses the resource
            session = srv.server.hosts["localhost"].sessions.get(jid)
            assert isinstance(session, C2SSession)

            bob.client.send_message(mto=jid, mbody="m1", mtype="chat")
            assert (await node.event("received"))["body"] == "m1"

            # The server loses the connection (no stream close): the session hibernates, and
            # what is sent meanwhile waits for the client in the server's queue.
            connection = next(c for c in srv.server.connections if c.session is session)
            connection.abort()
            await wait_until(lambda: session.state == "hibernating", "hibernation")
            for body in ("m2", "m3"):
                bob.client.send_message(mto=jid, mbody=body, mtype="chat")
            await bob.settle()

            await node.tell("dropped 2")
            resumed = await node.event("resumed")
            assert resumed["jid"] == jid
            assert [(m["body"], m["delay"]) for m in resumed["messages"]] == [
                ("m2", "alice@localhost"),
                ("m3", "alice@localhost"),
            ]
            assert session.state == "bound"  # the same session, on the new connection

            bob.client.send_message(mto=jid, mbody="m4", mtype="chat")
            assert (await node.event("received"))["body"] == "m4"
            await node.tell("stop")
            assert (await node.event("stopped"))["all"] == ["m1", "m2", "m3", "m4"]
            await node.finished()
        finally:
            await node.kill()
