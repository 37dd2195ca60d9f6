"""Message Archive Management (XEP-0313) over real sockets: what is archived, stanza-ids,
queries, RSM paging and its boundaries, preferences, offline messages, expiry and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.stored import stored
from tests.xmpp import RawClient, login, same_xml, stanza_error, until_pong

NS = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
SID = "urn:xmpp:sid:0"
FWD = "urn:xmpp:forward:0"
Server = Callable[..., AbstractAsyncContextManager[TestServer]]


@pytest.fixture
def mam(tmp_path: Path) -> Server:
    def start(**options: Any) -> AbstractAsyncContextManager[TestServer]:
        return _server(tmp_path, options)

    return start


async def _server_gen(tmp_path: Path, options: dict[str, Any]) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=["disco", "ping", "mam"], options=options) as srv:
        for name, password in PASSWORDS.items():
            await srv.create_user(name, password)
        yield srv


def _server(tmp_path: Path, options: dict[str, Any]) -> AbstractAsyncContextManager[TestServer]:
    from contextlib import asynccontextmanager

    return asynccontextmanager(_server_gen)(tmp_path, options)


async def online(srv: TestServer, user: str, resource: str = "r") -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, user, PASSWORDS[user], resource)
    await client.send("<presence/>")
    await client.expect("presence")
    return client


async def chat(client: RawClient, to: str, ids: list[str], extra: str = "") -> None:
    for i in ids:
        await client.send(
            f"<message to='{to}' type='chat' id='{i}'><body>{i}</body>{extra}</message>"
        )
    await until_pong(client)


async def query(
    client: RawClient, inner: str = "", qid: str = "q", to: str | None = None
) -> tuple[list[etree._Element], etree._Element]:
    """(result messages, the IQ reply) of an archive query."""
    to_attr = f" to='{to}'" if to else ""
    body = f"<query xmlns='{NS}' queryid='{qid}'>{inner}</query>"
    await client.send(f"<iq type='set' id='{qid}'{to_attr}>{body}</iq>")
    results = []
    while True:
        el = await client.next()
        if el.tag == "iq" and el.get("id") == qid:
            return results, el
        if el.find(f"{{{NS}}}result") is not None:
            results.append(el)


def ids_of(results: list[etree._Element]) -> list[str | None]:
    """The original ids of the archived messages, in the order received."""
    return [
        r.find(f"{{{NS}}}result/{{{FWD}}}forwarded/{{jabber:client}}message").get("id")
        for r in results
    ]  # type: ignore[union-attr]


def archive_ids(results: list[etree._Element]) -> list[str]:
    return [r.find(f"{{{NS}}}result").get("id", "") for r in results]  # type: ignore[union-attr]


def rsm(fin_iq: etree._Element) -> tuple[str | None, str | None, str | None, str | None]:
    """(complete, first, last, count) of a <fin/>."""
    fin = fin_iq.find(f"{{{NS}}}fin")
    assert fin is not None, etree.tostring(fin_iq)
    return (
        fin.get("complete"),
        fin.findtext(f"{{{RSM}}}set/{{{RSM}}}first"),
        fin.findtext(f"{{{RSM}}}set/{{{RSM}}}last"),
        fin.findtext(f"{{{RSM}}}set/{{{RSM}}}count"),
    )


def rsm_set(**parts: str) -> str:
    inner = "".join(f"<{k}>{v}</{k}>" if v else f"<{k}/>" for k, v in parts.items())
    return f"<set xmlns='{RSM}'>{inner}</set>"


def form(**fields: str | list[str]) -> str:
    body = f"<field var='FORM_TYPE' type='hidden'><value>{NS}</value></field>"
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        body += (
            f"<field var='{var.strip('_').replace('_', '-')}'>"
            + "".join(f"<value>{v}</value>" for v in values)
            + "</field>"
        )
    return f"<x xmlns='jabber:x:data' type='submit'>{body}</x>"


async def test_form_prefs_empty_archive_and_disco(mam: Server) -> None:
    async with mam() as srv:
        alice = await online(srv, "alice")
        reply = await alice.iq(f"<query xmlns='{NS}'/>", id="f")
        validate = (
            "<validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:dateTime'/>"
        )
        same_xml(  # Prosody 0.12.3's form, field for field
            reply[0],
            f"<query xmlns='{NS}'><x xmlns='jabber:x:data' type='form'>"
            f"<field type='hidden' var='FORM_TYPE'><value>{NS}</value></field>"
            "<field type='jid-single' var='with'/>"
            f"<field type='text-single' var='start'>{validate}</field>"
            f"<field type='text-single' var='end'>{validate}</field>"
            "<field type='text-single' var='before-id'/><field type='text-single' var='after-id'/>"
            "<field type='list-multi' var='ids'/></x></query>",
        )
        reply = await alice.iq(f"<prefs xmlns='{NS}'/>", id="p")
        same_xml(reply[0], f"<prefs xmlns='{NS}' default='always'><always/><never/></prefs>")
        results, fin = await query(alice)
        same_xml(
            fin,
            f"<iq type='result' id='q' to='alice@localhost/r'><fin xmlns='{NS}' complete='true'>"
            f"<set xmlns='{RSM}'><count>0</count></set></fin></iq>",
        )
        assert results == []
        info = await alice.iq(
            "<query xmlns='http://jabber.org/protocol/disco#info'/>", to="alice@localhost"
        )
        features = {f.get("var") for f in info.iter("{*}feature")}
        assert {NS, f"{NS}#extended", SID} <= features
        meta = await alice.iq(f"<metadata xmlns='{NS}'/>")
        same_xml(meta[0], f"<metadata xmlns='{NS}'/>")
        # another user's archive is not served
        _, fin = await query(alice, to="bob@localhost")
        assert stanza_error(fin)[1] == "service-unavailable"


async def test_archived_both_ways_with_stanza_ids(mam: Server) -> None:
    async with mam() as srv:
        alice = await online(srv, "alice", "phone")
        bob = await online(srv, "bob", "laptop")
        fake = f"<stanza-id xmlns='{SID}' by='alice@localhost' id='fake'/>"
        await chat(alice, "bob@localhost", ["m1"], fake)
        got = await bob.expect("message")
        sids = got.findall(f"{{{SID}}}stanza-id")
        assert [s.get("by") for s in sids] == ["bob@localhost"]  # bob's archive, not alice's
        await chat(bob, "alice@localhost", ["m2"], fake)
        got = await alice.expect("message")
        sids = got.findall(f"{{{SID}}}stanza-id")
        assert [(s.get("by"), s.get("id") != "fake") for s in sids] == [("alice@localhost", True)]
        results, fin = await query(alice)
        assert ids_of(results) == ["m1", "m2"]
        assert archive_ids(results)[1] == sids[0].get("id")
        stamp = results[0].find(f".//{{{FWD}}}forwarded/{{urn:xmpp:delay}}delay").get("stamp")  # type: ignore[union-attr]
        same_xml(
            results[0],
            f"<message to='alice@localhost/phone'><result xmlns='{NS}' queryid='q'>"
            f"<forwarded xmlns='{FWD}'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>"
            "<message xmlns='jabber:client' to='bob@localhost' type='chat' "
            "from='alice@localhost/phone' xml:lang='en'><body>m1</body></message>"
            "</forwarded></result></message>",
        )
        first, last = archive_ids(results)
        assert rsm(fin) == ("true", first, last, "2")


async def test_what_is_archived(mam: Server) -> None:
    async with mam() as srv:
        alice = await online(srv, "alice")
        await online(srv, "bob")
        hints = "urn:xmpp:hints"
        states = "http://jabber.org/protocol/chatstates"
        gone = "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        for attrs, payload in [
            ("type='chat' id='chat'", "<body>x</body>"),
            ("id='normal'", "<body>x</body>"),
            ("type='headline' id='headline'", "<body>x</body>"),
            ("type='chat' id='nostore'", f"<body>x</body><no-store xmlns='{hints}'/>"),
            ("type='chat' id='noperm'", f"<body>x</body><no-permanent-store xmlns='{hints}'/>"),
            ("type='chat' id='store'", f"<store xmlns='{hints}'/>"),
            ("type='chat' id='state'", f"<active xmlns='{states}'/>"),
            ("type='chat' id='both'", f"<body>x</body><active xmlns='{states}'/>"),
            ("type='chat' id='receipt'", "<received xmlns='urn:xmpp:receipts' id='chat'/>"),
            ("type='error' id='err'", f"<error type='cancel'>{gone}</error>"),
            ("type='groupchat' id='gc'", "<body>x</body>"),
        ]:
            to = "bob@localhost/r" if "error" in attrs else "bob@localhost"
            await alice.send(f"<message to='{to}' {attrs}>{payload}</message>")
        await until_pong(alice)
        results, _ = await query(alice)
        assert ids_of(results) == ["chat", "normal", "store", "both", "receipt"]
        stored = results[3].find(f".//{{{FWD}}}forwarded/{{jabber:client}}message")
        assert stored is not None and [c.tag for c in stored] == ["{jabber:client}body"]


async def test_rsm_paging_and_boundaries(mam: Server) -> None:
    async with mam(max_archive_query_results=3) as srv:
        alice = await online(srv, "alice")
        await chat(alice, "bob@localhost", [f"m{i}" for i in range(5)])
        every, fin = await query(alice)  # three at most: the rest on the next page
        rest, _ = await query(alice, rsm_set(after=rsm(fin)[2] or ""))
        every += rest
        aid = dict(zip(ids_of(every), archive_ids(every), strict=True))
        assert list(aid) == [f"m{i}" for i in range(5)]
        # forwards, two at a time
        page, fin = await query(alice, rsm_set(max="2"))
        assert (ids_of(page), rsm(fin)) == (["m0", "m1"], (None, aid["m0"], aid["m1"], "5"))
        page, fin = await query(alice, rsm_set(max="2", after=aid["m1"]))
        assert (ids_of(page), rsm(fin)) == (["m2", "m3"], (None, aid["m2"], aid["m3"], "5"))
        page, fin = await query(alice, rsm_set(max="2", after=aid["m3"]))
        assert (ids_of(page), rsm(fin)) == (["m4"], ("true", aid["m4"], aid["m4"], "5"))
        page, fin = await query(alice, rsm_set(max="2", after=aid["m4"]))
        assert (ids_of(page), rsm(fin)) == ([], ("true", None, None, "5"))
        # backwards from the end: pages in chronological order
        page, fin = await query(alice, rsm_set(max="2", before=""))
        assert (ids_of(page), rsm(fin)) == (["m3", "m4"], (None, aid["m3"], aid["m4"], "5"))
        page, fin = await query(alice, rsm_set(max="2", before=aid["m3"]))
        assert (ids_of(page), rsm(fin)) == (["m1", "m2"], (None, aid["m1"], aid["m2"], "5"))
        page, fin = await query(alice, rsm_set(max="2", before=aid["m1"]))
        assert (ids_of(page), rsm(fin)) == (["m0"], ("true", aid["m0"], aid["m0"], "5"))
        # flip-page: the last page newest first
        page, _ = await query(alice, rsm_set(max="2", before="") + f"<flip-page xmlns='{NS}'/>")
        assert ids_of(page) == ["m4", "m3"]
        # the server's limit; max 0 counts only
        page, fin = await query(alice, rsm_set(max="100"))
        assert (ids_of(page), rsm(fin)[0]) == (["m0", "m1", "m2"], None)
        page, fin = await query(alice, rsm_set(max="0"))
        assert (page, rsm(fin)[3]) == ([], "5")
        # unknown ids, bad max
        for bad in (rsm_set(after="nope"), rsm_set(before="nope"), form(after_id="nope")):
            _, error = await query(alice, bad)
            assert stanza_error(error) == ("cancel", "item-not-found", None)
        _, error = await query(alice, rsm_set(max="-1"))
        assert stanza_error(error) == ("modify", "bad-request", "Invalid RSM max")
        # another user's id is unknown here
        bob = await online(srv, "bob")
        await chat(bob, "carol@localhost", ["b0"])
        bobs, _ = await query(bob)
        _, error = await query(alice, rsm_set(after=archive_ids(bobs)[0]))
        assert stanza_error(error)[1] == "item-not-found"


async def test_filters_and_form_errors(mam: Server) -> None:
    async with mam(c2s_idle_timeout=0) as srv:  # the clock moves by hours
        srv.clock.freeze()
        srv.clock.set_time(1_800_000_000)  # 2027-01-15T08:00:00Z
        alice = await online(srv, "alice")
        await chat(alice, "bob@localhost", ["b0"])
        srv.clock.advance(3600)
        await chat(alice, "carol@localhost/x", ["c0"])
        srv.clock.advance(3600)
        await chat(alice, "bob@localhost", ["b1"])
        every, _ = await query(alice)
        aid = dict(zip(ids_of(every), archive_ids(every), strict=True))
        cases: list[tuple[str, list[str]]] = [
            (form(with_="Bob@LocalHost/any"), ["b0", "b1"]),
            (form(with_="carol@localhost"), ["c0"]),
            (form(start="2027-01-15T09:00:00Z"), ["c0", "b1"]),
            (form(end="2027-01-15T09:00:00Z"), ["b0", "c0"]),
            (form(start="2027-01-15T10:00:00+01:00", end="2027-01-15T09:30:00.5Z"), ["c0"]),
            (form(after_id=aid["b0"]), ["c0", "b1"]),
            (form(before_id=aid["b1"]), ["b0", "c0"]),
            (form(ids=[aid["b1"], aid["b0"]]), ["b0", "b1"]),
            (form(with_="bob@localhost") + rsm_set(max="1", before=""), ["b1"]),
        ]
        for inner, expected in cases:
            results, fin = await query(alice, inner)
            assert ids_of(results) == expected, inner
            assert rsm(fin)[0] == ("true" if "max" not in inner else None)
        for inner, text in [
            (form(start="yesterday"), "invalid timestamp"),
            (form(with_="a@b@c"), "Invalid JID: a@b@c"),
            (
                form().replace(NS, "urn:xmpp:mam:1"),
                "Unexpected FORM_TYPE, expected 'urn:xmpp:mam:2'",
            ),
        ]:
            _, error = await query(alice, inner)
            assert stanza_error(error) == ("modify", "bad-request", text)


async def test_preferences(mam: Server) -> None:
    async with mam() as srv:
        alice = await online(srv, "alice")
        reply = await alice.iq(
            f"<prefs xmlns='{NS}' default='never'><always><jid>Bob@LocalHost</jid>"
            "<jid>bad@@x</jid></always><never><jid>carol@localhost</jid></never></prefs>",
            type="set",
        )
        same_xml(
            reply[0],
            f"<prefs xmlns='{NS}' default='never'><always><jid>bob@localhost</jid></always>"
            "<never><jid>carol@localhost</jid></never></prefs>",
        )
        await chat(alice, "bob@localhost", ["to-bob"])
        await chat(alice, "carol@localhost", ["to-carol"])
        await chat(alice, "dave@localhost", ["to-dave"])
        results, _ = await query(alice)
        assert ids_of(results) == ["to-bob"]
        # roster: only contacts in the roster
        await srv.server.hosts["localhost"].rosters.save(
            "localhost", "alice", RosterItem("dave@localhost")
        )
        await alice.iq(f"<prefs xmlns='{NS}' default='roster'/>", type="set")
        await chat(alice, "dave@localhost", ["dave2"])
        await chat(alice, "erin@localhost", ["erin"])
        results, _ = await query(alice)
        assert ids_of(results) == ["to-bob", "dave2"]
        reply = await alice.iq(f"<prefs xmlns='{NS}' default='sometimes'/>", type="set")
        assert stanza_error(reply)[:2] == ("modify", "bad-request")
        # kept across logins
        other = await online(srv, "alice", "other")
        reply = await other.iq(f"<prefs xmlns='{NS}'/>")
        assert reply[0].get("default") == "roster"


async def test_offline_messages_through_mam(mam: Server) -> None:
    async with mam() as srv:
        bob = await online(srv, "bob")
        await chat(bob, "alice@localhost", ["off1", "off2"])  # alice is offline
        # a client that syncs with MAM before its presence: no offline flood after it
        synced, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "a")
        results, _ = await query(synced)
        assert ids_of(results) == ["off1", "off2"]
        await synced.send("<presence/>")
        got = await until_pong(synced)
        assert [el.tag for el in got] == ["presence"]
        # a client without MAM gets them offline, stamped with their archive ids
        plain, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "b")
        await plain.send("<presence/>")
        messages = [el for el in await until_pong(plain) if el.tag == "message"]
        assert [m.get("id") for m in messages] == ["off1", "off2"]
        sid = messages[0].find(f"{{{SID}}}stanza-id")
        assert sid is not None and sid.get("id") == archive_ids(results)[0]


async def test_expiry_and_limits(mam: Server) -> None:
    async with mam(
        archive_expires_after="2d", storage_archive_item_limit=10, c2s_idle_timeout=0
    ) as srv:
        srv.clock.freeze()
        alice = await online(srv, "alice")
        await chat(alice, "bob@localhost", [f"old{i}" for i in range(3)])
        srv.clock.advance(86400 * 1.5)
        await chat(alice, "bob@localhost", ["new"])
        srv.clock.advance(86400 * 1.6)  # the daily expiry has run: "old*" were 2 days old
        store = srv.server.hosts["localhost"].modules["mam"].api.store
        for _ in range(500):  # bounded: the expiry runs as a task of its own
            if await store.count("alice") == 1:
                break
            await asyncio.sleep(0.01)
        results, _ = await query(alice)
        assert ids_of(results) == ["new"]
        # over the item limit: the oldest go, to 99% of it
        await chat(alice, "bob@localhost", [f"n{i}" for i in range(12)])
        results, fin = await query(alice, rsm_set(max="50"))
        assert len(results) <= 10 and ids_of(results)[-1] == "n11"
        assert "new" not in ids_of(results) and rsm(fin)[3] == str(len(results))


@pytest.mark.parametrize("policy", ["forever", "1x"])
async def test_bad_expiry_stops_start(tmp_path: Path, policy: str) -> None:
    from minixmpp.errors import ModuleError

    with pytest.raises(ModuleError, match="archive_expires_after"):
        async with running_server(
            tmp_path, modules=["mam"], options={"archive_expires_after": policy}
        ):
            pass


async def test_archive_max_bytes_keeps_the_newest(mam: Server) -> None:
    # each archived copy of these messages is about 560 bytes: 10 of them pass 4000 bytes
    async with mam(archive_max_bytes=4000) as srv:
        alice, bob = await online(srv, "alice"), await online(srv, "bob")
        body = "x" * 500
        await chat(alice, "bob@localhost", [f"m{i}" for i in range(10)], extra=f"<b>{body}</b>")
        await until_pong(bob)
        for user in ("alice", "bob"):
            rows, size = await stored(srv, user, "archive")
            assert 0 < size <= 4000 and rows < 10, (user, rows, size)
        results, fin = await query(alice, rsm_set(max="50"))
        kept = ids_of(results)
        assert kept == [f"m{i}" for i in range(10 - len(kept), 10)]  # the oldest went first
        assert rsm(fin)[0] == "true" and len(kept) == rows
        assert await until_pong(alice) == []  # the archive's owner is still served


async def test_a_flooding_client_has_a_bounded_archive(mam: Server) -> None:
    """A client that archives as fast as it can: both its archive and its contact's stay
    within the limits, counted in the database, and another user is served meanwhile."""
    limits = {"storage_archive_item_limit": 40, "archive_max_bytes": 30_000}
    async with mam(**limits) as srv:
        alice, bob, carol = [await online(srv, u) for u in ("alice", "bob", "carol")]
        # small messages: the item limit binds; then large ones: the byte limit binds
        for start, body in ((0, "s"), (100, "y" * 1500), (200, "y" * 1500)):
            for first in range(start, start + 100, 50):
                batch = [f"f{i}" for i in range(first, first + 50)]
                await chat(alice, "bob@localhost", batch, extra=f"<b>{body}</b>")
                assert await until_pong(carol) == []  # carol's round trip is not starved
            await until_pong(bob)
            for user in ("alice", "bob"):
                rows, size = await stored(srv, user, "archive")
                assert 0 < rows <= 40 and size <= 30_000, (user, rows, size)
        assert await stored(srv, "carol", "archive") == (0, 0)
        results, _ = await query(alice, rsm_set(max="50"))
        assert ids_of(results)[-1] == "f299"
