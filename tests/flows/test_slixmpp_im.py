"""Instant messaging (RFC 6121) with unmodified slixmpp clients: every row of the subscription
state tables a client can trigger, presence on login/logout/connection loss, roster versioning
with a caching client, offline messages, pre-approval, pending requests across reconnects and
restarts.

Each client fetches its roster and answers subscription requests only when the test says so.
States are reached by real stanzas from the clients, never written into the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minixmpp.testing import TestServer, running_server
from tests.xmpp import SlixClient, slix_login

# RFC 6121 Appendix A.1: state -> (subscription, pending out, pending in), from the holder's side
STATES = {
    "None": ("none", False, False),
    "None+PO": ("none", True, False),
    "None+PI": ("none", False, True),
    "None+POI": ("none", True, True),
    "To": ("to", False, False),
    "To+PI": ("to", False, True),
    "From": ("from", False, False),
    "From+PO": ("from", True, False),
    "Both": ("both", False, False),
}
MIRROR = {
    "None": "None", "None+PO": "None+PI", "None+PI": "None+PO", "None+POI": "None+POI",
    "To": "From", "To+PI": "From+PO", "From": "To", "From+PO": "To+PI", "Both": "Both",
}  # fmt: skip
# How alice reaches each state with bob, by stanzas the two clients send.
PATHS = {
    "None": [],
    "None+PO": [("alice", "subscribe")],
    "None+PI": [("bob", "subscribe")],
    "None+POI": [("alice", "subscribe"), ("bob", "subscribe")],
    "To": [("alice", "subscribe"), ("bob", "subscribed")],
    "To+PI": [("alice", "subscribe"), ("bob", "subscribed"), ("bob", "subscribe")],
    "From": [("bob", "subscribe"), ("alice", "subscribed")],
    "From+PO": [("bob", "subscribe"), ("alice", "subscribed"), ("alice", "subscribe")],
    "Both": [
        ("alice", "subscribe"), ("bob", "subscribed"), ("bob", "subscribe"), ("alice", "subscribed")
    ],
}  # fmt: skip
SAME = None  # "no state change"
# A.2: the user's state after sending each stanza.
OUTBOUND = {
    "subscribe": {
        "None": "None+PO", "None+PO": SAME, "None+PI": "None+POI", "None+POI": SAME, "To": SAME,
        "To+PI": SAME, "From": "From+PO", "From+PO": SAME, "Both": SAME,
    },
    "unsubscribe": {
        "None": SAME, "None+PO": "None", "None+PI": SAME, "None+POI": "None+PI", "To": "None",
        "To+PI": "None+PI", "From": SAME, "From+PO": "From", "Both": "From",
    },
    "subscribed": {
        "None": SAME, "None+PO": SAME, "None+PI": "From", "None+POI": "From+PO", "To": SAME,
        "To+PI": "Both", "From": SAME, "From+PO": SAME, "Both": SAME,
    },
    "unsubscribed": {
        "None": SAME, "None+PO": SAME, "None+PI": "None", "None+POI": "None+PO", "To": SAME,
        "To+PI": "To", "From": "None", "From+PO": "None+PO", "Both": "To",
    },
}  # fmt: skip
# A.3: the contact's state after receiving each stanza.
INBOUND = {
    "subscribe": {
        "None": "None+PI", "None+PO": "None+POI", "None+PI": SAME, "None+POI": SAME,
        "To": "To+PI", "To+PI": SAME, "From": SAME, "From+PO": SAME, "Both": SAME,
    },
    "unsubscribe": {
        "None": SAME, "None+PO": SAME, "None+PI": "None", "None+POI": "None+PO", "To": SAME,
        "To+PI": "To", "From": "None", "From+PO": "None+PO", "Both": "To",
    },
    "subscribed": {
        "None": SAME, "None+PO": "To", "None+PI": SAME, "None+POI": "To+PI", "To": SAME,
        "To+PI": SAME, "From": SAME, "From+PO": "Both", "Both": SAME,
    },
    "unsubscribed": {
        "None": SAME, "None+PO": "None", "None+PI": SAME, "None+POI": "None+PI", "To": "None",
        "To+PI": "None+PI", "From": SAME, "From+PO": "From", "Both": "From",
    },
}  # fmt: skip


def routed(action: str, state: str) -> bool:
    """Whether the user's server routes the stanza to the contact (RFC 6121 §3)."""
    subscription, _out, pending_in = STATES[state]
    if action == "subscribed":  # only an answer to a request (else a pre-approval, or nothing)
        return pending_in
    if action == "unsubscribed":
        return pending_in or subscription in ("from", "both")
    return True


async def connect(
    server: TestServer, user: str, resource: str = "slix", **kwargs: Any
) -> SlixClient:
    return await slix_login(
        server.c2s_port,
        server.ca_file,
        f"{user}@localhost/{resource}",
        f"{user}-secret",
        roster=True,
        **kwargs,
    )


