"""slixmpp's own Message Carbons plugin (XEP-0280) against the server."""

from __future__ import annotations

from pathlib import Path

from minixmpp.testing import running_server
from tests.xmpp import slix_login


async def test_slixmpp_carbons(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["disco", "ping", "carbons"]) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        plugins = ("xep_0030", "xep_0199", "xep_0280")
        watch = ("carbon_sent", "carbon_received")
        phone = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=plugins
        )
        desk = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/desk", "pw", plugins=plugins, watch=watch
        )
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost/laptop", "pw")
        for client in (phone, desk):
            await client.client.plugin["xep_0280"].enable(timeout=10)
        phone.client.send_message(mto="bob@localhost", mbody="from the phone", mtype="chat")
        assert (await bob.next_message())["body"] == "from the phone"
        sent = await desk.next_event("carbon_sent")
        assert sent["carbon_sent"]["body"] == "from the phone"
        assert str(sent["carbon_sent"]["to"]) == "bob@localhost"
        bob.client.send_message(mto="alice@localhost/phone", mbody="to the phone", mtype="chat")
        received = await desk.next_event("carbon_received")
        assert received["carbon_received"]["body"] == "to the phone"
        assert str(received["carbon_received"]["from"]) == "bob@localhost/laptop"
