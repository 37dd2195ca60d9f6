"""xmpp.js (@xmpp/client from npm, in Node) logs in over ws:// and wss:// to /xmpp-websocket and
chats with slixmpp on TCP, both ways, through a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.clients.node import NPM_TIMEOUT, NodeScript, NodeTools
from tests.conftest import PASSWORDS
from tests.xmpp import TIMEOUT, slix_login

# The first test of a cold session waits for npm ci; every wait in the test itself is bounded.
pytestmark = pytest.mark.timeout(NPM_TIMEOUT + 60)


async def test_xmppjs_over_ws_and_wss_chats_with_slixmpp_on_tcp(
    tmp_path: Path, node_clients: NodeTools
) -> None:
    async with running_server(tmp_path / "server", modules=["disco", "ping", "websocket"]) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost", PASSWORDS["bob"])
        services = [srv.websocket_url, f"wss://localhost:{srv.https_port}/xmpp-websocket"]
        config = {
            "services": services,
            "domain": "localhost",
            "username": "alice",
            "password": PASSWORDS["alice"],
            "resource": "xmppjs",
            "peer": bob.jid,
            "timeout_ms": int(len(services) * 2 * TIMEOUT * 1000),
        }
        # wss:// trusts the server's test CA the way the README tells xmpp.js users to
        env = {"NODE_EXTRA_CA_CERTS": str(srv.ca_file)}
        node = await NodeScript.start(node_clients, "xmppjs_chat.mjs", config, tmp_path, env)
        try:
            for service in services:
                scheme = service.partition(":")[0]
                online = await node.event("online")
                assert (online["service"], online["jid"]) == (service, "alice@localhost/xmppjs")
                message = await bob.next_message()
                assert (str(message["from"]), message["type"], message["body"]) == (
                    "alice@localhost/xmppjs",
                    "chat",
                    f"hello from xmpp.js over {scheme}",
                )
                reply = f"hello xmpp.js, slixmpp here over {scheme}"
                bob.client.send_message(mto=online["jid"], mbody=reply, mtype="chat")
                received = await node.event("received")
                assert (received["from"], received["body"]) == (bob.jid, reply)
            await node.finished()
        finally:
            await node.kill()
