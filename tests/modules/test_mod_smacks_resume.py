"""Stream Management (XEP-0198) resumption over real sockets: hibernation after a dropped
connection, <resume/> and its failures, what becomes of unacknowledged stanzas when a session
ends unresumed (offline storage or a bounce, never lost), the limits, and the API that Bind 2
and SASL2 use for inline enabling and resumption."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.roster import RosterItem
from minixmpp.session import C2SSession, Session
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.modules.test_mod_smacks import (
    MODULES,
    SM,
    authenticated,
    enabled,
    start,
    tags,
)
from tests.xmpp import (
    NS_STANZAS,
    RawClient,
    login,
    same_xml,
    stanza_error,
    until_pong,
    wait_until,
)

DELAY = "{urn:xmpp:delay}delay"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with start(tmp_path) as srv:
        yield srv


def session_of(srv: TestServer, jid: str) -> C2SSession:
    session = srv.server.hosts["localhost"].sessions.get(jid)
    assert isinstance(session, C2SSession), jid
    return session


async def drop(srv: TestServer, client: RawClient, jid: str) -> C2SSession:
    """The client's connection drops (no stream close); wait until its session hibernates."""
    session = session_of(srv, jid)
    client.writer.transport.abort()
    await wait_until(
        lambda: session.state == "hibernating" and session.data["smacks"].held, "hibernation"
    )
    return session


