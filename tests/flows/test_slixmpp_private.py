"""slixmpp's Private XML Storage (xep_0049) and its XEP-0048 bookmarks in it (xep_0048)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.testing import running_server
from tests.xmpp import slix_login

PLUGINS = ("xep_0030", "xep_0199", "xep_0048", "xep_0049")


async def test_slixmpp_bookmarks_in_private_storage(tmp_path: Path) -> None:
    from slixmpp.exceptions import IqError
    from slixmpp.plugins.xep_0048.stanza import Bookmarks

    async with running_server(tmp_path, modules=["disco", "ping", "private"]) as srv:
        await srv.create_user("alice", "pw")
        await srv.create_user("bob", "pw")
        phone = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/phone", "pw", plugins=PLUGINS
        )
        desk = await slix_login(
            srv.c2s_port, srv.ca_file, "alice@localhost/desk", "pw", plugins=PLUGINS
        )
        bookmarks = Bookmarks()
        bookmarks.add_conference("room@muc.example", "alice", name="Room", autojoin=True)
        await phone.client.plugin["xep_0048"].set_bookmarks(bookmarks, timeout=10)
        got = await desk.client.plugin["xep_0048"].get_bookmarks(timeout=10)
        conferences = got["private"]["bookmarks"]["conferences"]
        assert [(str(c["jid"]), c["nick"], c["autojoin"]) for c in conferences] == [
            ("room@muc.example", "alice", True)
        ]
        # someone else's storage is refused
        bob = await slix_login(srv.c2s_port, srv.ca_file, "bob@localhost", "pw", plugins=PLUGINS)
        iq = bob.client.make_iq_get(ito="alice@localhost")
        iq["private"].enable("bookmarks")
        with pytest.raises(IqError) as refused:
            await iq.send(timeout=10)
        assert refused.value.iq["error"]["condition"] == "forbidden"
