"""Private XML Storage (XEP-0049) over real sockets: store, get, delete, errors and limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.events import PRIVATE_STORAGE_CHANGED, PrivateStorageChanged
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.stored import stored
from tests.xmpp import login, same_xml, stanza_error, until_pong

NS = "jabber:iq:private"
BOOKMARKS = "<storage xmlns='storage:bookmarks'><conference jid='a@b' name='A'/></storage>"


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path,
        modules=["disco", "ping", "private"],
        options={"private_max_size": 200, "private_max_items": 2},
    ) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        yield server


async def test_store_get_and_delete(srv: TestServer) -> None:
    alice, jid = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "phone")
    empty = await alice.iq(
        f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>", id="g0"
    )
    same_xml(
        empty,
        f"<iq type='result' to='{jid}'><query xmlns='{NS}'>"
        "<storage xmlns='storage:bookmarks'/></query></iq>",
    )
    stored = await alice.iq(f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type="set", id="s1")
    same_xml(stored, f"<iq type='result' to='{jid}'/>")
    # read back from another connection: it is in the account, not the session
    desk, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "desk")
    got = await desk.iq(
        f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>", id="g1"
    )
    same_xml(got[0][0], BOOKMARKS)
    # an empty element deletes
    await alice.iq(
        f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>", type="set", id="d"
    )
    got = await desk.iq(
        f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>", id="g2"
    )
    same_xml(got[0][0], "<storage xmlns='storage:bookmarks'/>")
    # others' data is not shown: bob has none under the same key
    bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
    await alice.iq(f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type="set", id="s2")
    got = await bob.iq(f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>")
    assert len(got[0][0]) == 0


@pytest.mark.parametrize(
    ("query", "condition"),
    [
        (f"<query xmlns='{NS}'/>", "not-acceptable"),
        (f"<query xmlns='{NS}'><a xmlns='x:a'/><b xmlns='x:b'/></query>", "not-acceptable"),
        (f"<query xmlns='{NS}'><prefs/></query>", "not-acceptable"),  # jabber:iq:private
    ],
)
async def test_malformed_queries(srv: TestServer, query: str, condition: str) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    for kind in ("get", "set"):
        reply = await alice.iq(query, type=kind, id=kind)
        assert stanza_error(reply)[:2] == ("modify", condition)


async def test_another_users_storage_is_forbidden(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
    await bob.iq(f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type="set", id="b")
    for kind in ("get", "set"):
        reply = await alice.iq(
            f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type=kind, id=kind, to="bob@localhost"
        )
        assert stanza_error(reply) == (
            "auth",
            "forbidden",
            "You may only access your own private storage",
        )
    got = await bob.iq(f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>")
    same_xml(got[0][0], BOOKMARKS)  # unchanged
    # one's own bare JID as 'to' is one's own storage
    own = await bob.iq(
        f"<query xmlns='{NS}'><storage xmlns='storage:bookmarks'/></query>", to="bob@localhost"
    )
    same_xml(own[0][0], BOOKMARKS)


async def test_limits(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    big = f"<query xmlns='{NS}'><big xmlns='x:big'>{'x' * 200}</big></query>"
    reply = await alice.iq(big, type="set", id="big")
    assert stanza_error(reply) == (
        "modify",
        "not-acceptable",
        "Private XML elements are limited to 200 bytes",
    )
    for ns in ("x:1", "x:2"):
        reply = await alice.iq(f"<query xmlns='{NS}'><a xmlns='{ns}'>1</a></query>", type="set")
        assert reply.get("type") == "result"
    reply = await alice.iq(f"<query xmlns='{NS}'><a xmlns='x:3'>1</a></query>", type="set")
    assert stanza_error(reply) == (
        "wait",
        "resource-constraint",
        "Private storage is limited to 2 elements",
    )
    # replacing or deleting a stored one is always allowed
    reply = await alice.iq(f"<query xmlns='{NS}'><a xmlns='x:2'>2</a></query>", type="set")
    assert reply.get("type") == "result"
    await alice.iq(f"<query xmlns='{NS}'><a xmlns='x:1'/></query>", type="set")
    reply = await alice.iq(f"<query xmlns='{NS}'><a xmlns='x:3'>1</a></query>", type="set")
    assert reply.get("type") == "result"


async def test_api_and_change_event(srv: TestServer) -> None:
    """What a bookmarks sync uses: the event for a client's change, the API to read and write."""
    host = srv.server.hosts["localhost"]
    api = host.modules["private"].api
    seen: list[PrivateStorageChanged] = []

    async def record(event: PrivateStorageChanged) -> None:
        seen.append(event)

    host.events.hook(PRIVATE_STORAGE_CHANGED, record)
    alice, jid = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    await alice.iq(f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type="set")
    assert [(e.username, e.key, e.session is not None) for e in seen] == [
        ("alice", "storage:storage:bookmarks", True)
    ]
    assert seen[0].element is not None and seen[0].session is not None
    assert seen[0].session.jid.full == jid
    same_xml(seen[0].element, BOOKMARKS)
    stored = await api.get("alice", "storage", "storage:bookmarks")
    same_xml(stored, BOOKMARKS)
    await api.set("alice", etree.fromstring("<storage xmlns='storage:bookmarks'/>"))
    assert [(e.element, e.session) for e in seen[1:]] == [(None, None)]
    assert await api.get("alice", "storage", "storage:bookmarks") is None
    # nothing changed: no event
    await api.set("alice", etree.fromstring("<storage xmlns='storage:bookmarks'/>"))
    assert len(seen) == 2


async def test_disco_feature_and_deleted_account(srv: TestServer) -> None:
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    info = await alice.iq(
        "<query xmlns='http://jabber.org/protocol/disco#info'/>", to="localhost", id="d"
    )
    assert NS in {f.get("var") for f in info.iter("{*}feature")}
    await alice.iq(f"<query xmlns='{NS}'>{BOOKMARKS}</query>", type="set")
    await alice.close()
    host = srv.server.hosts["localhost"]
    await host.users.delete("alice")
    await srv.create_user("alice", "new")
    assert await host.modules["private"].api.get("alice", "storage", "storage:bookmarks") is None


async def test_a_hostile_client_keeps_bounded_private_storage(srv: TestServer) -> None:
    """Ever new names, each as large as allowed, then larger: the account keeps at most
    private_max_items elements of private_max_size bytes (the database rows), and another
    user is served meanwhile."""
    alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"])
    bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
    refused = []
    for i in range(40):
        fill = "z" * (150 if i < 20 else 5000)
        reply = await alice.iq(
            f"<query xmlns='{NS}'><a xmlns='x:{i}'>{fill}</a></query>", type="set", id=f"s{i}"
        )
        if reply.get("type") == "error":
            refused.append(stanza_error(reply)[1])
        if i % 10 == 9:
            assert await until_pong(bob) == []
    assert refused == ["resource-constraint"] * 18 + ["not-acceptable"] * 20
    rows, size = await stored(srv, "alice", "private")
    assert rows == 2 and size <= 2 * 200, (rows, size)