async def resume(
    srv: TestServer, user: str, previd: str, h: int | str
) -> tuple[RawClient, etree._Element]:
    """A new connection of ``user`` asks to resume ``previd``: (client, the answer)."""
    client, features = await authenticated(srv, user)
    assert features.find(f"{{{SM}}}sm") is not None
    await client.send(f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>")
    return client, await client.next()


def chat(to: str, id: str, kind: str = "chat") -> str:
    return f"<message to='{to}' type='{kind}' id='{id}'><body>{id}</body></message>"


async def send_all(client: RawClient, *stanzas: str) -> None:
    """Send, and wait until the server has handled them (a ping round trip)."""
    for stanza in stanzas:
        await client.send(stanza)
    await until_pong(client, "sent")


def summary(elements: list[etree._Element]) -> list[tuple[str, str | None, str | None]]:
    """(tag, id, who the <delay/> is from) of each element."""
    out = []
    for el in elements:
        delay = el.find(DELAY)
        out.append(
            (etree.QName(el).localname, el.get("id"), None if delay is None else delay.get("from"))
        )
    return out


async def until_r(client: RawClient) -> list[etree._Element]:
    """Everything up to the server's <r/> (which ends a resumption's resending)."""
    got = []
    while (el := await client.next()).tag != f"{{{SM}}}r":
        got.append(el)
    return got


# -- resumption -----------------------------------------------------------------------------


async def test_a_dropped_session_is_resumed_with_what_it_missed(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await send_all(bob, chat(jid, "m1"))
    assert (await alice.next()).get("id") == "m1"  # handled: h = 1
    session = await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m2"), chat(jid, "m3", "normal"))
    again, reply = await resume(server, "alice", sm.get("id", ""), 1)
    same_xml(reply, f"<resumed xmlns='{SM}' h='0' previd='{sm.get('id')}'/>")
    assert summary(await until_r(again)) == [
        ("message", "m2", "alice@localhost"),  # queued while hibernating, stamped
        ("message", "m3", "alice@localhost"),
    ]
    assert session_of(server, jid) is session and session.state == "bound"
    await again.send(f"<a xmlns='{SM}' h='3'/>")
    pong = await again.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert (pong.get("type"), pong.get("to")) == ("result", jid)  # the same session
    await send_all(bob, chat(jid, "m4"))
    assert (await again.expect("message")).get("id") == "m4"
    await again.send(f"<r xmlns='{SM}'/>")
    assert (await again.expect(f"{{{SM}}}a")).get("h") == "1"  # the ping: counting goes on


async def test_what_the_client_did_not_count_is_sent_again(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await send_all(bob, chat(jid, "m1"))
    assert (await alice.next()).get("id") == "m1"
    await drop(server, alice, jid)
    again, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}resumed"
    assert summary(await until_r(again)) == [("message", "m1", "alice@localhost")]


async def test_resuming_a_connected_session_closes_its_old_connection(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await send_all(bob, chat(jid, "m1"))
    again, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}resumed"
    assert await alice.stream_error() == ("conflict", "Replaced by new connection")
    assert summary(await until_r(again)) == [("message", "m1", "alice@localhost")]
    await send_all(bob, chat(jid, "m2"))
    assert (await again.expect("message")).get("id") == "m2"


async def test_another_users_session_is_not_found(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    await drop(server, alice, jid)
    intruder, reply = await resume(server, "bob", sm.get("id", ""), 0)
    same_xml(reply, f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>")
    assert await intruder.bind("r") == "bob@localhost/r"  # the stream goes on
    assert session_of(server, jid).state == "hibernating"
    _, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}resumed"


@pytest.mark.parametrize(
    ("attributes", "condition"),
    [
        ("previd='no-such-session' h='0'", "item-not-found"),
        ("h='0'", "bad-request"),
        ("previd='{id}'", "bad-request"),
        ("previd='{id}' h='x'", "bad-request"),
    ],
)
async def test_resume_failures(server: TestServer, attributes: str, condition: str) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    await drop(server, alice, jid)
    client, _ = await authenticated(server, "alice")
    await client.send(f"<resume xmlns='{SM}' {attributes.format(id=sm.get('id'))}/>")
    same_xml(
        await client.next(), f"<failed xmlns='{SM}'><{condition} xmlns='{NS_STANZAS}'/></failed>"
    )
    assert session_of(server, jid).state == "hibernating"  # untouched


async def test_resume_after_binding_is_unexpected(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    await drop(server, alice, jid)
    client, _ = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "new")
    await client.send(f"<resume xmlns='{SM}' previd='{sm.get('id')}' h='0'/>")
    same_xml(
        await client.next(),
        f"<failed xmlns='{SM}'><unexpected-request xmlns='{NS_STANZAS}'/></failed>",
    )


async def test_resume_before_authentication_finds_nothing(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    await drop(server, alice, jid)
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    await client.send(f"<resume xmlns='{SM}' previd='{sm.get('id')}' h='0'/>")
    same_xml(
        await client.next(), f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>"
    )
    assert session_of(server, jid).state == "hibernating"


async def test_a_wrong_count_fails_and_ends_the_old_session_without_loss(
    server: TestServer,
) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    await alice.send("<presence/>")
    await alice.expect("presence")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    old = await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m1"))
    client, reply = await resume(server, "alice", sm.get("id", ""), 5)  # only 1 was sent
    same_xml(
        reply,
        f"<failed xmlns='{SM}' h='1'><undefined-condition xmlns='{NS_STANZAS}'/>"
        f"<text xmlns='{NS_STANZAS}'>Client acknowledged more stanzas than sent by server</text>"
        "</failed>",
    )
    await old.unbound()  # the old session ended: m1, unacknowledged, went offline
    assert await client.bind("laptop") == "alice@localhost/laptop"  # the stream goes on
    await client.send("<presence/>")
    message = await client.expect("message")
    assert (message.get("id"), message.find(DELAY) is not None) == ("m1", True)
    _, reply = await resume(server, "alice", sm.get("id", ""), 0)  # expired: h remembered
    same_xml(reply, f"<failed xmlns='{SM}' h='1'><item-not-found xmlns='{NS_STANZAS}'/></failed>")
    _, reply = await resume(server, "alice", sm.get("id", ""), 0)  # told once, then forgotten
    same_xml(reply, f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>")


async def test_a_wrong_count_leaves_a_connected_session_alone(server: TestServer) -> None:
    alice, jid, sm = await enabled(server, "alice", "phone")
    _, reply = await resume(server, "alice", sm.get("id", ""), 7)
    assert reply.tag == f"{{{SM}}}failed" and reply.get("h") == "0"
    assert tags(await until_pong(alice)) == []  # still connected, still counting
    assert session_of(server, jid).state == "bound"


# -- hibernation's end ----------------------------------------------------------------------


async def friends(srv: TestServer) -> None:
    rosters = srv.server.rosters
    await rosters.save("localhost", "alice", RosterItem("bob@localhost", subscription="both"))
    await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription="both"))


async def test_an_expired_session_goes_offline_and_its_messages_are_stored(
    server: TestServer,
) -> None:
    await friends(server)
    server.clock.freeze()
    alice, jid, sm = await enabled(server, "alice", "phone")
    await alice.send("<presence/>")
    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await bob.send("<presence/>")
    await bob.expect_where("presence", from_=jid)
    old = await drop(server, alice, jid)
    archived = "<result xmlns='urn:xmpp:mam:2' id='x'/>"  # an archive's answer: asked again
    await send_all(
        bob,
        chat(jid, "m1"),
        f"<message to='{jid}' id='mam'>{archived}<body>old</body></message>",
        chat(jid, "m2", "normal"),
        f"<iq type='get' id='v1' to='{jid}'><query xmlns='jabber:iq:version'/></iq>",
    )
    server.clock.advance(599)
    assert old.state == "hibernating"
    server.clock.advance(1)  # smacks_hibernation_time (600 s) is over
    unavailable = await bob.expect_where("presence", from_=jid)
    assert unavailable.get("type") == "unavailable"
    bounce = await bob.expect_where("iq", id="v1")  # the request is answered, not lost
    assert (bounce.get("type"), bounce.get("from")) == ("error", jid)
    assert stanza_error(bounce)[:2] == ("cancel", "recipient-unavailable")
    await old.unbound()
    client, _ = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "new")
    await client.send("<presence/>")
    stored = [el for el in await until_pong(client) if el.tag == "message"]
    assert [m.get("id") for m in stored] == ["m1", "m2"]  # not the archive's answer
    assert all(m.find(DELAY).get("from") == "alice@localhost" for m in stored)  # type: ignore[union-attr]
    _, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}failed" and reply.get("h") == "1"  # alice's presence
    assert reply[0].tag == f"{{{NS_STANZAS}}}item-not-found"
    assert bob_jid  # bob got no error for m1 and m2: checked by the ping below
    assert all(el.get("type") != "error" for el in await until_pong(bob, "done"))


async def test_with_another_resource_online_unacknowledged_messages_bounce(
    server: TestServer,
) -> None:
    """Prosody's rule: offline storage only when the ending session was the user's last."""
    server.clock.freeze()
    alice, jid, _ = await enabled(server, "alice", "phone")
    desk, _ = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "desk")
    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    old = await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m1"))
    server.clock.advance(600)
    bounce = await bob.expect_where("message", id="m1")
    assert (bounce.get("type"), bounce.get("from"), bounce.get("to")) == ("error", jid, bob_jid)
    assert stanza_error(bounce)[:2] == ("cancel", "recipient-unavailable")
    await old.unbound()
    assert tags(await until_pong(desk)) == []  # not given to the other resource