async def state_of(server: TestServer, user: str, contact: str) -> str:
    rosters = server.server.rosters
    item = await rosters.item("localhost", user, f"{contact}@localhost")
    pending = await rosters.is_pending("localhost", user, f"{contact}@localhost")
    current = (item.subscription, item.ask, pending) if item else ("none", False, pending)
    return next(name for name, value in STATES.items() if value == current)


async def send(clients: dict[str, SlixClient], user: str, kind: str) -> None:
    """``user`` sends a subscription stanza to the other; both then have all it caused."""
    other = "bob" if user == "alice" else "alice"
    clients[user].client.send_presence(pto=f"{other}@localhost", ptype=kind)
    await clients[user].settle()
    await clients[other].settle()


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("action", list(OUTBOUND))
async def test_state_tables(server: TestServer, action: str, state: str) -> None:
    clients = {"alice": await connect(server, "alice"), "bob": await connect(server, "bob")}
    for user, kind in PATHS[state]:
        await send(clients, user, kind)
    assert await state_of(server, "alice", "bob") == state
    assert await state_of(server, "bob", "alice") == MIRROR[state]

    await send(clients, "alice", action)
    expected_alice = OUTBOUND[action][state] or state
    bob_before = MIRROR[state]
    expected_bob = (
        (INBOUND[action][bob_before] or bob_before) if routed(action, state) else bob_before
    )
    assert await state_of(server, "alice", "bob") == expected_alice
    assert await state_of(server, "bob", "alice") == expected_bob
    # each client's own view, built from the roster pushes it received, agrees
    for user, contact in (("alice", "bob"), ("bob", "alice")):
        item = await server.server.rosters.item("localhost", user, f"{contact}@localhost")
        view = clients[user].roster[f"{contact}@localhost"]
        expected = (item.to, item.from_, item.ask) if item else (False, False, False)
        assert (view["to"], view["from"], view["pending_out"]) == expected, user


async def test_presence_of_three_clients_and_a_restart(tmp_path: Path) -> None:
    watch = ("roster_subscription_request", "got_online", "got_offline")
    async with running_server(tmp_path) as srv:
        for user in ("alice", "bob", "carol"):
            await srv.create_user(user, f"{user}-secret")
        alice = await connect(srv, "alice", watch=watch)
        bob = await connect(srv, "bob", watch=watch)
        carol = await connect(srv, "carol", watch=watch)
        # alice and each of the others subscribe to each other, the way a user does it
        for friend, name in ((bob, "bob"), (carol, "carol")):
            alice.roster[f"{name}@localhost"].subscribe()
            request = await friend.next_event("roster_subscription_request")
            assert request["from"] == "alice@localhost"
            friend.roster["alice@localhost"].authorize()
            friend.roster["alice@localhost"].subscribe()
            request = await alice.next_event("roster_subscription_request")
            assert request["from"] == f"{name}@localhost"
            alice.roster[f"{name}@localhost"].authorize()
            await alice.event_from("got_online", f"{name}@localhost/slix")
            await friend.event_from("got_online", "alice@localhost/slix")
        for client in (alice, bob, carol):
            await client.settle()
        for name in ("bob", "carol"):
            assert alice.roster[f"{name}@localhost"]["subscription"] == "both"
        assert "carol@localhost" not in bob.roster  # they share alice, not a subscription

        await carol.disconnect()  # a clean logout
        offline = await alice.event_from("got_offline", "carol@localhost/slix")
        assert offline["status"] == ""
        bob.client.abort()  # the connection is lost: no </stream:stream>, no close_notify
        offline = await alice.event_from("got_offline", "bob@localhost/slix")
        assert offline["status"].startswith("Disconnected: ")
        await bob.disconnect()
        await alice.settle()
        assert [str(e["from"]) for e in bob.pending_events("got_offline")] == []  # not carol
        await alice.disconnect()

    async with running_server(tmp_path) as srv:  # rosters survive a restart
        alice = await connect(srv, "alice", watch=watch)
        assert {jid: alice.roster[jid]["subscription"] for jid in alice.roster} == {
            "bob@localhost": "both",
            "carol@localhost": "both",
        }
        bob = await connect(srv, "bob", watch=watch)
        await alice.event_from("got_online", "bob@localhost/slix")
        await bob.event_from("got_online", "alice@localhost/slix")


