"""xmpp.js (@xmpp/client from npm, in Node) logs in the way it prefers when the server offers it:
SASL2 (XEP-0388) with Bind 2 (XEP-0386), asking for a FAST token (XEP-0484), then reconnects
with the token alone (its password wrong), over TCP with STARTTLS and over WebSocket."""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.clients.node import NPM_TIMEOUT, NodeScript, NodeTools
from tests.sasl2 import MODULES
from tests.xmpp import TIMEOUT

pytestmark = pytest.mark.timeout(NPM_TIMEOUT + 60)


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
async def test_xmppjs_sasl2_bind2_then_fast(
    tmp_path: Path, node_clients: NodeTools, transport: str
) -> None:
    modules = [*MODULES, "websocket"]
    async with running_server(tmp_path / "server", modules=modules) as srv:
        await srv.create_user("alice", "alice-secret")
        user_agent = str(uuid.uuid4())
        tcp = f"xmpp://localhost:{srv.c2s_port}"
        config = {
            "service": tcp if transport == "tcp" else srv.websocket_url,
            "domain": "localhost",
            "username": "alice",
            "password": "alice-secret",
            "resource": "xmppjs",
            "user_agent_id": user_agent,
            "timeout_ms": int(4 * TIMEOUT * 1000),
        }
        env = {"NODE_EXTRA_CA_CERTS": str(srv.ca_file)}
        node = await NodeScript.start(node_clients, "xmppjs_fast.mjs", config, tmp_path, env)
        try:
            # Bind 2 chose the resource: xmpp.js's resource is only the tag (Prosody's form)
            digest = hashlib.sha1(user_agent.encode()).digest()[:9]
            jid = f"alice@localhost/xmppjs~{base64.b64encode(digest).decode()}"
            online = await node.event("online")
            assert (online["login"], online["jid"]) == ("password", jid)
            token = await node.event("token")
            assert (token["mechanism"], token["length"]) == ("HT-SHA-256-NONE", 90)
            expiry = datetime.datetime.fromisoformat(token["expiry"])
            left = expiry.timestamp() - srv.clock.time()
            assert 21 * 86400 - 60 < left <= 21 * 86400
            online = await node.event("online")
            assert (online["login"], online["jid"]) == ("token", jid)
            await node.event("pong")
            await node.finished()
        finally:
            await node.kill()