async def test_the_queue_limit_ends_a_connected_session_and_loses_nothing(tmp_path: Path) -> None:
    async with start(tmp_path, smacks_max_queue_size=3, smacks_max_unacked_stanzas=10) as srv:
        alice, jid, _ = await enabled(srv, "alice", "phone")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        old = session_of(srv, jid)
        await send_all(bob, *(chat(jid, f"m{i}") for i in range(1, 5)))
        assert [(await alice.next()).get("id") for _ in range(3)] == ["m1", "m2", "m3"]
        assert await alice.stream_error() == (
            "resource-constraint",
            "Too many unacked stanzas remaining, session can't be resumed",
        )
        await old.unbound()
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "new")
        await client.send("<presence/>")
        got = [(await client.expect("message")).get("id") for _ in range(4)]
        assert got == ["m1", "m2", "m3", "m4"]  # unacknowledged: stored, none lost


@pytest.mark.parametrize(
    "limit", [{"smacks_max_queue_size": 2}, {"smacks_max_queue_bytes": 300}]
)  # three messages of about 120 bytes each
async def test_the_queue_limit_ends_a_hibernating_session(
    tmp_path: Path, limit: dict[str, int]
) -> None:
    async with start(tmp_path, **limit) as srv:
        alice, jid, sm = await enabled(srv, "alice", "phone")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        old = await drop(srv, alice, jid)
        await send_all(bob, chat(jid, "m1"), chat(jid, "m2"), chat(jid, "m3"))
        await old.unbound()
        _, reply = await resume(srv, "alice", sm.get("id", ""), 0)
        assert reply.tag == f"{{{SM}}}failed" and reply.get("h") == "0"
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "new")
        await client.send("<presence/>")
        assert [(await client.expect("message")).get("id") for _ in range(3)] == [
            "m1",
            "m2",
            "m3",
        ]


async def test_too_many_hibernating_sessions_end_the_oldest(tmp_path: Path) -> None:
    async with start(tmp_path, smacks_max_hibernated_sessions=1) as srv:
        phone, phone_jid, phone_sm = await enabled(srv, "alice", "phone")
        tablet, tablet_jid, tablet_sm = await enabled(srv, "alice", "tablet")
        old = await drop(srv, phone, phone_jid)
        await drop(srv, tablet, tablet_jid)
        await old.unbound()  # the phone's ended
        _, reply = await resume(srv, "alice", phone_sm.get("id", ""), 0)
        same_xml(
            reply, f"<failed xmlns='{SM}' h='0'><item-not-found xmlns='{NS_STANZAS}'/></failed>"
        )
        _, reply = await resume(srv, "alice", tablet_sm.get("id", ""), 0)
        assert reply.tag == f"{{{SM}}}resumed"