class RosterCache:
    """A slixmpp roster store kept between connections, as a real client keeps one on disk."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.ver = ""

    def entries(self, owner: Any, db_state: Any = None) -> list[str]:
        return list(self.items)

    def load(self, owner: Any, jid: Any, db_state: Any) -> dict[str, Any] | None:
        return self.items.get(str(jid))

    def save(self, owner: Any, jid: Any, state: dict[str, Any], db_state: Any) -> None:
        self.items[str(jid)] = dict(state)

    def version(self, owner: Any) -> str:
        return self.ver

    def set_version(self, owner: Any, version: str) -> None:
        self.ver = version


async def test_roster_versioning_with_a_caching_client(server: TestServer) -> None:
    cache = RosterCache()
    watch = ("roster_update",)
    alice = await connect(server, "alice", roster_db=cache, watch=watch)
    first = await alice.next_event("roster_update")
    assert first["roster"]["items"] == {} and first["roster"]["ver"] == "0"
    await alice.client.update_roster("bob@localhost", name="Bob", groups=["Friends"])
    await alice.client.update_roster("carol@localhost", name="Carol")
    await alice.settle()
    contacts = set(cache.items) - {"alice@localhost"}  # slixmpp also tracks its own JID
    assert cache.ver == "2" and contacts == {"bob@localhost", "carol@localhost"}
    await alice.disconnect()

    alice = await connect(server, "alice", roster_db=cache, watch=watch)  # sends ver='2'
    unchanged = await alice.next_event("roster_update")
    # nothing changed: an empty result (a full one always carries the version)
    assert not unchanged["roster"]["ver"] and unchanged["roster"]["items"] == {}
    assert alice.roster["bob@localhost"]["name"] == "Bob"  # from the cache
    await alice.disconnect()

    phone = await connect(server, "alice", "phone")  # another device changes the roster
    await phone.client.del_roster_item("carol@localhost")
    await phone.settle()
    alice = await connect(server, "alice", roster_db=cache, watch=watch)
    full = await alice.next_event("roster_update")
    assert full["roster"]["ver"] == "3"
    assert set(full["roster"]["items"]) == {"bob@localhost"}
    assert full["roster"]["items"]["bob@localhost"]["groups"] == ["Friends"]
    # a push reaches a connected caching client and moves its version on
    await phone.client.update_roster("bob@localhost", name="Bobby", groups=["Friends"])
    push = await alice.next_event("roster_update")
    assert push["type"] == "set" and push["roster"]["ver"] == "4"
    await alice.settle()
    assert cache.ver == "4" and alice.roster["bob@localhost"]["name"] == "Bobby"


async def test_offline_messages_come_with_a_delay(server: TestServer) -> None:
    alice = await connect(server, "alice")
    for n in range(3):
        alice.client.send_message(mto="bob@localhost", mbody=f"m{n}", mtype="chat")
    alice.client.send_message(mto="bob@localhost", mbody="news", mtype="headline")
    await alice.settle()
    bob = await connect(server, "bob", plugins=("xep_0030", "xep_0199", "xep_0203"))
    for n in range(3):
        msg = await bob.next_message()
        assert (msg["body"], str(msg["from"])) == (f"m{n}", alice.jid)
        assert msg["delay"]["from"] == "localhost" and msg["delay"]["stamp"] is not None
    await bob.settle()
    assert bob.messages.empty()  # headlines are not kept


async def test_pre_approval(server: TestServer) -> None:
    watch = ("roster_subscription_request", "roster_subscription_authorized", "got_online")
    bob = await connect(server, "bob", watch=watch)
    assert "preapproval" in bob.client.features
    bob.client.send_presence(pto="carol@localhost", ptype="subscribed")
    await bob.settle()
    carol = await connect(server, "carol", watch=watch)
    carol.roster["bob@localhost"].subscribe()
    authorized = await carol.next_event("roster_subscription_authorized")
    assert authorized["from"] == "bob@localhost"
    await carol.event_from("got_online", "bob@localhost/slix")
    await carol.settle()
    await bob.settle()
    assert carol.roster["bob@localhost"]["subscription"] == "to"
    assert bob.roster["carol@localhost"]["subscription"] == "from"
    assert bob.pending_events("roster_subscription_request") == []  # approved beforehand


async def test_pending_request_across_reconnects_and_a_restart(tmp_path: Path) -> None:
    watch = ("roster_subscription_request", "roster_subscription_authorized")
    plugins = ("xep_0030", "xep_0199", "xep_0172")
    async with running_server(tmp_path) as srv:
        for user in ("alice", "bob"):
            await srv.create_user(user, f"{user}-secret")
        alice = await connect(srv, "alice", watch=watch, plugins=plugins)
        alice.client.send_presence_subscription(pto="bob@localhost", pnick="Alice A.")
        await alice.settle()
        await alice.disconnect()
        for attempt in range(2):  # delivered at each login until answered
            bob = await connect(srv, "bob", f"r{attempt}", watch=watch, plugins=plugins)
            request = await bob.next_event("roster_subscription_request")
            assert (request["from"], request["nick"]["nick"]) == ("alice@localhost", "Alice A.")
            await bob.disconnect()
    async with running_server(tmp_path) as srv:
        bob = await connect(srv, "bob", watch=watch, plugins=plugins)
        request = await bob.next_event("roster_subscription_request")
        assert request["nick"]["nick"] == "Alice A."  # kept whole across the restart
        bob.roster["alice@localhost"].authorize()
        await bob.settle()
        alice = await connect(srv, "alice", watch=watch)
        assert alice.roster["bob@localhost"]["subscription"] == "to"
        assert bob.roster["alice@localhost"]["subscription"] == "from"
