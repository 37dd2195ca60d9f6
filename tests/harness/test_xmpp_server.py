"""minixmpp.testing.XmppServer, the product for other suites: addresses, accounts, rosters,
invites, reset and snapshots, the traffic log and its waits, over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.testing import XmppServer, match
from tests.xmpp import NS_SASL, RawClient, login, stanza_error

MODULES = ["disco", "ping", "roster", "presence", "offline", "register", "invites",
           "invites_register", "limit_auth"]  # fmt: skip
PING = "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


@pytest.fixture
async def server() -> AsyncIterator[XmppServer]:
    async with XmppServer(modules=MODULES, users={"alice": "alice-pw"}) as srv:
        yield srv


async def test_addresses_and_a_temporary_folder_that_goes_away() -> None:
    started = time.perf_counter()
    async with XmppServer() as srv:
        ready = time.perf_counter() - started
        host, port = srv.c2s_address
        assert (host, srv.host) == ("127.0.0.1", "localhost") and port > 0
        assert srv.direct_tls_address[1] > 0 and srv.direct_tls_address[1] != port
        assert srv.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        folder = srv.data_path.parent
        assert folder.exists()
        account = await srv.create_user("alice", "pw")
        _client, jid = await login(port, srv.ca_file, "alice", "pw", "desk")
        assert jid == "alice@localhost/desk" and str(account) == "alice@localhost"
    assert not folder.exists()
    assert ready < 5  # generous: the benchmark measures it (bench/harness.py)


async def test_accounts(server: XmppServer) -> None:
    first, second = await server.new_user(), await server.new_user()
    assert first.jid != second.jid and first.password != second.password
    with pytest.raises(ValueError, match="exists"):
        await server.create_user("alice")
    _client, _ = await login(server.c2s_port, server.ca_file, first.username, first.password)
    assert await server.delete_user(first)
    assert not await server.server.hosts["localhost"].users.exists(first.username)


async def test_contacts_on_both_rosters(server: XmppServer) -> None:
    bob = await server.create_user("bob", "bob-pw")
    await server.add_contact("alice@localhost", bob, "to", groups=["Friends"])
    client, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-pw")
    reply = await client.iq("<query xmlns='jabber:iq:roster'/>", type="get", id="r")
    items = reply.findall("{jabber:iq:roster}query/{jabber:iq:roster}item")
    assert [(i.get("jid"), i.get("subscription")) for i in items] == [("alice@localhost", "from")]
    roster = await server.roster("alice@localhost")
    assert roster["bob@localhost"].subscription == "to"
    assert roster["bob@localhost"].groups == ("Friends",)


async def test_invites_with_a_chosen_token(server: XmppServer) -> None:
    invite = await server.create_invite(token="chosen-token", username="newbie", max_uses=None)
    assert invite.uri == "xmpp:newbie@localhost?register;preauth=chosen-token"
    with pytest.raises(ValueError, match="exists"):
        await server.create_invite(token="chosen-token")
    with pytest.raises(ValueError, match="token"):
        await server.create_invite(token="no spaces")
    reusable = await server.create_invite(max_uses=3, roles=["prosody:registered"], ttl=60)
    assert (reusable.max_uses, reusable.expires - reusable.created_at) == (3, 60)
    contact = await server.create_invite("contact", inviter="alice@localhost", token="c1")
    assert contact.uri == "xmpp:alice@localhost?roster;preauth=c1"
    reset = await server.create_invite("reset", username="alice")
    assert reset.allow_reset == "alice"


async def test_a_frozen_clock_expires_an_invite_only_when_advanced(server: XmppServer) -> None:
    server.clock.freeze()
    invite = await server.create_invite(ttl=60)
    server.clock.advance(60)  # the last valid second
    assert await server.invites().find(invite.token) is not None
    server.clock.advance(1)
    assert await server.invites().find(invite.token) is None


async def test_reset_returns_to_the_start_state(server: XmppServer) -> None:
    bob = await server.create_user("bob", "bob-pw")
    await server.add_contact("alice@localhost", bob)
    invite = await server.create_invite()
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-pw", presence=True)
    await alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
    await alice.iq("<ping xmlns='urn:xmpp:ping'/>", type="get", id="p", to="localhost")
    server.clock.freeze()
    server.clock.advance(3600)

    await server.reset()
    await alice.closed()  # every stream closed
    assert not server.server.connections
    users = server.server.hosts["localhost"].users
    assert await users.exists("alice") and not await users.exists("bob")
    assert await server.roster("alice@localhost") == {}
    assert await server.invites().find(invite.token) is None
    assert not server.clock.frozen and abs(server.clock.time() - time.time()) < 5
    assert server.traffic.records == []
    # bob again: no offline message waits for the new bob
    await server.create_user("bob", "bob-pw")
    bob_client, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-pw", presence=True)
    await bob_client.iq("<ping xmlns='urn:xmpp:ping'/>", type="get", id="p", to="localhost")
    assert server.received_by("bob@localhost", "message") == []


async def test_reset_forgets_failed_logins(tmp_path: Path) -> None:
    options = {"unlimited_ips": [], "limit_auth_max": 1, "limit_auth_period": 3600}
    async with XmppServer(modules=["limit_auth"], options=options, users=["alice"]) as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        await client.starttls(srv.ca_file)
        assert (await client.plain("alice", "wrong")).tag == f"{{{NS_SASL}}}failure"
        refused = await client.plain("alice", "password")
        assert refused[0].tag == f"{{{NS_SASL}}}temporary-auth-failure"
        await srv.reset()
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "password")


async def test_snapshot_and_restore(server: XmppServer) -> None:
    await server.create_user("bob", "bob-pw")
    saved = await server.snapshot()
    await server.create_user("carol", "carol-pw")
    await server.delete_user("bob@localhost")
    await server.restore(saved)
    users = server.server.hosts["localhost"].users
    assert await users.exists("bob") and not await users.exists("carol")
    _client, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-pw")


async def test_traffic_log_and_waits(server: XmppServer) -> None:
    await server.create_user("bob", "bob-pw")
    alice, alice_jid = await login(server.c2s_port, server.ca_file, "alice", "alice-pw", "a")
    bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", "bob-pw", "b")
    bound = await server.wait_for("resource-bind")
    assert bound.session == alice_jid
    mark = server.traffic.mark()
    await alice.send(f"<message to='{bob_jid}' type='chat' id='m1'><body>hi</body></message>")
    record = await server.wait_for(match("message", id="m1", to=bob_jid), since=mark)
    assert record.incoming and record.jid == alice_jid
    await bob.expect("message")
    [got] = server.received_by("bob@localhost", "message", since=mark)
    assert (got.get("from"), got.element.findtext("{jabber:client}body")) == (alice_jid, "hi")
    assert [r.get("id") for r in server.traffic.sent_by(alice_jid, "message")] == ["m1"]
    transcript = server.traffic.transcript("bob@localhost")
    assert "S: <message" in transcript and "alice-pw" not in server.traffic.transcript()
    with pytest.raises(AssertionError, match="nothing like"):
        await server.wait_for("user-deleted", timeout=0.2)


async def test_nothing_sent_waits_for_the_server_not_for_time(server: XmppServer) -> None:
    await server.create_user("bob", "bob-pw")
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-pw")
    _bob, bob_jid = await login(server.c2s_port, server.ca_file, "bob", "bob-pw")
    mark = server.traffic.mark()
    await alice.send(f"<message to='{bob_jid}' type='chat' id='m2'><body>hi</body></message>")
    # not awaited by anything: the message is still in the socket when the check starts
    with pytest.raises(AssertionError, match="was sent 1 stanza"):
        await server.assert_nothing_sent_to("bob@localhost", "message", since=mark)
    mark = server.traffic.mark()
    await alice.send(PING.format(id="p1"))
    started = time.perf_counter()
    await server.assert_nothing_sent_to("bob@localhost", since=mark, within=30)
    assert time.perf_counter() - started < 10  # it ended when the server idled, not at 30 s
    assert [r.get("id") for r in server.received_by("alice@localhost", "iq", since=mark)] == ["p1"]


async def test_pending_stanzas_make_the_server_busy(server: XmppServer) -> None:
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-pw")
    for i in range(50):
        await alice.send(PING.format(id=f"q{i}"))
    await server.idle()
    ids = [r.get("id") for r in server.received_by("alice@localhost", "iq")]
    assert ids[-50:] == [f"q{i}" for i in range(50)]


async def test_open_registration_without_a_throttle() -> None:
    async with XmppServer(open_registration=True) as srv:
        for name in ("one", "two", "three"):
            client = await RawClient.connect(srv.c2s_port)
            await client.open()
            await client.starttls(srv.ca_file)
            reply = await client.iq(
                f"<query xmlns='jabber:iq:register'><username>{name}</username>"
                "<password>pw</password></query>", type="set", id="r",
            )  # fmt: skip
            assert reply.get("type") == "result", stanza_error(reply)


async def test_an_admin_account_for_xep_0133() -> None:
    async with XmppServer(admin="admin") as srv:
        client, _ = await login(srv.c2s_port, srv.ca_file, "admin", "password")
        reply = await client.iq(
            "<command xmlns='http://jabber.org/protocol/commands' action='execute'"
            " node='http://jabber.org/protocol/admin#add-user'/>",
            type="set", id="c", to="localhost",
        )  # fmt: skip
        assert reply.get("type") == "result", stanza_error(reply)
        assert srv.accounts["admin@localhost"].password == "password"


async def test_plaintext_logins() -> None:
    async with XmppServer(plaintext=True, users={"alice": "pw"}) as srv:
        client = await RawClient.connect(srv.c2s_port)
        await client.open()
        assert (await client.scram("alice", "pw")).tag == f"{{{NS_SASL}}}success"


async def test_two_servers_share_nothing() -> None:
    async with XmppServer(users=["alice"]) as one, XmppServer() as two:
        assert one.c2s_port != two.c2s_port and one.ca_file != two.ca_file
        assert not await two.server.hosts["localhost"].users.exists("alice")
        assert await asyncio.wait_for(one.server.hosts["localhost"].users.exists("alice"), 5)


def test_a_server_in_its_own_thread_for_synchronous_suites() -> None:
    import socket
    import ssl

    with XmppServer(users={"alice": "pw"}).start_in_thread() as srv:
        assert srv.host == "localhost" and srv.c2s_address[1] > 0
        bob = srv.create_user("bob", "bob-pw")
        assert bob.jid == "bob@localhost"
        with socket.create_connection(srv.direct_tls_address, timeout=10) as raw:
            context = ssl.create_default_context(cafile=str(srv.ca_file))
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(
                    b"<stream:stream xmlns='jabber:client' to='localhost' version='1.0'"
                    b" xmlns:stream='http://etherx.jabber.org/streams'>"
                )
                received = b""
                while b"</stream:features>" not in received:
                    received += tls.recv(4096)
        assert b"SCRAM-SHA-1" in received
        record = srv.wait_for(lambda r: r.tag == "features")
        assert not record.incoming
        srv.clock.freeze()
        srv.clock.advance(10)
        assert srv.clock.frozen
        srv.reset()
        assert not srv.clock.frozen
        assert srv.traffic.records == []


async def test_waiting_for_domain_events(server: XmppServer) -> None:
    invite = await server.create_invite(token="event-token")
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    await client.iq("<preauth xmlns='urn:xmpp:pars:0' token='event-token'/>", type="set", id="p")
    await client.send(
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>newbie</username>"
        "<password>pw</password></query></iq>"
    )
    used = await server.wait_for("invite-used")
    assert (used.invite.token, used.username, used.purpose) == (invite.token, "newbie", "register")
    registered = await server.wait_for("user-registered")
    assert registered.username == "newbie"

    await server.create_user("bob", "bob-pw")
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-pw", presence=True)
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-pw", presence=True)
    await alice.send("<presence to='bob@localhost' type='subscribe'/>")
    await bob.expect("presence")
    await bob.send("<presence to='alice@localhost' type='subscribed'/>")
    approved = await server.wait_for("subscription-approved")
    assert (approved.username, approved.contact, approved.by) == ("bob", "alice@localhost", "user")


async def test_restore_forgets_what_modules_keep_in_memory() -> None:
    # mod_blocklist keeps lists in memory: a restore must not leave a list the stores lost
    async with XmppServer(modules=["blocklist"], users={"alice": "pw", "bob": "pw"}) as srv:
        empty = await srv.snapshot()
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        block = "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>"
        assert (await alice.iq(block, type="set", id="b")).get("type") == "result"
        await srv.restore(empty)
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await alice.iq("<blocklist xmlns='urn:xmpp:blocking'/>", id="l")
        assert reply.findall("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item") == []
