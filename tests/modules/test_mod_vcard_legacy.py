"""vCard and PEP avatars in step (XEP-0398, mod_vcard_legacy) and vCard4 over PEP (XEP-0292,
mod_vcard4), over real sockets: a vCard photo becomes the PEP avatar, a PEP avatar the vCard
photo (for whom the PEP node lets read it), the presence hash follows PEP, an old vCard photo
moves to PEP at the next login."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.pubsub import NS, contacts, publish, pubsub
from tests.xmpp import RawClient, login, same_xml, stanza_error

VCARD = "vcard-temp"
UPDATE = "vcard-temp:x:update"
DATA = "urn:xmpp:avatar:data"
METADATA = "urn:xmpp:avatar:metadata"
VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
INFO = "http://jabber.org/protocol/disco#info"
IMAGE = b"\x89PNG\r\n\x1a\n an avatar"
B64 = base64.b64encode(IMAGE).decode()
HASH = hashlib.sha1(IMAGE).hexdigest()
PHOTO = f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{B64}</BINVAL></PHOTO>"
MODULES = ["disco", "ping", "pep", "vcard_legacy", "vcard4"]


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        await contacts(server, "alice", "bob")
        yield server


async def client(srv: TestServer, name: str) -> RawClient:
    connected, _ = await login(srv.c2s_port, srv.ca_file, name, PASSWORDS[name], "r")
    return connected


async def avatar_items(reader: RawClient, node: str) -> list[tuple[str | None, bytes]]:
    reply = await pubsub(reader, f"<items node='{node}'/>", type="get", to="alice@localhost")
    assert reply.get("type") == "result", reply
    return [(i.get("id"), bytes(i[0].text or "", "utf-8")) for i in reply.iter(f"{{{NS}}}item")]


async def photo_in_presence(alice: RawClient, to: RawClient) -> str:
    await alice.send("<presence to='carol@localhost/r'/>")
    presence = await to.expect_where("presence", from_="alice@localhost/r")
    return presence.findtext(f"{{{UPDATE}}}x/{{{UPDATE}}}photo") or ""


async def test_a_vcard_photo_becomes_the_pep_avatar(srv: TestServer) -> None:
    alice, carol = await client(srv, "alice"), await client(srv, "carol")
    info = await alice.iq(f"<query xmlns='{INFO}'/>", to="alice@localhost")
    assert "urn:xmpp:pep-vcard-conversion:0" in {
        f.get("var") for f in info.iter(f"{{{INFO}}}feature")
    }
    await alice.iq(f"<vCard xmlns='{VCARD}'><FN>Alice</FN>{PHOTO}</vCard>", type="set")
    # XEP-0398 §3.2: data (its id the image's SHA-1), then metadata, open as a vCard is
    meta = await pubsub(carol, f"<items node='{METADATA}'/>", type="get", to="alice@localhost")
    same_xml(
        meta[0][0],
        f"<items xmlns='{NS}' node='{METADATA}'><item id='{HASH}'><metadata xmlns='{METADATA}'>"
        f"<info bytes='{len(IMAGE)}' id='{HASH}' type='image/png'/></metadata></item></items>",
    )
    data = await pubsub(carol, f"<items node='{DATA}'/>", type="get", to="alice@localhost")
    assert [(i.get("id"), i[0].text) for i in data.iter(f"{{{NS}}}item")] == [(HASH, B64)]
    # the vCard everyone reads has the photo; the stored one does not (PEP holds it)
    for reader in (alice, carol):
        got = await reader.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost", id="g")
        same_xml(got[0], f"<vCard xmlns='{VCARD}'><FN>Alice</FN>{PHOTO}</vCard>")
    stored = await srv.server.hosts["localhost"].modules["vcard"].api.get("alice")
    assert stored.find(f"{{{VCARD}}}PHOTO") is None
    assert await photo_in_presence(alice, carol) == HASH
    # a vCard without a photo: no avatar any more, in PEP and in presence
    await alice.iq(f"<vCard xmlns='{VCARD}'><FN>Alice</FN></vCard>", type="set", id="s2")
    meta = await pubsub(carol, f"<items node='{METADATA}'/>", type="get", to="alice@localhost")
    assert list(meta.iter(f"{{{NS}}}item")) == []
    got = await carol.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost", id="g2")
    same_xml(got[0], f"<vCard xmlns='{VCARD}'><FN>Alice</FN></vCard>")
    assert await photo_in_presence(alice, carol) == ""


async def test_a_pep_avatar_becomes_the_vcard_photo(srv: TestServer) -> None:
    alice, bob, carol = (
        await client(srv, "alice"),
        await client(srv, "bob"),
        await client(srv, "carol"),
    )
    # as Conversations publishes it: PEP's default access (presence: contacts only)
    await pubsub(alice, publish(DATA, f"<data xmlns='{DATA}'>{B64}</data>", HASH))
    info = f"<info xmlns='{METADATA}' bytes='{len(IMAGE)}' id='{HASH}' type='image/png'/>"
    await pubsub(alice, publish(METADATA, f"<metadata xmlns='{METADATA}'>{info}</metadata>", HASH))
    assert await photo_in_presence(alice, carol) == HASH  # XEP-0398 §4: the PEP avatar's id
    got = await bob.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost")
    same_xml(got[0], f"<vCard xmlns='{VCARD}'>{PHOTO}</vCard>")
    # carol is no contact: the nodes keep her out, so does the vCard
    refused = await carol.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost", id="c")
    assert stanza_error(refused) == ("cancel", "item-not-found", None)
    # an avatar at a URL (XEP-0084 §4.2.1) is the vCard's EXTVAL
    url = f"<info bytes='9' id='{'e' * 40}' type='image/gif' url='https://example.com/a.gif'/>"
    await pubsub(
        alice, publish(METADATA, f"<metadata xmlns='{METADATA}'>{url}</metadata>", "e" * 40)
    )
    got = await bob.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost", id="u")
    same_xml(
        got[0],
        f"<vCard xmlns='{VCARD}'><PHOTO><TYPE>image/gif</TYPE>"
        "<EXTVAL>https://example.com/a.gif</EXTVAL></PHOTO></vCard>",
    )
    refused = await carol.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost", id="c2")
    assert stanza_error(refused) == ("cancel", "item-not-found", None)  # not even its URL
    assert await photo_in_presence(alice, carol) == "e" * 40


async def test_an_old_vcard_photo_moves_to_pep(srv: TestServer) -> None:
    vcards = srv.server.hosts["localhost"].modules["vcard"].api
    old = f"<vCard xmlns='{VCARD}'><NICKNAME>al</NICKNAME>{PHOTO}</vCard>"
    await vcards.store("alice", etree.fromstring(old))  # as set before vcard_legacy was on
    alice, carol = await client(srv, "alice"), await client(srv, "carol")
    assert await avatar_items(carol, METADATA) != []
    assert (await vcards.get("alice")).find(f"{{{VCARD}}}PHOTO") is None
    got = await carol.iq(f"<vCard xmlns='{VCARD}'/>", to="alice@localhost")
    same_xml(got[0], old)
    assert await photo_in_presence(alice, carol) == HASH


async def test_vcard4(srv: TestServer) -> None:
    alice, bob, carol = (
        await client(srv, "alice"),
        await client(srv, "bob"),
        await client(srv, "carol"),
    )
    info = await alice.iq(f"<query xmlns='{INFO}'/>", to="alice@localhost")
    assert VCARD4 in {f.get("var") for f in info.iter(f"{{{INFO}}}feature")}
    none = await bob.iq(f"<vcard xmlns='{VCARD4}'/>", to="alice@localhost")
    assert stanza_error(none) == ("cancel", "item-not-found", None)
    card = (
        f"<vcard xmlns='{VCARD4}'><fn><text>Alice</text></fn><note><text>hi</text></note></vcard>"
    )
    same_xml(await alice.iq(card, type="set", id="s"), "<iq type='result' to='alice@localhost/r'/>")
    for reader, to in ((alice, None), (alice, "alice@localhost"), (bob, "alice@localhost")):
        got = await reader.iq(f"<vcard xmlns='{VCARD4}'/>", to=to, id="g")
        same_xml(got[0], card)
    # PEP's default access model: presence; carol is no contact
    assert stanza_error(
        await carol.iq(f"<vcard xmlns='{VCARD4}'/>", to="alice@localhost", id="c")
    ) == (
        "auth",
        "forbidden",
        None,
    )
    # it is the PEP node of XEP-0292
    items = await pubsub(bob, "<items node='urn:xmpp:vcard4'/>", type="get", to="alice@localhost")
    assert [i.get("id") for i in items.iter(f"{{{NS}}}item")] == ["current"]
    for to in ("nobody@localhost", "carol@localhost"):
        missing = await bob.iq(f"<vcard xmlns='{VCARD4}'/>", to=to, id="m")
        assert stanza_error(missing) == ("cancel", "item-not-found", None)
    other = await bob.iq(card, type="set", to="alice@localhost", id="o")
    assert stanza_error(other) == ("cancel", "service-unavailable", None)
