"""slixmpp's own Client State Indication plugin (XEP-0352) against the server."""

from __future__ import annotations

from pathlib import Path

from minixmpp.testing import running_server
from tests.xmpp import slix_login


async def test_slixmpp_csi(tmp_path: Path) -> None:
    modules = ["disco", "ping", "csi"]
    # no grace period after a flush, so the ping below leaves alice inactive
    options = {"csi_resume_inactive_delay": 0}
    async with running_server(tmp_path, modules=modules, options=options) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        plugins = ("xep_0030", "xep_0199", "xep_0085", "xep_0203", "xep_0352")
        alice = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=plugins
        )
        bob = await slix_login(
            srv.c2s_port, srv.ca_file, "bob@localhost/laptop", "pw", plugins=plugins
        )
        # slixmpp gives a chat state without a body to 'chatstate' handlers only: queue both
        alice.client.add_event_handler("chatstate", alice.messages.put_nowait)
        csi = alice.client.plugin["xep_0352"]
        assert csi.enabled  # the stream feature was offered
        csi.send_inactive()
        await alice.settle()

        typing = bob.client.make_message(mto="alice@localhost/phone", mtype="chat")
        typing["chat_state"] = "composing"
        typing.send()
        bob.client.send_message(mto="alice@localhost/phone", mbody="hello", mtype="chat")
        first, second = await alice.next_message(), await alice.next_message()
        assert first["chat_state"] == "composing" and first["body"] == ""
        assert first["delay"]["from"] == "alice@localhost"  # it was held
        assert second["body"] == "hello" and second["delay"]["stamp"] is None
