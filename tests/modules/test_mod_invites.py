"""Invites over the wire: features, preauth, invite-only registration, contact invites,
server-side XEP-0379, resets, bound and reusable invites, expiry, races.

Expected stanzas are Prosody 0.12.3's (shared transcripts 00-09, protocol.md §2-3 and the
checklist), except where Prosody 0.12 is wrong (named in the tests).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.xmpp import NS_SASL, RawClient, login, receives, same_xml

MODULES = ["register", "invites", "invites_register"]
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
R = "xmlns='jabber:iq:roster'"
INVALID = (
    "<iq type='error' id='p'{extra}><error type='cancel'><forbidden xmlns='" + STANZAS + "'/>"
    "<text xmlns='" + STANZAS + "'>The invite token is invalid or expired</text></error></iq>"
)
INVITE_ONLY = (
    "<iq type='error' id='r'><error type='modify'><not-acceptable xmlns='" + STANZAS + "'/>"
    "<text xmlns='" + STANZAS + "'>Registration on this server is through invitation only"
    "</text></error></iq>"
)
OK = "<iq type='result' id='r'/>"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, f"{name}-secret")
        yield srv


async def fresh(server: TestServer) -> tuple[RawClient, etree._Element]:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    return client, await client.starttls(server.ca_file)


async def preauth(client: RawClient, token: str | None, **attrs: str) -> etree._Element:
    kind = attrs.pop("type", "set")
    extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
    token_attr = "" if token is None else f" token='{token}'"
    await client.send(
        f"<iq type='{kind}' id='p'{extra}><preauth xmlns='urn:xmpp:pars:0'{token_attr}/></iq>"
    )
    return await client.expect("iq")


async def register(client: RawClient, username: str, password: str = "pw") -> etree._Element:
    await client.send(
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'>"
        f"<username>{username}</username><password>{password}</password></query></iq>"
    )
    return await client.expect("iq")


async def settle(client: RawClient) -> None:
    """Stanzas of a stream are handled in order: once this is answered, what the registration
    set in motion (user-registered) is done."""
    await client.send("<iq type='get' id='settle'><query xmlns='jabber:iq:register'/></iq>")
    assert (await client.expect("iq")).get("id") == "settle"


async def exists(server: TestServer, username: str) -> bool:
    return await server.server.hosts["localhost"].users.exists(username)


# -- tokens, URIs ---------------------------------------------------------------------------


async def test_tokens_and_uris(server: TestServer) -> None:
    api = server.invites()
    account = await api.create_account()
    named = await api.create_account("carol")
    reset = await api.create_reset("bob")
    contact = await api.create_contact("alice")
    both = await api.create_contact("alice", allow_registration=True)
    for invite in (account, named, reset, contact, both):
        assert re.fullmatch(r"[A-Za-z0-9_-]{24}", invite.token)
    assert len({i.token for i in (account, named, reset, contact, both)}) == 5
    assert account.uri == f"xmpp:localhost?register;preauth={account.token}"
    assert named.uri == f"xmpp:carol@localhost?register;preauth={named.token}"
    assert reset.uri == f"xmpp:bob@localhost?register;preauth={reset.token}"
    assert contact.uri == f"xmpp:alice@localhost?roster;preauth={contact.token}"
    assert both.uri == f"xmpp:alice@localhost?roster;preauth={both.token};ibr=y"
    assert account.expires - account.created_at == 7 * 86400  # invite_expiry's default
    assert reset.expires - reset.created_at == 86400
    assert (account.link, account.landing_page) == (account.uri, None)  # no invites_page


async def test_landing_pages_from_the_template(tmp_path: Path) -> None:
    options = {"invites_page": "https://example.com/invite/{invite.token}/?u={invite.uri}&h={host}"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        api = srv.invites()
        account = await api.create_account()
        escaped = account.uri.replace(":", "%3a").replace("?", "%3f").replace(";", "%3b")
        escaped = escaped.replace("=", "%3d")
        assert account.landing_page == (
            f"https://example.com/invite/{account.token}/?u={escaped}&h=localhost"
        )
        assert account.link == account.landing_page
        both = await api.create_contact("alice", allow_registration=True)
        assert both.landing_page is not None
        # Prosody 13's default invites_page_supports: no page for contact-only or resets
        assert (await api.create_contact("alice")).landing_page is None
        assert (await api.create_reset("alice")).landing_page is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(3600, 3600), ("90", 90), ("12h", 43200), ("2 days", 172800), ("1 week", 604800)],
)
async def test_invite_expiry_option(tmp_path: Path, value: int | str, seconds: int) -> None:
    async with running_server(tmp_path, modules=MODULES, options={"invite_expiry": value}) as srv:
        invite = await srv.invites().create_account()
        assert invite.expires - invite.created_at == seconds


async def test_a_bad_expiry_stops_start_up(tmp_path: Path) -> None:
    for value in ("1m", "soon", 0, "101 years", "99999999999999999999 years"):
        with pytest.raises(Exception, match="duration"):
            async with running_server(tmp_path, modules=MODULES, options={"invite_expiry": value}):
                pass


async def test_a_landing_page_must_be_a_web_address(tmp_path: Path) -> None:
    options = {"invites_page": "invite/{invite.token}"}
    with pytest.raises(Exception, match="invites_page must be an http"):
        async with running_server(tmp_path, modules=MODULES, options=options):
            pass


# -- stream features and preauth --------------------------------------------------------------


async def test_features(server: TestServer) -> None:
    client = await RawClient.connect(server.c2s_port)
    plain = await client.open()
    assert [etree.QName(el).namespace for el in plain] == ["urn:ietf:params:xml:ns:xmpp-tls"]
    features = await client.starttls(server.ca_file)
    assert [etree.QName(el).namespace for el in features][:4] == [
        "urn:xmpp:invite",
        "urn:xmpp:ibr-token:0",
        "http://jabber.org/features/iq-register",
        NS_SASL,
    ]
    for el in features[:3]:
        assert etree.QName(el).localname == "register" and len(el) == 0 and not el.attrib
    assert (await client.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
    after = await client.open()
    assert all(etree.QName(el).localname != "register" for el in after)


async def test_invalid_tokens_are_all_alike(server: TestServer) -> None:
    api = server.invites()
    used = await api.create_account()
    assert await api.use(used.token)
    revoked = await api.create_account()
    assert await api.revoke(revoked.token)
    expired = await api.create_account()
    server.clock.freeze()
    server.clock.set_time(expired.expires + 1.0)
    contact_only = await api.create_contact("alice")
    tokens = ["not-a-token", used.token, revoked.token, expired.token, contact_only.token, None]
    for token in tokens:  # a stream each: the fifth refusal on a stream closes it
        client, _ = await fresh(server)
        same_xml(await preauth(client, token), INVALID.format(extra=""))
    reply = await preauth(client, "nope", to="localhost")
    same_xml(reply, INVALID.format(extra=" from='localhost'"))


async def test_the_stream_is_closed_after_a_few_invalid_tokens(server: TestServer) -> None:
    # Issue 10: 1735 guesses a second on one stream, never closed; each a database lookup.
    invite = await server.invites().create_account()
    client, _ = await fresh(server)
    for i in range(4):
        same_xml(await preauth(client, f"guess-{i}"), INVALID.format(extra=""))
    same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())  # not one
    same_xml(await preauth(client, "guess-4"), INVALID.format(extra=""))  # the fifth: answered,
    assert await client.stream_error() == ("policy-violation", "Too many invalid invite tokens")
    client, _ = await fresh(server)  # then closed; another stream starts afresh
    same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())


async def test_preauth_max_failures(tmp_path: Path) -> None:
    options = {"preauth_max_failures": 2, "invite_error_condition": "item-not-found"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        client, _ = await fresh(srv)
        assert (await preauth(client, "one")).find("error/{*}item-not-found") is not None
        assert (await preauth(client, "two")).find("error/{*}item-not-found") is not None
        assert (await client.stream_error())[0] == "policy-violation"


async def test_invalid_tokens_count_as_failed_logins_of_the_address(tmp_path: Path) -> None:
    # Closing the stream alone still let a client that reconnects guess 1144 tokens a second
    # (measured). Refused tokens draw on the address's attempts (limit_auth), across
    # connections, shared with SASL.
    options = {"unlimited_ips": [], "limit_auth_max": 3, "limit_auth_period": 3600}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        srv.clock.freeze()
        invite = await srv.invites().create_account()
        client, _ = await fresh(srv)
        for i in range(3):
            same_xml(await preauth(client, f"guess-{i}"), INVALID.format(extra=""))
        throttled = (
            "<iq type='error' id='p'><error type='wait'>"
            "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
            "Too many failed attempts from this IP address recently</text></error></iq>"
        )
        same_xml(await preauth(client, invite.token), throttled)  # not even looked up
        client, _ = await fresh(srv)
        same_xml(await preauth(client, invite.token), throttled)
        result = await client.plain("alice", "alice-secret")
        assert result[0].tag == f"{{{NS_SASL}}}temporary-auth-failure"
        srv.clock.advance(1201)  # one attempt back (1200 s, and float rounding)
        client, _ = await fresh(srv)  # the idle unauthenticated stream timed out meanwhile
        same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())


async def test_valid_preauth_then_registration(server: TestServer) -> None:
    invite = await server.invites().create_account()
    client, _ = await fresh(server)
    same_xml(await register(client, "newbie"), INVITE_ONLY)  # no invite yet
    same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())
    same_xml(await preauth(client, "bad"), INVALID.format(extra=""))  # keeps the valid one
    same_xml(await register(client, "newbie"), OK, ())
    assert (await client.scram("newbie", "pw")).tag == f"{{{NS_SASL}}}success"
    # used: a new stream cannot use it again
    other, _ = await fresh(server)
    same_xml(await preauth(other, invite.token), INVALID.format(extra=""))


async def test_preauth_forms(server: TestServer) -> None:
    api = server.invites()
    client, _ = await fresh(server)
    invite = await api.create_account()
    reply = await preauth(client, invite.token, to="localhost")
    same_xml(reply, "<iq type='result' id='p' from='localhost'/>", ())
    same_xml(await preauth(client, invite.token, type="get"), "<iq type='result' id='p'/>", ())


async def test_preauth_when_logged_in_is_not_available(server: TestServer) -> None:
    invite = await server.invites().create_account()
    alice, jid = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
    reply = await preauth(alice, invite.token)
    same_xml(
        reply,
        f"<iq type='error' id='p' to='{jid}'><error type='cancel'>"
        f"<service-unavailable xmlns='{STANZAS}'/></error></iq>",
    )


async def test_item_not_found_option(tmp_path: Path) -> None:
    options = {"invite_error_condition": "item-not-found"}  # XEP-0445, new Conversations
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        client, _ = await fresh(srv)
        same_xml(
            await preauth(client, "nope"),
            INVALID.format(extra="")
            .replace("forbidden", "item-not-found")
            .replace("The invite token", "The provided token"),  # XEP-0445's example
        )


# -- using invites ----------------------------------------------------------------------------


async def test_one_invite_one_account_per_stream(server: TestServer) -> None:
    invite = await server.invites().create_account()
    client, _ = await fresh(server)
    await preauth(client, invite.token)
    same_xml(await register(client, "first"), OK, ())
    # Prosody 0.12 would create a second account here from the same single-use token
    same_xml(await register(client, "second"), INVITE_ONLY)
    assert not await exists(server, "second")


async def test_a_failed_registration_does_not_use_the_invite(server: TestServer) -> None:
    invite = await server.invites().create_account()
    client, _ = await fresh(server)
    await preauth(client, invite.token)
    assert (await register(client, "alice")).get("type") == "error"  # taken: conflict
    assert (await register(client, "a b")).get("type") == "error"  # invalid
    same_xml(await register(client, "free"), OK, ())


async def test_expiry_is_checked_at_preauth_only(server: TestServer) -> None:
    api = server.invites()
    invite = await api.create_account()
    client, _ = await fresh(server)
    server.clock.freeze()
    server.clock.set_time(float(invite.expires))  # the last valid second
    same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())
    server.clock.set_time(invite.expires + 3600.0)  # expired while the user typed
    same_xml(await register(client, "late"), OK, ())  # XEP-0401: still registers
    other, _ = await fresh(server)
    late = await api.create_account()
    server.clock.set_time(late.expires + 1.0)
    same_xml(await preauth(other, late.token), INVALID.format(extra=""))


async def test_contact_invite_with_registration(server: TestServer) -> None:
    invite = await server.invites().create_contact("alice", allow_registration=True)
    alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "desk")
    await alice.send(f"<iq type='get' id='g'><query {R}/></iq><presence/>")
    assert len(await alice.drain()) == 2
    client, _ = await fresh(server)
    await preauth(client, invite.token)
    same_xml(await register(client, "nurse"), OK, ())
    # both rosters say 'both'; the inviter's interested resources get the push; no presence
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='1'><item jid='nurse@localhost'"
        " subscription='both'/></query></iq>",
    )
    nurse, jid = await login(server.c2s_port, server.ca_file, "nurse", "pw")
    same_xml(
        await nurse.iq(f"<query {R}/>", id="g"),
        f"<iq type='result' id='g' to='{jid}'><query {R} ver='1'>"
        "<item jid='alice@localhost' subscription='both'/></query></iq>",
    )


async def test_roles_and_groups_are_applied(server: TestServer) -> None:
    invite = await server.invites().create_account(
        roles=["prosody:admin", "prosody:member"], groups=["team"]
    )
    client, _ = await fresh(server)
    await preauth(client, invite.token)
    same_xml(await register(client, "boss"), OK, ())
    await settle(client)
    users = server.server.hosts["localhost"].users
    assert await users.roles("boss") == ["prosody:admin", "prosody:member"]
    assert server.server.hosts["localhost"].modules["invites"].is_admin("boss@localhost")
    groups = server.server.storage.keyval("localhost", "groups")  # type: ignore[union-attr]
    assert await groups.get("boss") == ["team"]


async def test_reset_invite(server: TestServer) -> None:
    api = server.invites()
    bob, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret")
    invite = await api.create_reset("bob")
    client, _ = await fresh(server)
    await preauth(client, invite.token)
    # Prosody 0.12 lets a reset token create any new account; 13 refuses, as we do
    same_xml(
        await register(client, "mallory"),
        INVITE_ONLY.replace(
            "Registration on this server is through invitation only",
            "Incorrect username for password reset",
        ),
    )
    same_xml(await register(client, "bob", "new-bob"), OK, ())
    await settle(client)
    await receives(bob)  # a reset leaves the sessions alone (Prosody)
    assert await api.find(invite.token) is None  # used
    other, _ = await fresh(server)
    assert (await other.scram("bob", "new-bob")).tag == f"{{{NS_SASL}}}success"
    assert not await exists(server, "mallory")


async def race(server: TestServer, token: str, accounts: list[tuple[str, str]]) -> list[Any]:
    """One stream per (username, password), each validated with ``token``, all registering at
    once; their replies, in the same order."""
    clients = [(await fresh(server))[0] for _ in accounts]
    for client in clients:
        same_xml(await preauth(client, token), "<iq type='result' id='p'/>", ())
    for (username, password), client in zip(accounts, clients, strict=True):
        await client.send(
            "<iq type='set' id='r'><query xmlns='jabber:iq:register'>"
            f"<username>{username}</username><password>{password}</password></query></iq>"
        )
    return await asyncio.gather(*(client.expect("iq") for client in clients))


async def test_a_reset_invite_resets_once(server: TestServer) -> None:
    invite = await server.invites().create_reset("bob")
    replies = await race(server, invite.token, [("bob", f"new{n}") for n in range(5)])
    kinds = [r.get("type") for r in replies]
    assert sorted(kinds) == ["error"] * 4 + ["result"]
    for reply in replies:
        if reply.get("type") == "error":
            same_xml(reply, INVALID.replace("id='p'{extra}", "id='r'"))
    winner = kinds.index("result")
    other, _ = await fresh(server)
    assert (await other.scram("bob", f"new{winner}")).tag == f"{{{NS_SASL}}}success"


async def test_invite_bound_to_a_username(server: TestServer) -> None:
    api = server.invites()
    bound = await api.create_account("carol")
    general = await api.create_account()
    client, _ = await fresh(server)
    await preauth(client, bound.token)
    # Prosody does not check the name (clients lock the field); we do
    same_xml(
        await register(client, "dave"),
        INVITE_ONLY.replace(
            "Registration on this server is through invitation only",
            "The chosen username is not valid with this invitation",
        ),
    )
    # and the name is kept for that invite until it expires
    other, _ = await fresh(server)
    await preauth(other, general.token)
    same_xml(
        await register(other, "carol"),
        f"<iq type='error' id='r'><error type='cancel'><conflict xmlns='{STANZAS}'/>"
        f"<text xmlns='{STANZAS}'>The requested username is reserved</text></error></iq>",
    )
    # a stranger without an invite is told no more than that invites are needed
    stranger, _ = await fresh(server)
    same_xml(await register(stranger, "carol"), INVITE_ONLY)
    same_xml(await register(client, "carol"), OK, ())


async def test_reusable_invite_with_max_uses(server: TestServer) -> None:
    api = server.invites()
    invite = await api.create_account(reusable=True, max_uses=2, groups=["club"])
    for name in ("one", "two"):
        client, _ = await fresh(server)
        same_xml(await preauth(client, invite.token), "<iq type='result' id='p'/>", ())
        same_xml(await register(client, name), OK, ())
    client, _ = await fresh(server)
    same_xml(await preauth(client, invite.token), INVALID.format(extra=""))
    assert (await api.list()) == []


async def test_fifty_streams_race_for_one_token(server: TestServer) -> None:
    invite = await server.invites().create_account()
    replies = await race(server, invite.token, [(f"racer{n}", "pw") for n in range(50)])
    assert sorted(r.get("type") or "" for r in replies) == ["error"] * 49 + ["result"]
    made = [n for n in range(50) if await exists(server, f"racer{n}")]
    assert len(made) == 1 and replies[made[0]].get("type") == "result"


async def test_registration_open_to_all_still_honours_invites(tmp_path: Path) -> None:
    options = {"allow_registration": True, "registration_invite_only": False}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        invite = await srv.invites().create_contact("alice", allow_registration=True)
        client, _ = await fresh(srv)
        same_xml(await register(client, "walkin"), OK, ())  # no invite needed
        client, _ = await fresh(srv)
        await preauth(client, invite.token)
        same_xml(await register(client, "friend"), OK, ())
        await settle(client)
        item = await srv.server.rosters.item("localhost", "alice", "friend@localhost")
        assert item is not None and item.subscription == "both"


# -- XEP-0379: subscriptions approved by the server --------------------------------------------


async def online(server: TestServer, user: str, resource: str) -> RawClient:
    client, _ = await login(server.c2s_port, server.ca_file, user, f"{user}-secret", resource)
    await client.send(f"<iq type='get' id='g'><query {R}/></iq><presence/>")
    await client.drain()
    return client


async def test_subscription_with_a_contact_token(server: TestServer) -> None:
    invite = await server.invites().create_contact("alice")  # contact-only
    alice = await online(server, "alice", "desk")
    bob = await online(server, "bob", "phone")
    await bob.send(
        "<presence to='alice@localhost' type='subscribe' id='s1'>"
        f"<preauth xmlns='urn:xmpp:pars:0' token='{invite.token}'/></presence>"
    )
    # Prosody's order: 'subscribe' before 'subscribed'; alice's clients never see the request
    await receives(
        bob,
        f"<iq type='set'><query {R} ver='1'><item jid='alice@localhost' ask='subscribe'"
        " subscription='none'/></query></iq>",
        "<presence type='subscribe' from='alice@localhost' to='bob@localhost'/>",
        "<presence type='subscribed' from='alice@localhost' to='bob@localhost'/>",
        f"<iq type='set'><query {R} ver='2'><item jid='alice@localhost'"
        " subscription='to'/></query></iq>",
        "<presence xml:lang='en' from='alice@localhost/desk' to='bob@localhost'>"
        "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/></presence>",
    )
    await receives(
        alice,
        f"<iq type='set'><query {R} ver='1'><item jid='bob@localhost'"
        " subscription='from'/></query></iq>",
        f"<iq type='set'><query {R} ver='2'><item jid='bob@localhost' ask='subscribe'"
        " subscription='from'/></query></iq>",
        "<presence type='unavailable' from='bob@localhost' to='alice@localhost'/>",
    )
    assert await server.invites().find(invite.token) is None  # used


@pytest.mark.parametrize("kind", ["unknown", "account", "someone else's"])
async def test_subscription_with_a_token_that_does_not_fit(server: TestServer, kind: str) -> None:
    api = server.invites()
    token = {
        "unknown": "not-a-token",
        "account": (await api.create_account()).token,
        "someone else's": (await api.create_contact("bob")).token,
    }[kind]
    alice = await online(server, "alice", "desk")
    bob = await online(server, "bob", "phone")
    await bob.send(
        "<presence to='alice@localhost' type='subscribe' id='s1'>"
        f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>"
    )
    # normal handling: the request reaches alice, <preauth/> and all
    request = await alice.expect("presence")
    same_xml(
        request,
        "<presence to='alice@localhost' type='subscribe' id='s1' from='bob@localhost'"
        f" xml:lang='en'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>",
        (),
    )


# -- housekeeping -----------------------------------------------------------------------------


async def test_expired_invites_are_purged_after_the_grace_period(server: TestServer) -> None:
    api = server.invites()
    old = await api.create_account()
    fresh_one = await api.create_account(ttl=30 * 86400)
    server.clock.freeze()
    server.clock.set_time(old.expires + 3600.0)  # expired, within the day of grace
    assert await api.purge() == 0
    assert await api.find(old.token, check_expiry=False) is not None
    server.clock.set_time(old.expires + 86400 + 1.0)
    assert await api.purge() == 1
    assert await api.find(old.token, check_expiry=False) is None
    assert await api.find(fresh_one.token) is not None


async def test_a_deleted_inviter_takes_its_invites_along(server: TestServer) -> None:
    api = server.invites()
    contact = await api.create_contact("alice", allow_registration=True)
    reset = await api.create_reset("alice")
    kept = await api.create_contact("bob")
    assert await server.server.hosts["localhost"].users.delete("alice")
    assert await api.find(contact.token) is None and await api.find(reset.token) is None
    assert await api.find(kept.token) is not None


ANNOTATOR = """
from modules.mod_invites import INVITE_CREATED