async def test_only_smacks_max_old_sessions_counters_are_kept(tmp_path: Path) -> None:
    async with start(tmp_path, smacks_max_old_sessions=1) as srv:
        srv.clock.freeze()
        ids = []
        for resource in ("phone", "tablet"):
            client, jid, sm = await enabled(srv, "alice", resource)
            old = await drop(srv, client, jid)
            srv.clock.advance(600)
            await old.unbound()
            ids.append(sm.get("id", ""))
        _, reply = await resume(srv, "alice", ids[0], 0)
        assert reply.tag == f"{{{SM}}}failed" and reply.get("h") is None  # forgotten
        _, reply = await resume(srv, "alice", ids[1], 0)
        assert reply.tag == f"{{{SM}}}failed" and reply.get("h") == "0"


async def test_a_resumed_client_is_active_again(server: TestServer) -> None:
    """XEP-0352: a new connection starts active; what the inactive client's server held
    comes after what is resent."""
    alice, jid, sm = await enabled(server, "alice", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
    old = await drop(server, alice, jid)
    composing = (
        f"<message to='{jid}' type='chat' id='typing'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    await send_all(bob, composing, chat(jid, "m1"))  # the chat state is held, m1 is urgent
    await send_all(bob, composing.replace("typing", "typing2"))  # held (CSI), not queued
    assert old.data["csi"].inactive
    again, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}resumed"
    assert [el.get("id") for el in await until_r(again)] == ["typing", "m1", "typing2"]
    assert not old.data["csi"].inactive


async def test_a_restart_remembers_resumable_sessions(tmp_path: Path) -> None:
    async with start(tmp_path) as srv:
        alice, jid, sm = await enabled(srv, "alice", "phone")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        await drop(srv, alice, jid)
        await send_all(bob, chat(jid, "m1"))
        await srv.stop()  # the hibernating session ends: m1 is stored, its count remembered
    async with running_server(tmp_path, modules=MODULES) as srv:  # the same data folder
        _, reply = await resume(srv, "alice", sm.get("id", ""), 0)
        same_xml(
            reply, f"<failed xmlns='{SM}' h='0'><item-not-found xmlns='{NS_STANZAS}'/></failed>"
        )
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "new")
        await client.send("<presence/>")
        assert (await client.expect("message")).get("id") == "m1"


# -- the API for Bind 2 and SASL2 -------------------------------------------------------------


def newcomer(srv: TestServer, user: str) -> Session:
    """The session of a connection where ``user`` has authenticated but not bound."""
    found = [
        conn.session
        for conn in srv.server.connections
        if conn.session.username == user and not conn.session.bound
    ]
    assert len(found) == 1, found
    return found[0]


async def test_the_api_enables_and_resumes_for_inline_use(server: TestServer) -> None:
    api = server.server.hosts["localhost"].modules["smacks"].api
    alice, jid = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "p")
    session = session_of(server, jid)
    element = api.enable(session, resume=True)
    assert element.tag == f"{{{SM}}}enabled" and element.get("resume") == "true"
    same_xml(
        api.enable(session, resume=True),
        f"<failed xmlns='{SM}'><unexpected-request xmlns='{NS_STANZAS}'/></failed>",
    )
    session.send(element)
    assert (await alice.next()).tag == f"{{{SM}}}enabled"
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m1"))

    client, _ = await authenticated(server, "alice")
    nothing = await api.resume(newcomer(server, "alice"), "unknown", 0)
    assert (nothing.resumed, nothing.session) == (False, None)
    same_xml(
        nothing.element, f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>"
    )
    await nothing.finish()  # nothing to do

    outcome = await api.resume(newcomer(server, "alice"), element.get("id"), 0)
    assert outcome.resumed and outcome.session is session
    same_xml(outcome.element, f"<resumed xmlns='{SM}' h='0' previd='{element.get('id')}'/>")
    outcome.session.send(outcome.element)  # as SASL2 would send <success/> holding it
    await send_all(bob, chat(jid, "m2"))  # held until finish()
    await outcome.finish()
    assert (await client.next()).tag == f"{{{SM}}}resumed"
    assert [el.get("id") for el in await until_r(client)] == ["m1", "m2"]


