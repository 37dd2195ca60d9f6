"""Converse.js from its npm package, served by the server itself (a test-only plugin module,
tests/clients/plugins/mod_conversejs_test.py), in Debian's headless Chromium driven by
playwright-core: it logs in over WebSocket, and a message typed into it reaches slixmpp on TCP
(and slixmpp's answer shows in the chat)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.clients.node import INSTALL_TIMEOUT, NODE_DIR, NodeScript, NodeTools
from tests.conftest import PASSWORDS
from tests.xmpp import TIMEOUT, slix_login

PLUGINS = Path(__file__).parent / "plugins"
DIST = NODE_DIR / "node_modules" / "converse.js" / "dist"
BROWSER_TIMEOUT = 45.0  # Chromium's start, Converse's load and login, the chat

# The first test of a cold session waits for npm ci and the Chromium install.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 2 * BROWSER_TIMEOUT)


async def test_converse_in_chromium_logs_in_over_websocket_and_chats_with_slixmpp(
    tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    options = {"plugin_paths": [str(PLUGINS)], "conversejs_dist": str(DIST)}
    modules = ["disco", "ping", "websocket", "conversejs_test"]
    async with running_server(tmp_path / "server", modules=modules, options=options) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        # Bob is in Alice's roster: Converse 14 opens a chat with someone who is not only
        # after it has the blocklist (XEP-0191), which this server does not offer, so waits.
        alice_tcp = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost", PASSWORDS["alice"], presence=False
        )
        await alice_tcp.client.update_roster("bob@localhost", name="Bob", timeout=TIMEOUT)
        await alice_tcp.disconnect()
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost", PASSWORDS["bob"])
        artifacts = tmp_path / "browser"
        body, reply = "hello from Converse.js in Chromium", "hello Converse, slixmpp here"
        config = {
            "chromium": str(chromium),
            "page_url": srv.http_url + "/conversejs",  # the page's origin is the server's own
            "websocket_url": srv.websocket_url,
            "jid": "alice@localhost",
            "password": PASSWORDS["alice"],
            "peer": "bob@localhost",
            "body": body,
            "reply": reply,
            "user_data_dir": str(tmp_path / "chromium-profile"),
            "artifacts": str(artifacts),
            "timeout_ms": int(BROWSER_TIMEOUT * 1000),
        }
        node = await NodeScript.start(node_clients, "converse_chat.mjs", config, artifacts)
        where = f"(screenshot and browser console under {artifacts})"
        try:
            online = await node.event("online")
            alice = online["jid"]
            assert alice.startswith("alice@localhost/"), f"{online} {where}"
            await node.event("sent")
            message = await bob.next_message()
            assert (str(message["from"]), message["type"], message["body"]) == (
                alice,
                "chat",
                body,
            ), where
            bob.client.send_message(mto=alice, mbody=reply, mtype="chat")
            await node.event("received")
            await node.finished()
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{where}") from None
        finally:
            await node.kill()