def load(module):
    module.depends("invites")

    @module.hook(INVITE_CREATED)
    async def annotate(invite):
        invite.note = f"made for {invite.kind}"
        invite.groups = [*invite.groups, "newcomers"]
"""


async def test_invite_created_lets_modules_annotate_before_storing(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_annotator.py").write_text(ANNOTATOR)
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=[*MODULES, "annotator"], options=options) as srv:
        created = await srv.invites().create_account(groups=["club"])
        stored = await srv.invites().find(created.token)
        assert stored is not None
        assert (stored.note, stored.groups) == ("made for account", ["club", "newcomers"])
        client, _ = await fresh(srv)  # and the stored groups are the ones applied
        await preauth(client, created.token)
        same_xml(await register(client, "joiner"), OK, ())
        await settle(client)
        with sqlite3.connect(srv.data_path / "minixmpp.sqlite") as db:
            row = db.execute(
                "SELECT value FROM kv WHERE store = 'groups' AND user = 'joiner'"
            ).fetchone()
        assert row is not None and json.loads(row[0]) == ["club", "newcomers"]


# -- edges: boundaries, options, normalisation, races ----------------------------------------


async def test_max_uses_holds_under_a_race(server: TestServer) -> None:
    invite = await server.invites().create_account(reusable=True, max_uses=3)
    replies = await race(server, invite.token, [(f"club{n}", "pw") for n in range(20)])
    assert sorted(r.get("type") or "" for r in replies) == ["error"] * 17 + ["result"] * 3
    made = [n for n in range(20) if await exists(server, f"club{n}")]
    assert len(made) == 3 and all(replies[n].get("type") == "result" for n in made)
    found = await server.invites().find(invite.token, check_expiry=False)
    assert found is None  # used up


async def reserved(server: TestServer, name: str, bound: str, other: str | None = None) -> None:
    """``name`` is refused (conflict) to a stream that presented ``other`` (or no token), and
    registered by one that presented ``bound``, the invite it is reserved for."""
    stranger, _ = await fresh(server)
    if other is not None:
        await preauth(stranger, other)
    reply = await register(stranger, name)
    assert reply.find(f"{{*}}error/{{{STANZAS}}}conflict") is not None
    invitee, _ = await fresh(server)
    await preauth(invitee, bound)
    same_xml(await register(invitee, name), OK, ())


async def test_a_name_bound_contact_invite_reserves_the_name(server: TestServer) -> None:
    # XEP-0401's create-account with a username and roster subscription is such an invite
    api = server.invites()
    bound = await api.create_contact("alice", allow_registration=True, username="juliet")
    await reserved(server, "juliet", bound.token, (await api.create_account()).token)


async def test_the_reservation_lasts_until_the_expiry_second(server: TestServer) -> None:
    api = server.invites()
    bound = await api.create_account("carol")
    general = await api.create_account(ttl=30 * 86400)
    server.clock.freeze()
    server.clock.set_time(float(bound.expires))  # the last second it is valid: still reserved
    client, _ = await fresh(server)
    await preauth(client, general.token)
    assert (await register(client, "carol")).get("type") == "error"
    server.clock.set_time(bound.expires + 1.0)  # expired: the name is free again
    same_xml(await register(client, "carol"), OK, ())


async def test_open_registration_respects_reservations(tmp_path: Path) -> None:
    options = {"allow_registration": True, "registration_invite_only": False}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        bound = await srv.invites().create_account("carol")
        await reserved(srv, "carol", bound.token)  # a walk-in without an invite is refused


async def test_listing_and_validity_differ_at_the_expiry_second(server: TestServer) -> None:
    # as Prosody: usable while now <= expires, listed while now < expires
    api = server.invites()
    invite = await api.create_account()
    server.clock.freeze()
    server.clock.set_time(float(invite.expires))
    assert await api.find(invite.token) is not None
    assert invite.token not in [i.token for i in await api.list()]


async def test_the_api_prepares_usernames(server: TestServer) -> None:
    api = server.invites()
    bound = await api.create_account("Carol")
    assert (bound.subject, bound.uri) == (
        "carol",
        f"xmpp:carol@localhost?register;preauth={bound.token}",
    )
    client, _ = await fresh(server)
    await preauth(client, bound.token)
    same_xml(await register(client, "CAROL"), OK, ())
    with pytest.raises(ValueError, match="invalid username"):
        await api.create_reset("not valid")


async def test_invite_purge_after_option(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, modules=MODULES, options={"invite_purge_after": "2h"}
    ) as srv:
        api = srv.invites()
        old = await api.create_account()
        srv.clock.freeze()
        srv.clock.set_time(old.expires + 7200.0)
        assert await api.purge() == 0
        srv.clock.set_time(old.expires + 7201.0)
        assert await api.purge() == 1


async def test_expired_invites_are_purged_at_start_up(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES) as srv:
        api = srv.invites()
        srv.clock.freeze()
        srv.clock.set_time(time.time() - 3 * 86400)  # made three days ago: long expired
        old = await api.create_account(ttl=1)
        assert await api.find(old.token, check_expiry=False) is not None
    async with running_server(tmp_path, modules=MODULES) as srv:
        assert await srv.invites().find(old.token, check_expiry=False) is None


async def test_invite_features_without_tls_when_it_is_not_required(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, modules=MODULES, options={"c2s_require_encryption": False}
    ) as srv:
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        names = [etree.QName(f).namespace for f in features]
        assert "urn:xmpp:invite" in names and "urn:xmpp:ibr-token:0" in names


@pytest.mark.parametrize("case", ["revoked", "expired", "expiry second", "to a full JID"])
async def test_subscription_token_edges(server: TestServer, case: str) -> None:
    api = server.invites()
    invite = await api.create_contact("alice")
    if case == "revoked":  # Prosody keeps the per-user entry; a revoked invite is gone here
        assert await api.revoke(invite.token)
    elif case == "expired":
        server.clock.freeze()
        server.clock.set_time(invite.expires + 1.0)
    elif case == "expiry second":
        server.clock.set_time(float(invite.expires))
    alice = await online(server, "alice", "desk")
    bob = await online(server, "bob", "phone")
    to = "alice@localhost/desk" if case == "to a full JID" else "alice@localhost"
    await bob.send(
        f"<presence to='{to}' type='subscribe' id='s1'>"
        f"<preauth xmlns='urn:xmpp:pars:0' token='{invite.token}'/></presence>"
    )
    if case in ("revoked", "expired"):  # normal handling: alice is asked, <preauth/> and all
        request = await alice.expect("presence")
        assert request.get("type") == "subscribe"
        assert request.find("{urn:xmpp:pars:0}preauth") is not None
        kept = await api.find(invite.token, check_expiry=False)
        assert (kept is None) == (case == "revoked")  # an expired one is not used either
    else:  # approved by the server (a subscription is always to the bare JID)
        pushed = await alice.expect("iq")
        item = pushed.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
        assert item is not None and item.get("subscription") == "from"
        assert await api.find(invite.token, check_expiry=False) is None  # used


async def test_invites_of_a_database_from_before_store_kinds_still_work(tmp_path: Path) -> None:
    """mod_invites had its own table; the upgrade moves its rows into the map stores."""
    database = tmp_path / "data" / "minixmpp.sqlite"
    database.parent.mkdir(mode=0o700, parents=True)
    now = int(time.time())
    with sqlite3.connect(database) as db:
        db.executescript(
            "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            " WITHOUT ROWID; INSERT INTO schema_versions VALUES ('invites', 1);"
            "CREATE TABLE invites (host TEXT NOT NULL, token TEXT NOT NULL, type TEXT NOT NULL,"
            " jid TEXT NOT NULL, inviter TEXT, subject TEXT, allow_registration INTEGER NOT NULL,"
            " reusable INTEGER NOT NULL DEFAULT 0, max_uses INTEGER,"
            " uses INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL DEFAULT '{}', uri TEXT NOT NULL,"
            " landing_page TEXT, created_at INTEGER NOT NULL, expires INTEGER NOT NULL,"
            " PRIMARY KEY (host, token)) WITHOUT ROWID;"
        )
        db.executemany(
            "INSERT INTO invites VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, 0, ?, ?, NULL, ?, ?)",
            [
                ("localhost", "oldaccountinvite00000000", "register", "newbie@localhost",
                 None, "newbie", 1, json.dumps({"groups": ["old"]}),
                 "xmpp:newbie@localhost?register;preauth=oldaccountinvite00000000",
                 now, now + 3600),
                ("localhost", "oldcontactinvite00000000", "roster", "alice@localhost",
                 "alice", None, 0, "{}", "xmpp:alice@localhost?roster;preauth=x", now, now + 3600),
            ],
        )  # fmt: skip
    database.chmod(0o600)
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "pw")
        api = srv.invites()
        moved = await api.find("oldaccountinvite00000000")
        assert moved is not None and (moved.subject, moved.groups) == ("newbie", ["old"])
        assert (await api.reserved_for("newbie")) is not None
        client, _ = await fresh(srv)
        await preauth(client, "oldaccountinvite00000000")
        same_xml(await register(client, "newbie"), OK, ())
        assert await api.find("oldaccountinvite00000000") is None  # used up
        assert await srv.server.hosts["localhost"].users.delete("alice")  # its invite goes too
        assert await api.find("oldcontactinvite00000000") is None
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "invites" not in tables
