"""slixmpp's MAM plugin (xep_0313, with xep_0059 paging) against the server: a conversation is
archived on both sides, paged forwards and backwards, found by contact; the archive's bounds."""

from __future__ import annotations

from pathlib import Path

from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0313", "xep_0359")


async def test_slixmpp_mam(tmp_path: Path) -> None:
    from slixmpp import JID

    async with running_server(tmp_path, modules=["disco", "ping", "mam"]) as srv:
        for user in ("alice", "bob", "carol"):
            await srv.create_user(user, "pw")
        alice = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/a", "pw", plugins=PLUGINS
        )
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost/b", "pw", plugins=PLUGINS)
        for i in range(5):
            alice.client.send_message(mto="bob@localhost", mbody=f"ping {i}", mtype="chat")
            got = await bob.next_message()
            assert got["stanza_id"]["by"] == JID("bob@localhost")  # bob's archive stamped it
            bob.client.send_message(mto="alice@localhost", mbody=f"pong {i}", mtype="chat")
            assert (await alice.next_message())["body"] == f"pong {i}"
        alice.client.send_message(mto="carol@localhost", mbody="hi carol", mtype="chat")
        await alice.settle()
        mam = alice.client.plugin["xep_0313"]
        fields = await mam.get_fields(timeout=10)
        assert {"with", "start", "end", "before-id", "after-id", "ids"} <= {
            f["var"] for f in fields["fields"]
        }

        # forwards, three at a time, only the conversation with bob
        bodies = []
        async for page in mam.retrieve(
            with_jid=JID("bob@localhost"), iterator=True, rsm={"max": 3}
        ):
            bodies += [
                r["mam_result"]["forwarded"]["stanza"]["body"] for r in page["mam"]["results"]
            ]
        assert bodies == [f"{w} {i}" for i in range(5) for w in ("ping", "pong")]

        # backwards, one message at a time, as slixmpp's own integration test does
        newest = []
        async for message in mam.iterate(
            with_jid=JID("bob@localhost"), reverse=True, rsm={"max": 1}
        ):
            newest.append(message["mam_result"]["forwarded"]["stanza"]["body"])
            if len(newest) == 3:
                break
        assert newest == ["pong 4", "ping 4", "pong 3"]

        # everything: carol's message last
        result = await mam.retrieve(rsm={"max": 50}, timeout=10)
        results = result["mam"]["results"]
        assert len(results) == 11
        assert results[-1]["mam_result"]["forwarded"]["stanza"]["body"] == "hi carol"
        assert result["mam_fin"]["complete"]

        # metadata: the first and the last archived message
        meta = await mam.get_archive_metadata(timeout=10)
        assert meta["mam_metadata"]["start"]["id"] == results[0]["mam_result"]["id"]
        assert meta["mam_metadata"]["end"]["id"] == results[-1]["mam_result"]["id"]
