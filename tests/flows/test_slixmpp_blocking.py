"""slixmpp's Blocking Command plugin (xep_0191) against the server: list, block with a push to
the user's other client, the blocked contact's message refused, unblock."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0191")


async def test_slixmpp_blocking(tmp_path: Path) -> None:
    from slixmpp import JID
    from slixmpp.exceptions import IqError

    async with running_server(tmp_path, modules=["disco", "ping", "blocklist"]) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        watch = ("blocked", "unblocked", "message_error")
        phone = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=PLUGINS
        )
        desk = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/desk", "pw", plugins=PLUGINS, watch=watch
        )
        bob = await slix_login(
            srv.c2s_port, srv.ca_file, "bob@localhost/x", "pw", plugins=PLUGINS, watch=watch
        )
        blocking = phone.client.plugin["xep_0191"]
        assert await desk.client.plugin["xep_0191"].get_blocked_jids(timeout=10) == set()
        await blocking.block([JID("bob@localhost"), JID("spam.example")], timeout=10)
        pushed = await desk.next_event("blocked")
        assert {str(i["jid"]) for i in pushed["block"]["items"]} == {
            "bob@localhost",
            "spam.example",
        }
        assert await blocking.get_blocked_jids(timeout=10) == {
            JID("bob@localhost"),
            JID("spam.example"),
        }
        bob.client.send_message(mto="alice@localhost", mbody="hello?", mtype="chat")
        bounce = await bob.next_event("message_error")
        assert bounce["error"]["condition"] == "service-unavailable"
        with pytest.raises(IqError) as refused:
            await phone.client.plugin["xep_0199"].send_ping("bob@localhost/x", timeout=10)
        assert refused.value.iq["error"]["condition"] == "not-acceptable"
        await blocking.unblock([JID("bob@localhost")], timeout=10)
        pushed = await desk.next_event("unblocked")
        assert [str(i["jid"]) for i in pushed["unblock"]["items"]] == ["bob@localhost"]
        bob.client.send_message(mto="alice@localhost/desk", mbody="now?", mtype="chat")
        assert (await desk.next_message())["body"] == "now?"
        unblock_all = phone.client.make_iq_set()  # the plugin cannot send an empty <unblock/>
        unblock_all.enable("unblock")
        await unblock_all.send(timeout=10)
        assert list((await desk.next_event("unblocked"))["unblock"]["items"]) == []
        assert await blocking.get_blocked_jids(timeout=10) == set()
