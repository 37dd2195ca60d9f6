"""In-band registration and account management (XEP-0077) over the wire, reply by reply.

Expected stanzas are Prosody 0.12.3's (the shared transcripts 00-09, protocol.md §6, and replies
seen from a local Prosody 0.12.3): error types, conditions and texts must match exactly. Where
this server is stricter than Prosody, the test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.core.test_cli import write_config
from tests.xmpp import NS_BIND, NS_SASL, RawClient, login, receives, same_xml

FORM = (
    "<query xmlns='jabber:iq:register'><instructions>Choose a username and password for use"
    " with this service.</instructions><username/><password/><x xmlns='jabber:x:data'"
    " type='form'><title>Creating a new account</title><instructions>Choose a username and"
    " password for use with this service.</instructions><field var='FORM_TYPE'"
    " type='hidden'><value>jabber:iq:register</value></field><field var='username'"
    " label='Username' type='text-single'><required/></field><field var='password'"
    " label='Password' type='text-private'><required/></field></x></query>"
)
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
EMPTY_QUERY = "<query xmlns='jabber:iq:register'/>"
REMOVE = "<query xmlns='jabber:iq:register'><remove/></query>"
PASSWORD_MISSING = "Password: Required value missing"
USERNAME_MISSING = "Username: Required value missing"


def error(condition: str, kind: str, text: str | None = None, **attrs: str) -> str:
    extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
    body = f"<{condition} xmlns='{STANZAS}'/>"
    if text is not None:
        body += f"<text xmlns='{STANZAS}'>{text}</text>"
    return f"<iq type='error' id='r'{extra}><error type='{kind}'>{body}</error></iq>"


def legacy(username: str, password: str) -> str:
    return (
        "<query xmlns='jabber:iq:register'>"
        f"<username>{username}</username><password>{password}</password></query>"
    )


def form(**values: str) -> str:
    fields = "".join(
        f"<field var='{var}'><value>{value}</value></field>" for var, value in values.items()
    )
    return (
        "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='FORM_TYPE'><value>jabber:iq:register</value></field>{fields}</x></query>"
    )


@pytest.fixture
async def open_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=["register"], options={"allow_registration": True}
    ) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


async def unauthenticated(
    server: TestServer, source: str | None = None
) -> tuple[RawClient, etree._Element]:
    """A new stream over TLS, before SASL (from the loopback address ``source``); returns it
    and its features."""
    client = await RawClient.connect(server.c2s_port, source=source)
    await client.open()
    features = await client.starttls(server.ca_file)
    return client, features


async def ask(client: RawClient, body: str, kind: str = "set", **attrs: str) -> etree._Element:
    extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
    await client.send(f"<iq type='{kind}' id='r'{extra}>{body}</iq>")
    return await client.expect("iq")


def account_row(server: TestServer, username: str) -> tuple[Any, ...] | None:
    with sqlite3.connect(server.data_path / "minixmpp.sqlite") as db:
        return db.execute(  # type: ignore[no-any-return]
            "SELECT username FROM accounts WHERE host = 'localhost' AND username = ?", (username,)
        ).fetchone()


def details_of(server: TestServer, username: str) -> bytes | None:
    with sqlite3.connect(server.data_path / "minixmpp.sqlite") as db:
        row = db.execute(
            "SELECT value FROM kv WHERE host = 'localhost' AND store = 'account_details'"
            " AND user = ?",
            (username,),
        ).fetchone()
    return None if row is None else bytes(row[0])


async def can_log_in(server: TestServer, username: str, password: str) -> bool:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    result = await client.scram(username, password)
    await client.close()
    return result.tag == f"{{{NS_SASL}}}success"


# -- the stream feature and the form ---------------------------------------------------------


async def test_feature_only_over_tls_and_before_authentication(open_server: TestServer) -> None:
    client = await RawClient.connect(open_server.c2s_port)
    before_tls = await client.open()
    assert before_tls.find("{http://jabber.org/features/iq-register}register") is None
    features = await client.starttls(open_server.ca_file)
    # first, before the SASL mechanisms (as Prosody orders them)
    assert features[0].tag == "{http://jabber.org/features/iq-register}register"
    assert len(features[0]) == 0
    assert (await client.scram("alice", "alice-secret")).tag == f"{{{NS_SASL}}}success"
    after = await client.open()
    assert after.find("{http://jabber.org/features/iq-register}register") is None


async def test_without_encryption_required_it_is_offered_in_plain(tmp_path: Path) -> None:
    options = {"allow_registration": True, "c2s_require_encryption": False}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        assert features.find("{http://jabber.org/features/iq-register}register") is not None
        same_xml(await ask(client, legacy("plain", "pw")), "<iq type='result' id='r'/>")


async def test_before_tls_registration_needs_encryption(open_server: TestServer) -> None:
    for kind, body in (("get", "<query xmlns='jabber:iq:register'/>"), ("set", legacy("x", "y"))):
        client = await RawClient.connect(open_server.c2s_port)
        await client.open()
        reply = await ask(client, body, kind)
        same_xml(reply, error("policy-violation", "modify", "Encryption is required"))


async def test_the_form(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    same_xml(
        await ask(client, "<query xmlns='jabber:iq:register'/>", "get"),
        f"<iq type='result' id='r'>{FORM}</iq>",
        ignore=(),
    )
    reply = await ask(client, "<query xmlns='jabber:iq:register'/>", "get", to="localhost")
    same_xml(reply, f"<iq type='result' id='r' from='localhost'>{FORM}</iq>", ignore=())


async def test_the_form_with_the_title_instructions_and_fields_configured(tmp_path: Path) -> None:
    options = {
        "allow_registration": True,
        "registration_title": "Sign up",
        "registration_instructions": "Pick a name.",
        "additional_registration_fields": ["nick", "email+"],
    }
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        client, _ = await unauthenticated(srv)
        same_xml(
            await ask(client, "<query xmlns='jabber:iq:register'/>", "get"),
            "<iq type='result' id='r'><query xmlns='jabber:iq:register'>"
            "<instructions>Pick a name.</instructions><username/><password/><nick/><email/>"
            "<x xmlns='jabber:x:data' type='form'><title>Sign up</title><instructions>Pick a"
            " name.</instructions><field var='FORM_TYPE' type='hidden'><value>jabber:iq:register"
            "</value></field><field var='username' label='Username' type='text-single'>"
            "<required/></field><field var='password' label='Password' type='text-private'>"
            "<required/></field><field var='nick' label='Nickname' type='text-single'/>"
            "<field var='email' label='Email' type='text-single'><required/></field></x>"
            "</query></iq>",
            ignore=(),
        )
        same_xml(
            await ask(client, legacy("newbie", "pw")),
            error("not-acceptable", "modify", "Email: Required value missing"),
        )
        body = legacy("newbie", "pw").replace("</query>", "<email>n@example.org</email></query>")
        same_xml(await ask(client, body), "<iq type='result' id='r'/>")
        details = details_of(srv, "newbie")
        assert details is not None and b'"email":"n@example.org"' in details


async def test_a_missing_custom_field_is_named_as_prosody_names_it(tmp_path: Path) -> None:
    extra = {"name": "favColour", "label": "Favourite colour", "required": True}
    options = {"allow_registration": True, "additional_registration_fields": [extra]}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        client, _ = await unauthenticated(srv)
        same_xml(
            await ask(client, form(username="newbie", password="pw")),
            error("not-acceptable", "modify", "FavColour: Required value missing"),
        )


async def test_custom_fields_of_any_type(tmp_path: Path) -> None:
    # Prosody sends field tables as they are written, options and all
    colour = {
        "name": "colour", "type": "list-single", "label": "Colour", "desc": "Pick one",
        "options": ["red", {"label": "Sea blue", "value": "blue"}], "value": "red",
    }  # fmt: skip
    about = {"var": "about", "type": "text-multi", "label": "About you"}
    options = {"allow_registration": True, "additional_registration_fields": [colour, about]}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        client, _ = await unauthenticated(srv)
        reply = await ask(client, "<query xmlns='jabber:iq:register'/>", "get")
        fields = reply.findall(".//{jabber:x:data}field")
        same_xml(
            fields[3],
            "<field xmlns='jabber:x:data' var='colour' label='Colour' type='list-single'>"
            "<desc>Pick one</desc><value>red</value><option><value>red</value></option>"
            "<option label='Sea blue'><value>blue</value></option></field>",
            (),
        )
        same_xml(
            fields[4],
            "<field xmlns='jabber:x:data' var='about' label='About you' type='text-multi'/>",
            (),
        )
        body = form(username="newbie", password="pw").replace(
            "</x>",
            "<field var='colour'><value>blue</value></field>"
            "<field var='about'><value>line one</value><value>line two</value></field></x>",
        )
        same_xml(await ask(client, body), "<iq type='result' id='r'/>", ())
        details = details_of(srv, "newbie")
        assert details is not None and b'"colour":"blue"' in details
        assert b'"about":"line one\\nline two"' in details


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("shoe_size", "unknown registration field 'shoe_size'"),
        ({"name": "x", "type": "fancy"}, "a field table needs a 'name' and a 'type'"),
        ({"name": "x", "colour": "red"}, "unknown key ['colour']"),
        ({"name": "x", "type": "list-single", "options": [{"label": "no value"}]}, "an option"),
    ],
)
async def test_bad_extra_fields_stop_start_up(
    tmp_path: Path, entry: str | dict[str, Any], message: str
) -> None:
    options = {"allow_registration": True, "additional_registration_fields": [entry]}
    with pytest.raises(Exception, match=re.escape(message)):
        async with running_server(tmp_path, modules=["register"], options=options):
            pass


# -- creating accounts -----------------------------------------------------------------------


async def test_register_then_log_in(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    same_xml(await ask(client, legacy("Juliet", "s3cret")), "<iq type='result' id='r'/>", ())
    # the same stream can now authenticate as the new account (nodeprepped: juliet)
    assert (await client.scram("juliet", "s3cret")).tag == f"{{{NS_SASL}}}success"
    assert details_of(open_server, "juliet") is not None


async def test_register_with_the_data_form(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    reply = await ask(client, form(username="romeo", password="pw-form"))
    same_xml(reply, "<iq type='result' id='r'/>", ())
    assert await can_log_in(open_server, "romeo", "pw-form")
    details = details_of(open_server, "romeo")  # the leftover fields, as Prosody keeps them
    assert details is not None and b'"FORM_TYPE":"jabber:iq:register"' in details
    assert b'"registered":' in details


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<query xmlns='jabber:iq:register'/>", f"{PASSWORD_MISSING}\n{USERNAME_MISSING}"),
        ("<query xmlns='jabber:iq:register'><username>x</username></query>", PASSWORD_MISSING),
        (legacy("", "pw"), "Username: Required value missing"),
        (legacy("x", ""), "Password: Required value missing"),
        (form(username="x"), "Password: Required value missing"),
        (form(username="", password="pw"), "Username: Required value missing"),
    ],
)  # fmt: skip
async def test_missing_values(open_server: TestServer, body: str, text: str) -> None:
    client, _ = await unauthenticated(open_server)
    same_xml(await ask(client, body), error("not-acceptable", "modify", text))


@pytest.mark.parametrize("password", ["a&#9;b", "\u05d0a", "ab\u0221", "&#173;"])
async def test_passwords_saslprep_refuses(open_server: TestServer, password: str) -> None:
    # a tab, a bad bidi string, an unassigned code point: Prosody's reply. A soft hyphen is
    # prepared to nothing: Prosody 0.12.3 creates an account with that empty password; this
    # server refuses it the same way ("password is empty").
    text = "password is empty" if password == "&#173;" else "password fails SASLprep"
    client, _ = await unauthenticated(open_server)
    reply = await ask(client, legacy("newbie", password))
    same_xml(reply, error("feature-not-implemented", "cancel", text))
    assert account_row(open_server, "newbie") is None
    alice, jid = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    reply = await ask(alice, legacy("alice", password))
    same_xml(reply, error("not-acceptable", "modify", text, to=jid))
    assert await can_log_in(open_server, "alice", "alice-secret")
    # PLAIN with such a password is a plain failure, not a crash
    client = await RawClient.connect(open_server.c2s_port)
    await client.open()
    await client.starttls(open_server.ca_file)
    assert (await client.plain("alice", "a\tb")).tag == f"{{{NS_SASL}}}failure"


@pytest.mark.parametrize(
    "username",
    [
        "a b", "a\tb", "a@b", "a/b", "a:b", "a'b", "a&quot;b", "a&amp;b", "a&lt;b", "a&gt;b",
        "x" * 1024, "\u00ad", "\U000e0001", "\u0221",
    ],
)  # fmt: skip
async def test_invalid_usernames(open_server: TestServer, username: str) -> None:
    client, _ = await unauthenticated(open_server)
    same_xml(
        await ask(client, legacy(username, "pw")),
        error("not-acceptable", "modify", "The requested username is invalid."),
    )


@pytest.mark.parametrize(
    ("requested", "stored"),
    [("Romeo", "romeo"), ("stra\u00dfe", "strasse"), ("\uff21\uff22", "ab"), ("a;?#=b", "a;?#=b"),
     ("x" * 1023, "x" * 1023)],
)  # fmt: skip
async def test_usernames_are_nodeprepped(
    open_server: TestServer, requested: str, stored: str
) -> None:
    client, _ = await unauthenticated(open_server)
    same_xml(await ask(client, legacy(requested, "pw")), "<iq type='result' id='r'/>", ())
    assert account_row(open_server, stored) is not None


async def test_existing_username(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    for name in ("alice", "ALICE"):
        same_xml(
            await ask(client, legacy(name, "pw")),
            error("conflict", "cancel", "The requested username already exists."),
        )
    assert await can_log_in(open_server, "alice", "alice-secret")  # untouched


async def test_the_stream_is_closed_after_a_few_refused_registrations(
    open_server: TestServer,
) -> None:
    # Issue 10: 1587 invalid forms a second on one stream, each a round of checks and lookups.
    client, _ = await unauthenticated(open_server)
    for body in (legacy("", "pw"), legacy("alice", "pw"), form(username="x"), REMOVE):
        assert (await ask(client, body)).get("type") == "error"
    same_xml(  # the fifth (registration_max_failures) is answered, then the stream closes
        await ask(client, legacy("a b", "x")),
        error("not-acceptable", "modify", "The requested username is invalid."),
    )
    assert await client.stream_error() == ("policy-violation", "Too many failed registrations")
    # Another stream starts afresh, and a get never counts.
    client, _ = await unauthenticated(open_server)
    for _ in range(6):
        assert (await ask(client, EMPTY_QUERY, kind="get")).get("type") == "result"
    for _ in range(4):
        assert (await ask(client, legacy("alice", "pw"))).get("type") == "error"
    assert (await ask(client, legacy("newcomer", "pw-pw-pw"))).get("type") == "result"


async def test_registration_max_failures(tmp_path: Path) -> None:
    options = {"allow_registration": True, "registration_max_failures": 1}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        client, _ = await unauthenticated(srv)
        assert (await ask(client, legacy("", "pw"))).get("type") == "error"
        assert (await client.stream_error())[0] == "policy-violation"


async def test_remove_before_authentication(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    body = "<query xmlns='jabber:iq:register'><remove/></query>"
    same_xml(await ask(client, body), error("registration-required", "auth"))


async def test_from_is_tolerated_and_to_is_answered_with_from(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    # old Conversations sends the new JID as 'from'
    reply = await ask(client, legacy("convo", "pw"), **{"from": "convo@localhost"})
    same_xml(reply, "<iq type='result' id='r' to='convo@localhost'/>", ())  # as Prosody
    same_xml(
        await ask(client, legacy("convo2", "pw"), to="localhost"),
        "<iq type='result' id='r' from='localhost'/>",
        (),
    )
    assert account_row(open_server, "convo") is not None


async def test_addresses_before_login(open_server: TestServer) -> None:
    client, _ = await unauthenticated(open_server)
    # 'to' is prepared: the answer comes from the host as it is named
    reply = await ask(client, "<query xmlns='jabber:iq:register'/>", "get", to="LOCALHOST")
    assert reply.get("type") == "result" and reply.get("from") == "localhost"
    bad_to = "The destination address is invalid: a@@b"
    same_xml(
        await ask(client, legacy("x", "pw"), to="a@@b"),
        error("jid-malformed", "modify", bad_to, **{"from": "a@@b"}),
    )
    same_xml(
        await ask(client, legacy("x", "pw"), **{"from": "a@@b"}),
        error("jid-malformed", "modify", "The source address is invalid: a@@b", to="a@@b"),
    )
    for other in ("example.org", "alice@localhost", "localhost/res"):  # only the host answers
        same_xml(
            await ask(client, legacy("x", "pw"), to=other),
            error("service-unavailable", "cancel", **{"from": other}),
        )
    assert account_row(open_server, "x") is None


async def test_closed_registration(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["register"]) as srv:  # allow_registration off
        client, features = await unauthenticated(srv)
        assert features.find("{http://jabber.org/features/iq-register}register") is None
        for kind, body in (("get", EMPTY_QUERY), ("set", legacy("x", "y"))):
            same_xml(await ask(client, body, kind), error("service-unavailable", "cancel"))
        assert account_row(srv, "x") is None


# -- concurrency and crashes ---------------------------------------------------------------


async def test_concurrent_registrations_of_one_name(open_server: TestServer) -> None:
    clients = [(await unauthenticated(open_server))[0] for _ in range(8)]
    for n, client in enumerate(clients):
        await client.send(f"<iq type='set' id='r'>{legacy('race', f'pw{n}')}</iq>")
    replies = await asyncio.gather(*(client.expect("iq") for client in clients))
    kinds = sorted(reply.get("type") or "" for reply in replies)
    assert kinds == ["error"] * 7 + ["result"]
    winner = next(n for n, reply in enumerate(replies) if reply.get("type") == "result")
    for reply in replies:
        if reply.get("type") == "error":
            same_xml(reply, error("conflict", "cancel", "The requested username already exists."))
    assert await can_log_in(open_server, "race", f"pw{winner}")


# -- logged in: the account itself ---------------------------------------------------------


async def test_get_when_logged_in(open_server: TestServer) -> None:
    alice, jid = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    registered = (
        "<query xmlns='jabber:iq:register'><registered/><username>alice</username>"
        "<password/></query>"
    )
    cases = [
        ({}, None),
        ({"to": "alice@localhost"}, None),
        ({"to": "localhost"}, "localhost"),
        ({"to": "localhost/x"}, "localhost/x"),  # a domain with a resource is the host too
    ]
    for attrs, reply_from in cases:
        reply = await ask(alice, EMPTY_QUERY, "get", **attrs)
        sender = f" from='{reply_from}'" if reply_from else ""
        same_xml(reply, f"<iq type='result' id='r' to='{jid}'{sender}>{registered}</iq>", ())


async def test_without_registration_compat_the_host_does_not_answer(tmp_path: Path) -> None:
    options = {"allow_registration": True, "registration_compat": False}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        alice, jid = await login(srv.c2s_port, srv.ca_file, "alice", "alice-secret")
        reply = await ask(alice, EMPTY_QUERY, "get", to="localhost")
        same_xml(reply, error("service-unavailable", "cancel", to=jid, **{"from": "localhost"}))
        reply = await ask(alice, EMPTY_QUERY, "get")  # to the account itself: still answered
        assert reply.get("type") == "result"


async def test_password_change_closes_the_other_sessions(open_server: TestServer) -> None:
    alice, jid = await login(
        open_server.c2s_port, open_server.ca_file, "alice", "alice-secret", "desk"
    )
    other, _ = await login(
        open_server.c2s_port, open_server.ca_file, "alice", "alice-secret", "phone"
    )
    reply = await ask(alice, legacy("ALICE", "n3w-secret"))  # the username is nodeprepped
    same_xml(reply, f"<iq type='result' id='r' to='{jid}'/>", ())
    assert await other.stream_error() == ("reset", "Password changed")
    await receives(alice)  # the session that changed it stays
    still = await ask(alice, "<query xmlns='jabber:iq:register'/>", "get")
    assert still.get("type") == "result"
    assert await can_log_in(open_server, "alice", "n3w-secret")
    assert not await can_log_in(open_server, "alice", "alice-secret")


async def authenticated_not_bound(server: TestServer, user: str, password: str) -> RawClient:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    assert (await client.scram(user, password)).tag == f"{{{NS_SASL}}}success"
    await client.open()
    return client


async def test_a_login_not_yet_bound_does_not_outlive_the_password(
    open_server: TestServer,
) -> None:
    pending = await authenticated_not_bound(open_server, "alice", "alice-secret")
    alice, _ = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    assert (await ask(alice, legacy("alice", "n3w-secret"))).get("type") == "result"
    await pending.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
    assert await pending.stream_error() == ("reset", "Password changed")
    again, _ = await login(open_server.c2s_port, open_server.ca_file, "alice", "n3w-secret")
    await receives(again)  # a login with the new password binds


async def test_a_login_not_yet_bound_does_not_outlive_the_account(
    open_server: TestServer,
) -> None:
    pending = await authenticated_not_bound(open_server, "alice", "alice-secret")
    alice, _ = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    await ask(alice, REMOVE)
    assert await alice.stream_error() == ("not-authorized", "Account deleted")
    # someone else takes the name; the old login must not become theirs
    newcomer, _ = await unauthenticated(open_server)
    assert (await ask(newcomer, form(username="alice", password="other"))).get("type") == "result"
    await pending.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
    assert await pending.stream_error() == ("reset", "Password changed")
    assert await can_log_in(open_server, "alice", "other")


@pytest.mark.parametrize(
    "body",
    [
        "<query xmlns='jabber:iq:register'><password>x</password></query>",
        "<query xmlns='jabber:iq:register'><username>alice</username></query>",
        legacy("bob", "x"),
        legacy("a b", "x"),
        form(username="alice", password="x"),
    ],
)
async def test_password_change_errors(open_server: TestServer, body: str) -> None:
    alice, jid = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    same_xml(await ask(alice, body), error("bad-request", "modify", to=jid))
    assert await can_log_in(open_server, "alice", "alice-secret")


async def test_removing_the_account(open_server: TestServer) -> None:
    rosters = open_server.server.rosters
    await open_server.create_user("bob", "bob-secret")
    from minixmpp.roster import RosterItem

    await rosters.save("localhost", "alice", RosterItem("bob@localhost", subscription="both"))
    await rosters.save("localhost", "bob", RosterItem("alice@localhost", subscription="both"))
    bob, _ = await login(open_server.c2s_port, open_server.ca_file, "bob", "bob-secret", "b")
    await bob.iq("<query xmlns='jabber:iq:roster'/>", id="roster")
    await bob.send("<presence/>")
    port, ca = open_server.c2s_port, open_server.ca_file
    alice, jid = await login(port, ca, "alice", "alice-secret", "one")
    await alice.send("<presence/>")
    await alice.drain()
    await bob.drain()
    other, _ = await login(port, ca, "alice", "alice-secret", "two")
    await bob.send("<message to='alice@localhost' type='chat'><body>kept?</body></message>")

    await alice.send(f"<iq type='set' id='r'>{REMOVE}</iq>")
    same_xml(await alice.expect("iq"), f"<iq type='result' id='r' to='{jid}'/>", ())  # first
    assert await alice.stream_error() == ("not-authorized", "Account deleted")
    assert await other.stream_error() == ("not-authorized", "Account deleted")
    seen = [(el.tag, el.get("type")) for el in await bob.drain()]
    assert ("presence", "unsubscribe") in seen and ("presence", "unsubscribed") in seen
    assert account_row(open_server, "alice") is None
    assert await rosters.items("localhost", "alice") == {}
    assert not await can_log_in(open_server, "alice", "alice-secret")
    with sqlite3.connect(open_server.data_path / "minixmpp.sqlite") as db:
        for table, column in (("roster", "username"), ("archive", "user"), ("kv", "user")):
            rows = db.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'alice'").fetchone()
            assert rows == (0,), table


# -- limits (mod_register_limits) ------------------------------------------------------------


async def register_as(
    server: TestServer, username: str, source: str | None = None
) -> etree._Element:
    client, _ = await unauthenticated(server, source)
    return await ask(client, legacy(username, "pw"))


THROTTLED = error(
    "policy-violation", "wait", "Too many registrations from this IP address recently"
)


@pytest.mark.parametrize(
    "limits",
    [
        {"registration_throttle_max": 2, "registration_throttle_period": 60},
        {"min_seconds_between_registrations": 60, "registration_throttle_max": 2},
    ],
)
async def test_throttle(tmp_path: Path, limits: dict[str, Any]) -> None:
    options = {"allow_registration": True, "registration_allowlist": [], **limits}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        await srv.create_user("taken", "pw")
        same_xml(await register_as(srv, "one"), "<iq type='result' id='r'/>", ())
        # a refused attempt counts too (Prosody counts every attempt that gets this far)
        assert (await register_as(srv, "taken")).get("type") == "error"
        same_xml(await register_as(srv, "three"), THROTTLED)
        assert account_row(srv, "three") is None


async def test_one_per_period(tmp_path: Path) -> None:
    options = {
        "allow_registration": True,
        "registration_allowlist": [],
        "min_seconds_between_registrations": 60,
    }
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        same_xml(await register_as(srv, "one"), "<iq type='result' id='r'/>", ())
        same_xml(await register_as(srv, "two"), THROTTLED)


async def test_allowlisted_addresses_are_not_throttled(tmp_path: Path) -> None:
    options = {
        "allow_registration": True,
        "registration_throttle_max": 1,
        "registration_throttle_period": 60,
        "registration_allowlist": ["127.0.0.0/8"],  # CIDR
    }
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        for name in ("one", "two", "three"):
            same_xml(await register_as(srv, name), "<iq type='result' id='r'/>", ())


@pytest.mark.parametrize(
    ("limits", "text"),
    [
        ({"registration_blocklist": ["127.0.0.1"]}, "Your IP address is blocklisted"),
        ({"registration_blocklist": ["127.0.0.0/8"]}, "Your IP address is blocklisted"),
        (
            {"allowlist_registration_only": True, "registration_allowlist": []},
            "Your IP address is not allowlisted",
        ),
        # Prosody's old names are still read; a new name wins over an old one
        ({"registration_blacklist": ["127.0.0.1"]}, "Your IP address is blocklisted"),
        (
            {"whitelist_registration_only": True, "registration_whitelist": ["10.0.0.0/8"]},
            "Your IP address is not allowlisted",
        ),
        (
            {
                "allowlist_registration_only": True,
                "registration_allowlist": [],
                "registration_whitelist": ["127.0.0.1"],
            },
            "Your IP address is not allowlisted",
        ),
    ],
)
async def test_blocklist_and_allowlist(tmp_path: Path, limits: dict[str, Any], text: str) -> None:
    options = {"allow_registration": True, **limits}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        same_xml(await register_as(srv, "someone"), error("forbidden", "auth", text))
        assert account_row(srv, "someone") is None


async def test_allowlist_only_lets_listed_addresses_in(tmp_path: Path) -> None:
    options = {"allow_registration": True, "allowlist_registration_only": True}
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        same_xml(await register_as(srv, "local"), "<iq type='result' id='r'/>", ())


async def test_each_address_has_its_own_throttle(tmp_path: Path) -> None:
    options = {
        "allow_registration": True,
        "registration_throttle_max": 1,
        "registration_throttle_period": 3600,
    }  # the default allowlist (127.0.0.1, ::1) does not cover 127.0.0.2 and 127.0.0.3
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        ok = "<iq type='result' id='r'/>"
        same_xml(await register_as(srv, "one", "127.0.0.2"), ok, ())
        same_xml(await register_as(srv, "two", "127.0.0.2"), THROTTLED)
        same_xml(await register_as(srv, "three", "127.0.0.3"), ok, ())
        same_xml(await register_as(srv, "four", "127.0.0.1"), ok, ())  # allowlisted
        same_xml(await register_as(srv, "five", "127.0.0.1"), ok, ())


@pytest.mark.parametrize(
    "overload",
    [
        {},
        {"blocklist_on_registration_throttle_overload": True},
        {"blacklist_on_registration_throttle_overload": True},  # Prosody's old name
    ],
)
async def test_throttle_cache_overload(tmp_path: Path, overload: dict[str, bool]) -> None:
    # One address remembered: a second one pushes the first out. Its bucket was empty, so with
    # the option it goes on the blocklist; without, it comes back with a fresh bucket.
    options = {
        "allow_registration": True,
        "registration_throttle_max": 1,
        "registration_throttle_period": 3600,
        "registration_throttle_cache_size": 1,
        **overload,
    }
    async with running_server(tmp_path, modules=["register"], options=options) as srv:
        ok = "<iq type='result' id='r'/>"
        same_xml(await register_as(srv, "one", "127.0.0.2"), ok, ())
        same_xml(await register_as(srv, "two", "127.0.0.3"), ok, ())
        again = await register_as(srv, "three", "127.0.0.2")
        if overload:
            same_xml(again, error("forbidden", "auth", "Your IP address is blocklisted"))
        else:
            same_xml(again, ok, ())


async def test_bad_limits_stop_start_up(tmp_path: Path) -> None:
    for options in (
        {"registration_blocklist": ["not-an-address"]},
        {"registration_throttle_max": 3},  # no period
    ):
        with pytest.raises(Exception, match="registration_"):
            async with running_server(
                tmp_path, modules=["register"], options={"allow_registration": True, **options}
            ):
                pass


# -- other modules take part ------------------------------------------------------------------

PLUGIN = """
from minixmpp.errors import StanzaError
from minixmpp.events import (
    USER_DEREGISTERED, USER_PASSWORD_CHANGED, USER_REGISTERED, USER_REGISTERING
)