async def test_a_new_session_on_the_same_resource_gets_what_the_old_one_missed(
    server: TestServer,
) -> None:
    """A client that does not resume but binds its resource again replaces the hibernating
    session; as in Prosody, the old one is then the user's last, so its messages go offline
    and come to the new one with its presence."""
    alice, jid, _ = await enabled(server, "alice", "phone")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m1"))
    again, again_jid = await login(
        server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "phone"
    )
    assert again_jid == jid
    await again.send("<presence/>")
    assert (await again.expect("message")).get("id") == "m1"
    assert all(el.get("type") != "error" for el in await until_pong(bob))


async def test_nothing_is_stored_for_a_deleted_account(server: TestServer) -> None:
    alice, jid, _ = await enabled(server, "alice", "phone")
    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    old = await drop(server, alice, jid)
    await send_all(bob, chat(jid, "m1"))
    assert await server.server.hosts["localhost"].users.delete("alice")
    await old.unbound()
    bounce = await bob.expect_where("message", id="m1")
    assert (bounce.get("type"), bounce.get("to")) == ("error", bob_jid)
    assert stanza_error(bounce)[:2] == ("cancel", "recipient-unavailable")
    offline = server.server.hosts["localhost"].storage.archive("localhost", "offline")
    assert await offline.users() == []


async def test_unacknowledged_carbons_are_never_bounced_to_the_sender(server: TestServer) -> None:
    """A carbon queued for a hibernating resource: while another resource is online it is
    dropped when the session ends (Prosody bounces it to the user's own bare JID, where
    routing drops it), and the sender hears nothing; once it was the last, it is stored."""
    server.clock.freeze()
    phone, phone_jid, _ = await enabled(server, "alice", "phone")
    await phone.iq("<enable xmlns='urn:xmpp:carbons:2'/>", type="set", id="c")
    desk, desk_jid = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "d")
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", PASSWORDS["bob"])
    old = await drop(server, phone, phone_jid)
    await send_all(bob, chat(desk_jid, "m1"))  # to the desk; a carbon is queued for the phone
    assert (await desk.expect("message")).get("id") == "m1"
    server.clock.advance(600)
    await old.unbound()
    assert tags(await until_pong(bob)) == []  # no error anywhere
    assert tags(await until_pong(desk)) == []

    phone, phone_jid, _ = await enabled(server, "alice", "phone")
    await phone.iq("<enable xmlns='urn:xmpp:carbons:2'/>", type="set", id="c")
    old = await drop(server, phone, phone_jid)
    await send_all(bob, chat(desk_jid, "m2"))
    await desk.send("</stream:stream>")  # the desk leaves: the phone is the last
    await desk.closed()
    server.clock.advance(600)
    await old.unbound()
    client, _ = await login(server.c2s_port, server.ca_file, "alice", PASSWORDS["alice"], "new")
    await client.send("<presence/>")
    stored = await client.expect("message")
    forwarded = stored.find("{urn:xmpp:carbons:2}received/{urn:xmpp:forward:0}forwarded")
    assert forwarded is not None and forwarded[0].get("id") == "m2"


async def test_a_session_resumed_before_its_loss_was_handled_does_not_hibernate(
    server: TestServer,
) -> None:
    api = server.server.hosts["localhost"].modules["smacks"].api
    alice, jid, sm = await enabled(server, "alice", "phone")
    session = await drop(server, alice, jid)
    again, reply = await resume(server, "alice", sm.get("id", ""), 0)
    assert reply.tag == f"{{{SM}}}resumed"
    assert api.hibernate(session) is False  # a late connection-lost: it is connected again
    assert session.data["smacks"].timer is None and not session.data["smacks"].held
    assert tags(await until_r(again)) == []


async def test_the_harness_reset_forgets_every_session(tmp_path: Path) -> None:
    from minixmpp.testing import XmppServer

    users = {"alice": PASSWORDS["alice"], "bob": PASSWORDS["bob"]}
    async with XmppServer(tmp_path, modules=MODULES, users=users) as srv:
        alice, jid, sm = await enabled(srv, "alice", "phone")
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        await drop(srv, alice, jid)
        await send_all(bob, chat(jid, "m1"))
        await srv.reset()
        assert srv.server.hosts["localhost"].modules["smacks"].api.in_memory() == ({}, {})
        _, reply = await resume(srv, "alice", sm.get("id", ""), 0)
        same_xml(reply, f"<failed xmlns='{SM}'><item-not-found xmlns='{NS_STANZAS}'/></failed>")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "new")
        await client.send("<presence/>")
        assert [el for el in await until_pong(client) if el.tag == "message"] == []  # m1 went too
