"""slixmpp's own Stream Management plugin (XEP-0198) against the server: enabled at login,
then resumed after its TCP connection drops, with nothing lost and nothing twice."""

from __future__ import annotations

from pathlib import Path

from minixmpp.session import C2SSession
from minixmpp.testing import running_server
from tests.xmpp import TIMEOUT, slix_login, wait_until


async def test_slixmpp_resumes_after_a_dropped_connection(tmp_path: Path) -> None:
    modules = ["disco", "ping", "smacks"]
    async with running_server(tmp_path, modules=modules) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, "pw")
        plugins = ("xep_0030", "xep_0199", "xep_0203", "xep_0198")
        alice = await slix_login(
            srv.c2s_port,
            srv.ca_file,
            "alice@localhost/phone",
            "pw",
            plugins=plugins,
            watch=("session_resumed",),
        )
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost/desk", "pw")
        sm = alice.client.plugin["xep_0198"]
        assert sm.sm_id and sm.enabled_in  # enabled, resumably, during the login
        session = srv.server.hosts["localhost"].sessions.get("alice@localhost/phone")
        assert isinstance(session, C2SSession)

        bob.client.send_message(mto=alice.jid, mbody="m1", mtype="chat")
        assert (await alice.next_message())["body"] == "m1"
        alice.client.send_message(mto=bob.jid, mbody="a1", mtype="chat")
        assert (await bob.next_message())["body"] == "a1"  # handled, not yet acknowledged

        # The server loses the connection (no stream close): the session hibernates.
        connection = next(c for c in srv.server.connections if c.session is session)
        connection.abort()
        await wait_until(lambda: session.state == "hibernating", "hibernation")
        for body in ("m2", "m3"):
            bob.client.send_message(mto=alice.jid, mbody=body, mtype="chat")
        await bob.settle()  # the server has queued both

        alice.client.connect("127.0.0.1", srv.c2s_port)
        await alice.next_event("session_resumed", TIMEOUT)
        got = [await alice.next_message(), await alice.next_message()]
        assert [m["body"] for m in got] == ["m2", "m3"]
        assert all(m["delay"]["from"] == "alice@localhost" for m in got)
        assert session.state == "bound" and alice.jid == "alice@localhost/phone"

        # Nothing twice: the server's <resumed h=…/> told slixmpp that a1 was handled, and
        # slixmpp's h that m1 was.
        alice.client.send_message(mto=bob.jid, mbody="a2", mtype="chat")
        assert (await bob.next_message())["body"] == "a2"
        bob.client.send_message(mto=alice.jid, mbody="m4", mtype="chat")
        assert (await alice.next_message())["body"] == "m4"
        await alice.settle()
        await bob.settle()
        assert alice.messages.empty() and bob.messages.empty()
