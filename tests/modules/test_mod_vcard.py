"""vCard-temp (XEP-0054) and the vCard avatar hash in presence (XEP-0153) over real sockets,
with Prosody 0.12.3's replies (recorded against a live Prosody with mod_vcard) where it has
them."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.events import VCARD_CHANGED, VcardChanged
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.stored import stored
from tests.xmpp import RawClient, login, same_xml, stanza_error, until_pong

NS = "vcard-temp"
UPDATE = "vcard-temp:x:update"
PNG = b"\x89PNG\r\n\x1a\n fake image"
PHOTO = f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{base64.b64encode(PNG).decode()}</BINVAL></PHOTO>"
HASH = hashlib.sha1(PNG).hexdigest()
ALICE = "alice@localhost/r"
BOB = "bob@localhost/r"


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=["disco", "ping", "vcard"], options={"vcard_max_size": 1000}
    ) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        yield server


async def client(srv: TestServer, name: str, *, presence: bool = False) -> RawClient:
    connected, _ = await login(
        srv.c2s_port, srv.ca_file, name, PASSWORDS[name], "r", presence=presence
    )
    return connected


async def test_own_vcard(srv: TestServer) -> None:
    alice = await client(srv, "alice")
    # none yet: an empty vCard (XEP-0054 §3.1; as Prosody's default mod_vcard_legacy answers)
    same_xml(
        await alice.iq(f"<vCard xmlns='{NS}'/>", id="g0"),
        f"<iq type='result' to='{ALICE}'><vCard xmlns='{NS}'/></iq>",
    )
    vcard = f"<vCard xmlns='{NS}' foo='1'>text<FN>A</FN><x xmlns='urn:other'/></vCard>"
    same_xml(await alice.iq(vcard, type="set", id="s"), f"<iq type='result' to='{ALICE}'/>")
    # kept whole (Prosody): attributes, text, other namespaces; asked with or without 'to'
    for to in (None, "alice@localhost"):
        same_xml(
            await alice.iq(f"<vCard xmlns='{NS}'><FN/></vCard>", to=to, id="g1"),
            f"<iq type='result' to='{ALICE}'>{vcard}</iq>",
        )
    # an empty one is stored as it is (Prosody)
    await alice.iq(f"<vCard xmlns='{NS}'/>", type="set", id="s2")
    same_xml(
        await alice.iq(f"<vCard xmlns='{NS}'/>", id="g2"),
        f"<iq type='result' to='{ALICE}'><vCard xmlns='{NS}'/></iq>",
    )


async def test_others_vcards(srv: TestServer) -> None:
    alice, bob = await client(srv, "alice"), await client(srv, "bob")
    vcard = f"<vCard xmlns='{NS}'><FN>Alice</FN>{PHOTO}</vCard>"
    await alice.iq(vcard, type="set")
    same_xml(  # Prosody 0.12.3's replies, all of them
        await bob.iq(f"<vCard xmlns='{NS}'/>", to="alice@localhost", id="g2"),
        f"<iq type='result' from='alice@localhost' to='{BOB}'>{vcard}</iq>",
    )
    for to in ("carol@localhost", "nobody@localhost", "localhost"):  # none, no account, host
        same_xml(
            await bob.iq(f"<vCard xmlns='{NS}'/>", to=to, id="g3"),
            f"<iq type='error' from='{to}' to='{BOB}'><error type='cancel'><item-not-found"
            " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
    for to in ("alice@localhost", "localhost"):
        same_xml(
            await bob.iq(f"<vCard xmlns='{NS}'><FN>x</FN></vCard>", type="set", to=to, id="s1"),
            f"<iq type='error' from='{to}' to='{BOB}'><error type='auth'><forbidden"
            " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
    got = await bob.iq(f"<vCard xmlns='{NS}'/>", to="alice@localhost", id="g4")
    same_xml(got[0], vcard)  # unchanged
    # the account's vCard goes with it
    await srv.delete_user("alice@localhost")
    gone = await bob.iq(f"<vCard xmlns='{NS}'/>", to="alice@localhost", id="g5")
    assert stanza_error(gone) == ("cancel", "item-not-found", None)
    # and so does its avatar: a new account of that name has none
    await srv.create_user("alice", PASSWORDS["alice"])
    again = await client(srv, "alice")
    await again.send("<presence to='bob@localhost/r'/>")
    assert await photo_seen(bob, ALICE) == ""


async def test_size_limit(srv: TestServer) -> None:
    alice = await client(srv, "alice")
    small = f"<vCard xmlns='{NS}'><FN>Alice</FN></vCard>"
    await alice.iq(small, type="set", id="s1")
    big = f"<vCard xmlns='{NS}'><DESC>{'x' * 1000}</DESC></vCard>"
    refused = await alice.iq(big, type="set", id="s2")
    assert stanza_error(refused) == ("modify", "not-acceptable", "vCards are limited to 1000 bytes")
    same_xml((await alice.iq(f"<vCard xmlns='{NS}'/>", id="g"))[0], small)


async def test_changes_are_announced(srv: TestServer) -> None:
    seen: list[VcardChanged] = []
    host = srv.server.hosts["localhost"]

    async def record(event: VcardChanged) -> None:
        seen.append(event)

    host.events.hook(VCARD_CHANGED, record)
    alice = await client(srv, "alice")
    await alice.iq(f"<vCard xmlns='{NS}'><FN>A</FN>{PHOTO}</vCard>", type="set")
    assert [(e.username, e.avatar_hash, e.vcard.findtext(f"{{{NS}}}FN")) for e in seen] == [
        ("alice", HASH, "A")
    ]
    assert seen[0].session is not None and seen[0].session.jid.full == ALICE


async def photo_seen(receiver: RawClient, sender: str) -> str | None:
    """The <photo/> of the next presence from ``sender`` ("" empty, None: no x or no photo)."""
    presence = await receiver.expect_where("presence", from_=sender)
    return presence.findtext(f"{{{UPDATE}}}x/{{{UPDATE}}}photo")


async def test_avatar_hash_in_presence(srv: TestServer) -> None:
    await srv.add_contact("alice@localhost", "bob@localhost")
    bob = await client(srv, "bob", presence=True)
    alice = await client(srv, "alice")
    # no vCard: an empty <photo/> ("no avatar"), as mod_vcard_legacy says without a PEP avatar
    await alice.send("<presence/>")
    presence = await bob.expect_where("presence", from_=ALICE)
    same_xml(
        presence,
        f"<presence from='{ALICE}' to='bob@localhost' xml:lang='en'>"
        f"<x xmlns='{UPDATE}'><photo/></x></presence>",
        ignore=("id", "{http://www.w3.org/XML/1998/namespace}lang", "to"),
    )
    await alice.iq(f"<vCard xmlns='{NS}'><FN>A</FN>{PHOTO}</vCard>", type="set")
    await alice.send("<presence><show>away</show></presence>")
    assert await photo_seen(bob, ALICE) == HASH
    assert await photo_seen(alice, ALICE) == HASH  # her own resource sees it too
    # the client's own <photo/> is left as it is; an <x/> without one gets it
    await alice.send(f"<presence><x xmlns='{UPDATE}'><photo>abc</photo></x></presence>")
    assert await photo_seen(bob, ALICE) == "abc"
    await alice.send(f"<presence><x xmlns='{UPDATE}'/></presence>")
    presence = await bob.expect_where("presence", from_=ALICE)
    assert len(presence.findall(f"{{{UPDATE}}}x")) == 1
    assert presence.findtext(f"{{{UPDATE}}}x/{{{UPDATE}}}photo") == HASH
    # directed presence too; unavailable presence not
    await alice.send("<presence to='carol@localhost'/>")
    await alice.send("<presence type='unavailable'/>")
    gone = await bob.expect_where("presence", from_=ALICE)
    assert gone.get("type") == "unavailable" and gone.find(f"{{{UPDATE}}}x") is None
    await until_pong(alice)


async def test_directed_presence_and_a_new_photo(srv: TestServer) -> None:
    alice, carol = await client(srv, "alice"), await client(srv, "carol")
    await alice.iq(f"<vCard xmlns='{NS}'>{PHOTO}</vCard>", type="set")
    await alice.send("<presence to='carol@localhost/r'/>")
    assert await photo_seen(carol, ALICE) == HASH
    other = b"another picture"
    binval = base64.encodebytes(other).decode()  # with line breaks, as some clients send it
    new = f"<vCard xmlns='{NS}'><PHOTO><BINVAL>{binval}</BINVAL></PHOTO></vCard>"
    await alice.iq(new, type="set", id="new")
    await alice.send("<presence to='carol@localhost/r'/>")
    assert await photo_seen(carol, ALICE) == hashlib.sha1(other).hexdigest()
    for n, photo in enumerate(
        (
            "<PHOTO><EXTVAL>https://x/y.png</EXTVAL></PHOTO>",
            "<PHOTO><BINVAL>not base64!</BINVAL></PHOTO>",
            "",
        )
    ):
        await alice.iq(f"<vCard xmlns='{NS}'>{photo}</vCard>", type="set", id=f"v{n}")
        await alice.send("<presence to='carol@localhost/r'/>")
        assert await photo_seen(carol, ALICE) == "", photo  # <photo/>: no hash to give


async def test_a_reset_forgets_avatars(srv: TestServer) -> None:
    start = await srv.snapshot()
    alice = await client(srv, "alice")
    await alice.iq(f"<vCard xmlns='{NS}'>{PHOTO}</vCard>", type="set")
    await srv.restore(start)  # as the pytest plugin does between tests
    alice, carol = await client(srv, "alice"), await client(srv, "carol")
    await alice.send("<presence to='carol@localhost/r'/>")
    assert await photo_seen(carol, ALICE) == ""


async def test_a_hostile_client_keeps_a_bounded_vcard(srv: TestServer) -> None:
    """vCards ever larger: what is stored never passes vcard_max_size (the database row), and
    another user is served meanwhile."""
    alice, bob = await client(srv, "alice"), await client(srv, "bob")
    for size in range(500, 20_000, 2000):
        vcard = f"<vCard xmlns='{NS}'><DESC>{'x' * size}</DESC></vCard>"
        reply = await alice.iq(vcard, type="set", id=f"s{size}")
        assert reply.get("type") == ("result" if size == 500 else "error")
        assert await until_pong(bob) == []
    rows, size = await stored(srv, "alice", "vcard")
    assert rows == 1 and 500 < size <= 1000, (rows, size)