SEEN = []


def load(module):
    @module.hook(USER_REGISTERING)
    async def vet(event):
        if event.username.startswith("spam"):
            raise StanzaError("not-allowed", "No spam, please", "cancel")

    @module.hook(USER_REGISTERED)
    async def welcome(event):
        SEEN.append((event.username, event.source, event.extra["registration"].additional))

    @module.hook(USER_PASSWORD_CHANGED)
    async def changed(event):
        SEEN.append(("password", event.username, event.source))

    @module.hook(USER_DEREGISTERED)
    async def gone(event):
        SEEN.append(("deregistered", event.username, event.source))
"""


async def test_other_modules_can_refuse_and_hear_of_registrations(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_vetting.py").write_text(PLUGIN)
    options = {"allow_registration": True, "plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=["register", "vetting"], options=options) as srv:
        same_xml(
            await register_as(srv, "spammer"), error("not-allowed", "cancel", "No spam, please")
        )
        assert account_row(srv, "spammer") is None
        client, _ = await unauthenticated(srv)
        assert (await ask(client, form(username="fine", password="pw"))).get("type") == "result"
        await ask(client, EMPTY_QUERY, "get")  # handled in order: user-registered has run
        fine, _ = await login(srv.c2s_port, srv.ca_file, "fine", "pw")
        assert (await ask(fine, legacy("fine", "pw2"))).get("type") == "result"
        await ask(fine, REMOVE)
        assert await fine.stream_error() == ("not-authorized", "Account deleted")
        assert srv.server.loader.code("vetting").SEEN == [
            ("fine", "register", {"FORM_TYPE": "jabber:iq:register"}),
            ("password", "fine", "register"),
            ("deregistered", "fine", "register"),
        ]


async def test_the_host_says_it_does_registration(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=["disco", "register"]) as srv:
        await srv.create_user("alice", "pw")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        info = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        reply = await ask(alice, info, "get", to="localhost")
        features = [f.get("var") for f in reply.iter("{*}feature")]
        assert "jabber:iq:register" in features


# -- a crash in the middle ----------------------------------------------------------------


@contextlib.contextmanager
def serving(config: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``minixmpp serve`` as its own process; yields it and its STARTTLS port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "minixmpp", "serve", "-c", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    try:
        port = 0
        for line in proc.stderr:  # ends when the server reports its ports, or exits
            match = re.search(r"c2s ports \[(\d+)\]", line)
            if match:
                port = int(match.group(1))
                break
        drain.start()  # keep the pipe from filling up
        assert port, "the server did not start"
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if drain.is_alive():
            drain.join(10)
        proc.stderr.close()


async def test_a_killed_server_never_leaves_half_an_account(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="allow_registration = true", modules='["register"]')
    ca_file, db = tmp_path / "certs" / "ca.pem", tmp_path / "data" / "minixmpp.sqlite"
    created: dict[str, bool] = {}
    for n, delay in enumerate((0.0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.05, 0.3)):
        with serving(config) as (proc, port):
            client = await RawClient.connect(port)
            await client.open()
            await client.starttls(ca_file)
            await client.send(f"<iq type='set' id='r'>{legacy(f'crash{n}', f'pw{n}')}</iq>")
            await asyncio.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: mid-write, maybe
            proc.wait(10)
            await client.close()
        with sqlite3.connect(db) as conn:
            account = conn.execute(
                "SELECT 1 FROM accounts WHERE username = ?", (f"crash{n}",)
            ).fetchone()
            details = conn.execute(
                "SELECT 1 FROM kv WHERE store = 'account_details' AND user = ?", (f"crash{n}",)
            ).fetchone()
        assert (account is None) == (details is None), f"crash{n}: half an account"
        created[f"crash{n}"] = account is not None
    assert created["crash7"]  # 0.3 s is plenty: that one got through

    with serving(config) as (_proc, port):
        for n, (name, exists) in enumerate(created.items()):
            client = await RawClient.connect(port)
            await client.open()
            await client.starttls(ca_file)
            if exists:  # whole: it logs in with its password
                assert (await client.scram(name, f"pw{n}")).tag == f"{{{NS_SASL}}}success"
            else:  # not there at all: the name is free
                assert (await ask(client, legacy(name, "again"))).get("type") == "result"
            await client.close()


# -- password policy (mod_password_policy) -----------------------------------------------------


@pytest.fixture
async def strict_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    options = {"allow_registration": True, "password_policy": {"length": 8}}
    async with running_server(
        tmp_path, modules=["register", "password_policy"], options=options
    ) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


# type 'cancel', as Prosody's mod_password_policy sends it (seen from Prosody 0.12.3)
TOO_SHORT = error("not-acceptable", "cancel", "Password is too short (minimum 8 characters)")


@pytest.mark.parametrize(
    "body",
    [
        legacy("newbie", "short"),
        form(username="newbie", password="short"),
        legacy("a b", "short"),  # the policy is checked first (as Prosody)
        legacy("alice", "short"),
        legacy("newbie", "\u00e9\u00e9\u00e9"),  # 6 bytes: length counts bytes
    ],
)
async def test_policy_at_registration(strict_server: TestServer, body: str) -> None:
    client, _ = await unauthenticated(strict_server)
    same_xml(await ask(client, body), TOO_SHORT)
    assert account_row(strict_server, "newbie") is None


async def test_policy_allows_long_passwords_and_ignores_the_username_at_registration(
    strict_server: TestServer,
) -> None:
    client, _ = await unauthenticated(strict_server)
    same_xml(await ask(client, legacy("newbie", "newbie-1234")), "<iq type='result' id='r'/>", ())


async def test_policy_on_password_change(strict_server: TestServer) -> None:
    port, ca = strict_server.c2s_port, strict_server.ca_file
    alice, jid = await login(port, ca, "alice", "alice-secret")
    cases = [
        ("short", "Password is too short (minimum 8 characters)"),
        ("", "No password provided"),
        ("my-ALICE-password", "Password must not include your username"),
    ]
    for password, text in cases:
        reply = await ask(alice, legacy("alice", password))
        same_xml(reply, error("not-acceptable", "cancel", text, to=jid))
    reply = await ask(alice, legacy("alice", "long-enough"))
    same_xml(reply, f"<iq type='result' id='r' to='{jid}'/>", ())


async def test_policy_does_not_speak_for_a_stream_that_may_not_register(tmp_path: Path) -> None:
    options = {"password_policy": {"length": 8}}  # registration off
    async with running_server(
        tmp_path, modules=["register", "password_policy"], options=options
    ) as srv:
        client, _ = await unauthenticated(srv)
        same_xml(await ask(client, legacy("x", "short")), error("service-unavailable", "cancel"))


async def test_an_empty_new_password_is_refused(open_server: TestServer) -> None:
    # XEP-0077 §3.3 (Prosody 0.12 accepts it, and then only SCRAM can log in)
    alice, jid = await login(open_server.c2s_port, open_server.ca_file, "alice", "alice-secret")
    same_xml(await ask(alice, legacy("alice", "")), error("bad-request", "modify", to=jid))
    assert await can_log_in(open_server, "alice", "alice-secret")


RESETTER = """
from minixmpp.events import USER_PASSWORD_RESET, USER_REGISTERING

RESETS = []


def load(module):
    @module.hook(USER_REGISTERING)
    async def allow(event):
        event.allow_reset = "alice"  # as a password-reset invite for alice would

    @module.hook(USER_PASSWORD_RESET)
    async def done(event):
        RESETS.append(event.username)
"""


async def test_a_module_may_let_a_registration_reset_a_password(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_resetter.py").write_text(RESETTER)
    options = {"allow_registration": True, "plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=["register", "resetter"], options=options) as srv:
        await srv.create_user("alice", "old-secret")
        await srv.create_user("bob", "bob-secret")
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "old-secret")
        client, _ = await unauthenticated(srv)
        same_xml(await ask(client, legacy("alice", "new-secret")), "<iq type='result' id='r'/>", ())
        same_xml(
            await ask(client, legacy("bob", "x")),
            error("conflict", "cancel", "The requested username already exists."),
        )
        assert srv.server.loader.code("resetter").RESETS == ["alice"]
        assert await can_log_in(srv, "alice", "new-secret")
        await receives(alice)  # a reset by invite leaves the sessions alone (Prosody)
