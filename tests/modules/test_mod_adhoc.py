"""Ad-hoc commands (XEP-0050) and the invite commands, over the wire.

Expected stanzas are Prosody's (protocol.md §4; the result form as Prosody >= 0.12.5 sends it,
type 'result'); sessions follow XEP-0050 where Prosody does not check them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.xmpp import TIMEOUT, RawClient, login, same_xml

CMD = "http://jabber.org/protocol/commands"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MODULES = ["disco", "register", "invites", "invites_register", "invites_adhoc"]
ADMIN = "admin@localhost/desk"
USER = "alice@localhost/desk"
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=MODULES, options={"admins": ["admin@localhost"]}
    ) as srv:
        for name in ("admin", "alice"):
            await srv.create_user(name, "pw")
        yield srv


async def connect(server: TestServer, user: str) -> RawClient:
    client, _ = await login(server.c2s_port, server.ca_file, user, "pw", "desk")
    return client


async def run(client: RawClient, node: str, body: str = "", **attrs: str) -> etree._Element:
    extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
    await client.send(
        f"<iq type='set' id='c' to='localhost'><command xmlns='{CMD}' node='{node}'{extra}>"
        f"{body}</command></iq>"
    )
    return await client.expect("iq")


async def items(client: RawClient) -> etree._Element:
    await client.send(
        "<iq type='get' id='d' to='localhost'><query"
        f" xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/></iq>"
    )
    return await client.expect("iq")


def result_form(reply: etree._Element) -> dict[str, str | None]:
    x = reply.find(f"{{{CMD}}}command/{{jabber:x:data}}x")
    assert x is not None, etree.tostring(reply)
    return {
        f.get("var", ""): f.findtext("{jabber:x:data}value")
        for f in x.iterchildren("{jabber:x:data}field")
    }


async def test_host_lists_commands(server: TestServer) -> None:
    admin = await connect(server, "admin")
    await admin.send(
        "<iq type='get' id='i' to='localhost'><query"
        " xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    features = [f.get("var") for f in (await admin.expect("iq")).iter("{*}feature")]
    assert CMD in features


async def test_disco_items_by_permission(server: TestServer) -> None:
    items_ns = "http://jabber.org/protocol/disco#items"
    same_xml(
        await items(await connect(server, "admin")),
        f"<iq type='result' id='d' from='localhost' to='{ADMIN}'>"
        f"<query xmlns='{items_ns}' node='{CMD}'>"
        "<item node='urn:xmpp:invite#create-account' name='Create new account invite'"
        " jid='localhost'/>"
        "<item node='urn:xmpp:invite#invite' name='Create new contact invite' jid='localhost'/>"
        "<item node='xmpp:prosody.im/mod_invites_adhoc#password-reset'"
        " name='Create password reset invite' jid='localhost'/>"
        "</query></iq>",
        (),
    )
    same_xml(
        await items(await connect(server, "alice")),
        f"<iq type='result' id='d' from='localhost' to='{USER}'>"
        f"<query xmlns='{items_ns}' node='{CMD}'>"
        "<item node='urn:xmpp:invite#invite' name='Create new contact invite' jid='localhost'/>"
        "</query></iq>",
        (),
    )


async def test_disco_info_of_a_command_node(server: TestServer) -> None:
    info = "http://jabber.org/protocol/disco#info"
    admin = await connect(server, "admin")
    await admin.send(
        f"<iq type='get' id='n' to='localhost'><query xmlns='{info}'"
        " node='urn:xmpp:invite#create-account'/></iq>"
    )
    same_xml(
        await admin.expect("iq"),
        f"<iq type='result' id='n' from='localhost' to='{ADMIN}'><query xmlns='{info}'"
        " node='urn:xmpp:invite#create-account'><identity category='automation'"
        " type='command-node' name='Create new account invite'/>"
        f"<feature var='{CMD}'/><feature var='jabber:x:data'/></query></iq>",
        (),
    )
    alice = await connect(server, "alice")
    await alice.send(
        f"<iq type='get' id='n' to='localhost'><query xmlns='{info}'"
        " node='urn:xmpp:invite#create-account'/></iq>"
    )
    same_xml(
        await alice.expect("iq"),
        f"<iq type='error' id='n' from='localhost' to='{USER}'><error type='auth'>"
        f"<forbidden xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>This item is not available"
        " to you</text></error></iq>",
        (),
    )


def check_result(
    reply: etree._Element, node: str, uri: re.Pattern[str], to: str, days: int = 7
) -> None:
    command = reply.find(f"{{{CMD}}}command")
    assert command is not None
    sessionid = command.get("sessionid", "")
    assert re.fullmatch(UUID4, sessionid)
    fields = result_form(reply)
    assert uri.fullmatch(fields["uri"] or ""), fields["uri"]
    expire = datetime.datetime.strptime(fields["expire"] or "", "%Y-%m-%dT%H:%M:%SZ")
    same_xml(
        reply,
        f"<iq type='result' id='c' from='localhost' to='{to}'><command xmlns='{CMD}'"
        f" sessionid='{sessionid}' status='completed' node='{node}'>"
        "<x xmlns='jabber:x:data' type='result'><title>Your invite has been created</title>"
        "<field var='landing-url' label='Invite web page' type='text-single'>"
        "<desc>Share this link</desc></field>"
        "<field var='uri' label='Invite URI' type='text-single'><desc>This alternative link"
        f" can be opened with some XMPP clients</desc><value>{fields['uri']}</value></field>"
        "<field var='expire' label='Invite valid until' type='text-single'>"
        f"<value>{fields['expire']}</value></field></x></command></iq>",
        (),
    )
    valid = datetime.timedelta(days=days)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert abs(expire - now - valid) < datetime.timedelta(minutes=1)


async def test_contact_invite_for_a_user_and_an_admin(server: TestServer) -> None:
    reply = await run(await connect(server, "alice"), "urn:xmpp:invite#invite", action="execute")
    check_result(
        reply, "urn:xmpp:invite#invite",
        re.compile(r"xmpp:alice@localhost\?roster;preauth=[\w-]{24}"), USER,
    )  # fmt: skip
    token = (result_form(reply)["uri"] or "").rpartition("=")[2]
    invite = await server.invites().find(token)
    assert invite is not None and invite.source == USER  # who asked, as Prosody records it
    reply = await run(await connect(server, "admin"), "urn:xmpp:invite#invite")
    check_result(
        reply, "urn:xmpp:invite#invite",
        re.compile(r"xmpp:admin@localhost\?roster;preauth=[\w-]{24};ibr=y"), ADMIN,
    )  # fmt: skip


async def test_account_invite_for_an_admin(server: TestServer) -> None:
    reply = await run(await connect(server, "admin"), "urn:xmpp:invite#create-account")
    check_result(
        reply, "urn:xmpp:invite#create-account",
        re.compile(r"xmpp:localhost\?register;preauth=[\w-]{24}"), ADMIN,
    )  # fmt: skip
    invites = server.invites()
    token = result_form(reply)["uri"].rpartition("=")[2]  # type: ignore[union-attr]
    invite = await invites.find(token)
    assert invite is not None and invite.source == ADMIN


async def test_permission_error(server: TestServer) -> None:
    reply = await run(await connect(server, "alice"), "urn:xmpp:invite#create-account")
    text = "You don&apos;t have permission to execute this command"
    same_xml(
        reply,
        f"<iq type='error' id='c' from='localhost' to='{USER}'><error type='auth'>"
        f"<forbidden xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{text}</text></error>"
        f"<command xmlns='{CMD}' status='canceled' node='urn:xmpp:invite#create-account'>"
        f"<note type='error'>{text}</note></command></iq>",
        (),
    )


async def test_landing_page_in_the_result(tmp_path: Path) -> None:
    options = {
        "admins": ["admin@localhost"],
        "invites_page": "https://example.com/i/{invite.token}",
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("admin", "pw")
        reply = await run(await connect(srv, "admin"), "urn:xmpp:invite#create-account")
        fields = result_form(reply)
        token = (fields["uri"] or "").rpartition("=")[2]
        assert fields["landing-url"] == f"https://example.com/i/{token}"


async def test_options_for_who_may_invite(tmp_path: Path) -> None:
    options = {"allow_user_invites": True, "admins": []}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        fields = result_form(await run(await connect(srv, "alice"), "urn:xmpp:invite#invite"))
        assert (fields["uri"] or "").endswith(";ibr=y")
    options = {"allow_contact_invites": False, "admins": []}
    async with running_server(tmp_path / "2", modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw")
        alice = await connect(srv, "alice")
        assert len((await items(alice))[0]) == 0
        reply = await run(alice, "urn:xmpp:invite#invite")
        assert reply.find("{*}error/{*}forbidden") is not None


async def test_password_reset_command(server: TestServer) -> None:
    admin = await connect(server, "admin")
    node = "xmpp:prosody.im/mod_invites_adhoc#password-reset"
    first = await run(admin, node)
    command = first.find(f"{{{CMD}}}command")
    assert command is not None and command.get("status") == "executing"
    sessionid = command.get("sessionid", "")
    same_xml(
        command,
        f"<command xmlns='{CMD}' node='{node}' sessionid='{sessionid}' status='executing'>"
        "<actions execute='complete'><next/><complete/></actions>"
        "<x xmlns='jabber:x:data' type='form'><title>Generate Password Reset Invite</title>"
        "<field var='accountjid' label='The XMPP ID for the account to generate a password"
        " reset invite for' type='jid-single'><required/></field></x></command>",
        (),
    )
    form = (
        "<x xmlns='jabber:x:data' type='submit'><field var='accountjid'>"
        "<value>{}</value></field></x>"
    )
    done = await run(admin, node, form.format("alice@localhost"), sessionid=sessionid)
    reset_uri = re.compile(r"xmpp:alice@localhost\?register;preauth=[\w-]{24}")
    check_result(done, node, reset_uri, ADMIN, days=1)
    # the session is over (XEP-0050 §4.6)
    again = await run(admin, node, form.format("alice@localhost"), sessionid=sessionid)
    same_xml(again, SESSION_EXPIRED.format(ADMIN), ())
    # a bad form completes with a note
    second = await run(admin, node)
    sid = second.find(f"{{{CMD}}}command").get("sessionid", "")  # type: ignore[union-attr]
    bad = await run(admin, node, form.format("nobody@localhost"), sessionid=sid)
    note = bad.find(f"{{{CMD}}}command/{{{CMD}}}note")
    assert note is not None and (note.get("type"), note.text) == (
        "error",
        "Fill in the form correctly",
    )


BAD_SESSIONID = (
    "<iq type='error' id='c' from='localhost' to='{}'><error type='modify'>"
    f"<bad-request xmlns='{STANZAS}'/><bad-sessionid xmlns='{CMD}'/></error></iq>"
)
SESSION_EXPIRED = (
    "<iq type='error' id='c' from='localhost' to='{}'><error type='cancel'>"
    f"<not-allowed xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>The command session has ended"
    f"</text><session-expired xmlns='{CMD}'/></error></iq>"
)
RESET = "xmpp:prosody.im/mod_invites_adhoc#password-reset"
RESET_FORM = (
    "<x xmlns='jabber:x:data' type='submit'><field var='accountjid'>"
    "<value>alice@localhost</value></field></x>"
)


def sessionid_of(reply: etree._Element) -> str:
    command = reply.find(f"{{{CMD}}}command")
    assert command is not None, etree.tostring(reply)
    return command.get("sessionid", "")


async def test_sessions(server: TestServer) -> None:
    admin = await connect(server, "admin")
    alice = await connect(server, "alice")
    sid = sessionid_of(await run(admin, RESET))
    # unknown, another user's, or a plain next without a session: bad-sessionid (XEP-0050)
    reply = await run(admin, RESET, sessionid="nope", action="next")
    same_xml(reply, BAD_SESSIONID.format(ADMIN), ())
    reply = await run(alice, "urn:xmpp:invite#invite", sessionid=sid, action="complete")
    same_xml(reply, BAD_SESSIONID.format(USER), ())
    # a session belongs to one resource, not to the user
    laptop, jid = await login(server.c2s_port, server.ca_file, "admin", "pw", "laptop")
    reply = await run(laptop, RESET, RESET_FORM, sessionid=sid, action="complete")
    same_xml(reply, BAD_SESSIONID.format(jid), ())
    same_xml(await run(admin, RESET, action="next"), BAD_SESSIONID.format(ADMIN), ())
    # cancel ends it; then it has expired, for its owner only
    same_xml(
        await run(admin, RESET, sessionid=sid, action="cancel"),
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{RESET}' sessionid='{sid}' status='canceled'/></iq>",
        (),
    )
    same_xml(
        await run(admin, RESET, sessionid=sid, action="next"), SESSION_EXPIRED.format(ADMIN), ()
    )
    same_xml(await run(admin, RESET, sessionid=sid), SESSION_EXPIRED.format(ADMIN), ())
    reply = await run(alice, "urn:xmpp:invite#invite", sessionid=sid)
    same_xml(reply, BAD_SESSIONID.format(USER), ())
    # an unknown node: item-not-found (XEP-0050 §4.6; Prosody: service-unavailable)
    unknown = await run(admin, "urn:example:nothing")
    assert unknown.find(f"{{*}}error/{{{STANZAS}}}item-not-found") is not None
    await admin.send(f"<iq type='set' id='c' to='localhost'><command xmlns='{CMD}'/></iq>")
    assert (await admin.expect("iq")).find(f"{{*}}error/{{{STANZAS}}}bad-request") is not None


async def test_admins_are_compared_as_prepared_bare_jids(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, modules=MODULES, options={"admins": ["Admin@LOCALHOST"]}
    ) as srv:
        await srv.create_user("admin", "pw")
        reply = await items(await connect(srv, "admin"))
        nodes = [i.get("node") for i in reply.iter("{*}item")]
        assert "urn:xmpp:invite#create-account" in nodes


async def test_tokens_never_reach_the_wire_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    async with running_server(
        tmp_path, modules=MODULES, options={"admins": ["admin@localhost"]}
    ) as srv:
        await srv.create_user("admin", "pw")
        admin = await connect(srv, "admin")
        uri = result_form(await run(admin, "urn:xmpp:invite#invite"))["uri"] or ""
        token = uri.split("preauth=")[1].split(";")[0]
        stranger = await RawClient.connect(srv.c2s_port)
        await stranger.open()
        await stranger.starttls(srv.ca_file)
        await stranger.send(
            f"<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token = '{token[:9]}"
        )
        await asyncio.sleep(0.05)  # let the server read the first half on its own
        await stranger.send(f"{token[9:]}'/></iq>")
        assert (await stranger.expect("iq")).get("type") == "result"
    logged = caplog.text
    assert "RECV" in logged and "SEND" in logged  # wire logging was on
    assert token not in logged and token[9:] not in logged


async def test_completing_without_the_form(server: TestServer) -> None:
    # "complete" means finish (XEP-0050): without the form it ends with Prosody's error note
    admin = await connect(server, "admin")
    sid = sessionid_of(await run(admin, RESET))
    same_xml(
        await run(admin, RESET, sessionid=sid, action="complete"),
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{RESET}' sessionid='{sid}' status='completed'><note type='error'>Fill in the"
        " form correctly</note></command></iq>",
        (),
    )


async def test_a_form_on_the_first_execute_is_not_read(server: TestServer) -> None:
    # As Prosody's simple forms: the first stage always shows the form
    admin = await connect(server, "admin")
    before = len(await server.invites().list())
    reply = await run(admin, RESET, RESET_FORM)
    assert reply.find(f"{{{CMD}}}command").get("status") == "executing"  # type: ignore[union-attr]
    assert len(await server.invites().list()) == before


async def test_a_canceled_form_cancels(server: TestServer) -> None:
    # XEP-0004: a form of type 'cancel' withdraws the submission; nothing is created
    admin = await connect(server, "admin")
    before = len(await server.invites().list())
    sid = sessionid_of(await run(admin, RESET))
    canceled = RESET_FORM.replace("type='submit'", "type='cancel'")
    same_xml(
        await run(admin, RESET, canceled, sessionid=sid, action="complete"),
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{RESET}' sessionid='{sid}' status='canceled'/></iq>",
        (),
    )
    assert len(await server.invites().list()) == before


async def test_unknown_action_is_malformed(server: TestServer) -> None:
    admin = await connect(server, "admin")
    sid = sessionid_of(await run(admin, RESET))
    malformed = (
        f"<iq type='error' id='c' from='localhost' to='{ADMIN}'><error type='modify'>"
        f"<bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>Unknown action"
        f" &apos;bogus&apos;</text><malformed-action xmlns='{CMD}'/></error></iq>"
    )
    same_xml(await run(admin, RESET, action="bogus"), malformed, ())
    same_xml(await run(admin, RESET, sessionid=sid, action="bogus"), malformed, ())
    # the session is still there
    done = await run(admin, RESET, RESET_FORM, sessionid=sid, action="complete")
    assert done.find(f"{{{CMD}}}command").get("status") == "completed"  # type: ignore[union-attr]


async def test_an_action_the_stage_did_not_offer(server: TestServer) -> None:
    admin = await connect(server, "admin")
    first = await run(admin, RESET)
    sid = sessionid_of(first)
    offered = first.find(f"{{{CMD}}}command/{{{CMD}}}actions")
    assert offered is not None and [etree.QName(a).localname for a in offered] == [
        "next",
        "complete",
    ]
    same_xml(
        await run(admin, RESET, RESET_FORM, sessionid=sid, action="prev"),
        f"<iq type='error' id='c' from='localhost' to='{ADMIN}'><error type='modify'>"
        f"<bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>Action &apos;prev&apos; is"
        f" not allowed now</text><bad-action xmlns='{CMD}'/></error></iq>",
        (),
    )
    # the session is kept: execute (the default) with the form finishes it
    done = await run(admin, RESET, RESET_FORM, sessionid=sid, action="execute")
    command = done.find(f"{{{CMD}}}command")
    assert command is not None and command.get("status") == "completed"
    assert result_form(done)["uri"].startswith("xmpp:alice@localhost?register;")  # type: ignore[union-attr]


async def test_a_timed_out_session_has_expired(tmp_path: Path) -> None:
    options = {"admins": ["admin@localhost"], "adhoc_session_timeout": 0}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for name in ("admin", "alice"):
            await srv.create_user(name, "pw")
        admin = await connect(srv, "admin")
        sid = sessionid_of(await run(admin, RESET))  # over as soon as it is answered
        reply = await run(admin, RESET, RESET_FORM, sessionid=sid, action="complete")
        same_xml(reply, SESSION_EXPIRED.format(ADMIN), ())


async def test_ended_sessions_are_remembered_for_a_while(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = sys.modules["minixmpp.mod.adhoc"]
    monkeypatch.setattr(code, "ENDED_KEPT", 2)
    admin = await connect(server, "admin")
    sids = [sessionid_of(await run(admin, RESET)) for _ in range(3)]
    for sid in sids:
        await run(admin, RESET, sessionid=sid, action="cancel")
    # the oldest is forgotten past the bound; the others are known to have ended
    same_xml(await run(admin, RESET, sessionid=sids[0]), BAD_SESSIONID.format(ADMIN), ())
    same_xml(await run(admin, RESET, sessionid=sids[2]), SESSION_EXPIRED.format(ADMIN), ())
    monkeypatch.setattr(code, "ENDED_FOR", 0)  # and after a while, all are
    sid = sessionid_of(await run(admin, RESET))
    await run(admin, RESET, sessionid=sid, action="cancel")
    same_xml(await run(admin, RESET, sessionid=sid), BAD_SESSIONID.format(ADMIN), ())


async def test_the_session_limit_is_per_user_and_checked_first(server: TestServer) -> None:
    port, ca = server.c2s_port, server.ca_file
    desks = [(await login(port, ca, "admin", "pw", f"desk{i}"))[0] for i in range(3)]
    sids = []
    for i in range(10):  # the limit, spread over two resources of the same user
        sids.append(sessionid_of(await run(desks[i % 2], RESET)))
    invites = server.invites()
    before = len(await invites.list())
    # a third resource may not start another: refused before the command runs, so the
    # one-step account invite is not created
    same_xml(
        await run(desks[2], "urn:xmpp:invite#create-account"),
        "<iq type='error' id='c' from='localhost' to='admin@localhost/desk2'><error type='wait'>"
        f"<resource-constraint xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>Too many commands in"
        " progress</text></error></iq>",
        (),
    )
    assert len(await invites.list()) == before
    # running sessions go on; another user is not affected
    done = await run(desks[0], RESET, RESET_FORM, sessionid=sids[0], action="complete")
    assert done.find(f"{{{CMD}}}command").get("status") == "completed"  # type: ignore[union-attr]
    reply = await run(await connect(server, "alice"), "urn:xmpp:invite#invite")
    assert reply.get("type") == "result"
    # with one ended, a new one may start
    before = len(await invites.list())
    reply = await run(desks[2], "urn:xmpp:invite#create-account")
    assert reply.get("type") == "result" and len(await invites.list()) == before + 1


async def test_sessions_end_with_their_resource(server: TestServer) -> None:
    # A client that crashes in the middle of commands must not lock its user out of ad-hoc
    # commands until the sessions time out: a session belongs to its full JID and ends with it.
    crashy = (await login(server.c2s_port, server.ca_file, "admin", "pw", "crashy"))[0]
    sids = [sessionid_of(await run(crashy, RESET)) for _ in range(10)]
    fresh = (await login(server.c2s_port, server.ca_file, "admin", "pw", "fresh"))[0]
    refused = await run(fresh, "urn:xmpp:invite#invite")
    assert refused.find(f".//{{{STANZAS}}}resource-constraint") is not None
    await crashy.send("</stream:stream>")
    await crashy.closed()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while (reply := await run(fresh, "urn:xmpp:invite#invite")).get("type") == "error":
        assert reply.find(f".//{{{STANZAS}}}resource-constraint") is not None
        assert loop.time() < deadline, "the sessions of the closed resource still count"
        await asyncio.sleep(0.05)
    assert reply.find(f"{{{CMD}}}command").get("status") == "completed"  # type: ignore[union-attr]
    # the ended sessions cannot be continued by another resource either
    gone = await run(fresh, RESET, RESET_FORM, sessionid=sids[0], action="complete")
    assert gone.find(f".//{{{CMD}}}bad-sessionid") is not None


# -- XEP-0133 (mod_admin_adhoc) -------------------------------------------------------------

ADMIN_NS = "http://jabber.org/protocol/admin"


@pytest.fixture
async def admin_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(
        tmp_path, modules=["disco", "admin_adhoc"], options={"admins": ["admin@localhost"]}
    ) as srv:
        for name in ("admin", "alice"):
            await srv.create_user(name, "pw")
        yield srv


def submit(**values: str | list[str]) -> str:
    fields = "".join(
        f"<field var='{var}'>"
        + "".join(f"<value>{v}</value>" for v in ([value] if isinstance(value, str) else value))
        + "</field>"
        for var, value in values.items()
    )
    return (
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
        f"<value>{ADMIN_NS}</value></field>{fields}</x>"
    )


async def two_steps(client: RawClient, command: str, form: str) -> etree._Element:
    node = f"{ADMIN_NS}#{command}"
    first = await run(client, node, action="execute")
    sid = first.find(f"{{{CMD}}}command").get("sessionid", "")  # type: ignore[union-attr]
    return await run(client, node, form, sessionid=sid, action="complete")


def note_of(reply: etree._Element) -> tuple[str | None, str | None]:
    note = reply.find(f"{{{CMD}}}command/{{{CMD}}}note")
    assert note is not None, etree.tostring(reply)
    return note.get("type"), note.text


async def test_add_user_form_and_result(admin_server: TestServer) -> None:
    admin = await connect(admin_server, "admin")
    node = f"{ADMIN_NS}#add-user"
    first = await run(admin, node, action="execute")
    sid = first.find(f"{{{CMD}}}command").get("sessionid", "")  # type: ignore[union-attr]
    same_xml(
        first,
        f"<iq type='result' id='c' to='{ADMIN}' from='localhost'><command xmlns='{CMD}'"
        f" sessionid='{sid}' node='{node}' status='executing'>"
        "<actions execute='complete'><next/><complete/></actions>"
        "<x xmlns='jabber:x:data' type='form'><title>Adding a User</title><instructions>Fill"
        " out this form to add a user.</instructions><field var='FORM_TYPE' type='hidden'>"
        f"<value>{ADMIN_NS}</value></field><field var='accountjid' label='The Jabber ID for the"
        " account to be added' type='jid-single'><required/></field><field var='password'"
        " label='The password for this account' type='text-private'/><field"
        " var='password-verify' label='Retype password' type='text-private'/></x>"
        "</command></iq>",
        (),
    )
    form = submit(**{"accountjid": "sess1@localhost", "password": "p1", "password-verify": "p1"})
    done = await run(admin, node, form, sessionid=sid, action="complete")
    same_xml(
        done,
        f"<iq type='result' id='c' to='{ADMIN}' from='localhost'><command xmlns='{CMD}'"
        f" sessionid='{sid}' node='{node}' status='completed'><note type='info'>Account"
        " successfully created</note></command></iq>",
        (),
    )
    assert await admin_server.server.hosts["localhost"].users.exists("sess1")


def account(
    jid: str | None, password: str | None = "x", verify: str | None = "x"
) -> dict[str, str]:
    values = {"accountjid": jid, "password": password, "password-verify": verify}
    return {k: v for k, v in values.items() if v is not None}


MISMATCH = "Invalid data.\nPassword mismatch, or empty username"
ELSEWHERE = "Trying to add a user on other.example but command was sent to localhost"


@pytest.mark.parametrize(
    ("values", "note"),
    [
        (account("alice@localhost"), "Account already exists"),
        (account("new@localhost", verify="y"), MISMATCH),
        (account("new@localhost", None, None), MISMATCH),
        (account("bad@@jid"), "accountjid: Invalid JID: bad@@jid"),
        (account(None), "accountjid: Required value missing"),
        (account("new@other.example"), ELSEWHERE),
        (account("new@localhost", "a\tb", "a\tb"), "Invalid password: password fails SASLprep"),
    ],
)
async def test_add_user_problems(
    admin_server: TestServer, values: dict[str, str], note: str
) -> None:
    reply = await two_steps(await connect(admin_server, "admin"), "add-user", submit(**values))
    assert note_of(reply) == ("error", note)
    assert not await admin_server.server.hosts["localhost"].users.exists("new")


async def test_change_password_delete_and_end_sessions(admin_server: TestServer) -> None:
    admin = await connect(admin_server, "admin")
    alice = await connect(admin_server, "alice")
    form = submit(accountjid="alice@localhost", password="new-pw")
    reply = await two_steps(admin, "change-user-password", form)
    assert note_of(reply) == ("info", "Password successfully changed")
    assert await alice.stream_error() == ("reset", "Password changed")
    form = submit(accountjid="nobody@localhost", password="x")
    assert note_of(await two_steps(admin, "change-user-password", form)) == (
        "error",
        "User does not exist",
    )
    alice, _ = await login(admin_server.c2s_port, admin_server.ca_file, "alice", "new-pw", "x")
    reply = await two_steps(
        admin, "end-user-session", submit(accountjids=["alice@localhost", "nobody@localhost"])
    )
    assert note_of(reply) == (
        "info",
        "The following accounts were successfully disconnected:\nalice@localhost\n"
        "The following accounts could not be disconnected:\nnobody@localhost",
    )
    await alice.closed()
    reply = await two_steps(
        admin, "delete-user", submit(accountjids=["alice@localhost", "nobody@localhost"])
    )
    assert note_of(reply) == (
        "info",
        "The following accounts were successfully deleted:\nalice@localhost\n"
        "The following accounts could not be deleted:\nnobody@localhost",
    )
    assert not await admin_server.server.hosts["localhost"].users.exists("alice")


async def test_counts_and_lists(admin_server: TestServer) -> None:
    admin = await connect(admin_server, "admin")
    await connect(admin_server, "alice")
    registered = await run(admin, f"{ADMIN_NS}#get-registered-users-num")
    assert result_form(registered) == {"FORM_TYPE": ADMIN_NS, "registeredusersnum": "2"}
    online = await run(admin, f"{ADMIN_NS}#get-online-users-num")
    assert result_form(online)["onlineusersnum"] == "2"
    listed = await two_steps(admin, "get-online-users-list", submit(max_items="all"))
    x = listed.find(f"{{{CMD}}}command/{{jabber:x:data}}x")
    values = [v.text for v in x.iterfind("{*}field[@var='onlineuserjids']/{*}value")]  # type: ignore[union-attr]
    assert values == ["admin@localhost", "alice@localhost"]


async def give_alice_a_roster(server: TestServer) -> None:
    from minixmpp.roster import RosterItem

    rosters = server.server.hosts["localhost"].rosters
    for item in (
        RosterItem("bob@localhost", "Bob", "both", groups=("Friends", "Work")),
        RosterItem("carol@localhost", ask=True),
        RosterItem("dan@example.com", 'Dan "D" O\'Neil', "to"),
    ):
        await rosters.save("localhost", "alice", item)


async def test_get_user_roster(admin_server: TestServer) -> None:
    await give_alice_a_roster(admin_server)
    admin = await connect(admin_server, "admin")
    reply = await two_steps(admin, "get-user-roster", submit(accountjid="alice@localhost"))
    sid = reply.find(f"{{{CMD}}}command").get("sessionid")  # type: ignore[union-attr]
    # Prosody's: the serialised roster a line per tag, and the <query/> itself in the form
    lines = [
        "&lt;query xmlns=&apos;jabber:iq:roster&apos;&gt;",
        "&lt;item jid=&apos;bob@localhost&apos; subscription=&apos;both&apos;"
        " name=&apos;Bob&apos;&gt;",
        "&lt;group&gt;Friends&lt;/group&gt;",
        "&lt;group&gt;Work&lt;/group&gt;",
        "&lt;/item&gt;",
        "&lt;item jid=&apos;carol@localhost&apos; subscription=&apos;none&apos;"
        " ask=&apos;subscribe&apos;/&gt;",
        "&lt;item jid=&apos;dan@example.com&apos; subscription=&apos;to&apos;"
        " name=&apos;Dan &amp;quot;D&amp;quot; O&amp;apos;Neil&apos;/&gt;",
        "&lt;/query&gt;",
    ]
    same_xml(
        reply,
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{ADMIN_NS}#get-user-roster' sessionid='{sid}' status='completed'>"
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
        f"<value>{ADMIN_NS}</value></field><field var='accountjid' type='jid-single'"
        " label='This is the roster for'><value>alice@localhost</value></field>"
        "<field var='roster' type='text-multi' label='Roster XML'>"
        + "".join(f"<value>{line}</value>" for line in lines)
        + "</field><query xmlns='jabber:iq:roster'><item jid='bob@localhost'"
        " subscription='both' name='Bob'><group>Friends</group><group>Work</group></item>"
        "<item jid='carol@localhost' subscription='none' ask='subscribe'/><item"
        " jid='dan@example.com' subscription='to' name='Dan &quot;D&quot; O&apos;Neil'/>"
        "</query></x></command></iq>",
        (),
    )
    # an empty roster is one line; an unknown user a note
    reply = await two_steps(admin, "get-user-roster", submit(accountjid="admin@localhost"))
    x = reply.find(f"{{{CMD}}}command/{{jabber:x:data}}x")
    assert x is not None
    values = [v.text for v in x.iterfind("{*}field[@var='roster']/{*}value")]
    assert values == ["<query xmlns='jabber:iq:roster'/>"]
    assert len(x.findall("{jabber:iq:roster}query")) == 1
    reply = await two_steps(admin, "get-user-roster", submit(accountjid="nobody@localhost"))
    assert note_of(reply) == ("error", "User does not exist")


async def test_user_stats(admin_server: TestServer) -> None:
    await give_alice_a_roster(admin_server)
    admin = await connect(admin_server, "admin")
    await connect(admin_server, "alice")
    reply = await two_steps(admin, "user-stats", submit(accountjid="alice@localhost"))
    sid = reply.find(f"{{{CMD}}}command").get("sessionid")  # type: ignore[union-attr]
    same_xml(
        reply,
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{ADMIN_NS}#user-stats' sessionid='{sid}' status='completed'>"
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
        f"<value>{ADMIN_NS}</value></field><field var='ipaddresses' type='text-multi'"
        " label='IP Addresses'><value>127.0.0.1</value></field><field var='rostersize'"
        " type='text-single' label='Roster size'><value>3</value></field>"
        "<field var='onlineresources' type='text-multi' label='Online Resources'>"
        "<value>desk</value></field></x></command></iq>",
        (),
    )
    reply = await two_steps(admin, "user-stats", submit(accountjid="alice@other.example"))
    assert note_of(reply) == (
        "error",
        "Tried to get stats for a user on other.example but command was sent to localhost",
    )


async def test_online_users_form(admin_server: TestServer) -> None:
    admin = await connect(admin_server, "admin")
    node = f"{ADMIN_NS}#get-online-users-list"
    first = await run(admin, node)
    sid = first.find(f"{{{CMD}}}command").get("sessionid")  # type: ignore[union-attr]
    options = "".join(
        f"<option label='{n}'><value>{n}</value></option>"
        for n in ("25", "50", "75", "100", "150", "200", "all")
    )
    same_xml(
        first,
        f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
        f" node='{node}' sessionid='{sid}' status='executing'>"
        "<actions execute='complete'><next/><complete/></actions>"
        "<x xmlns='jabber:x:data' type='form'><title>Getting List of Online Users</title>"
        "<instructions>How many users should be returned at most?</instructions>"
        f"<field var='FORM_TYPE' type='hidden'><value>{ADMIN_NS}</value></field>"
        "<field var='max_items' type='list-single' label='Maximum number of users'>"
        f"{options}</field><field var='details' type='boolean' label='Show details'/>"
        "</x></command></iq>",
        (),
    )


async def test_a_user_may_not(admin_server: TestServer) -> None:
    alice = await connect(admin_server, "alice")
    assert len((await items(alice))[0]) == 0
    reply = await run(alice, f"{ADMIN_NS}#add-user")
    assert reply.find("{*}error/{*}forbidden") is not None
    assert reply.find(f"{{{CMD}}}command").get("status") == "canceled"  # type: ignore[union-attr]


XEP0401_FORM = (
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
    "<value>urn:xmpp:invite#invitation</value></field>{}</x>"
)


async def test_xep0401_forms_option(tmp_path: Path) -> None:
    options = {"admins": ["admin@localhost"], "invites_adhoc_form": "xep0401"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("admin", "pw")
        admin = await connect(srv, "admin")
        node = "urn:xmpp:invite#create-account"
        first = await run(admin, node)
        command = first.find(f"{{{CMD}}}command")
        assert command is not None and command.get("status") == "executing"
        x = command.find("{jabber:x:data}x")
        assert x is not None
        fields = [f.get("var") for f in x.iterchildren("{jabber:x:data}field")]
        assert fields == ["FORM_TYPE", "username", "roster-subscription"]
        form = XEP0401_FORM.format(
            "<field var='username'><value>Romeo</value></field>"
            "<field var='roster-subscription'><value>1</value></field>"
        )
        sid = command.get("sessionid", "")
        done = await run(admin, node, form, sessionid=sid)
        # XEP-0401 §5.4: an account invite's URI, for the chosen name; no empty landing-url
        values = result_form(done)
        uri = values["uri"] or ""
        assert re.fullmatch(r"xmpp:romeo@localhost\?register;preauth=[\w-]{24}", uri), uri
        same_xml(
            done,
            f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command xmlns='{CMD}'"
            f" node='{node}' sessionid='{sid}' status='completed'>"
            "<x xmlns='jabber:x:data' type='result'><title>Your invite has been created</title>"
            "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:invite#invitation</value>"
            "</field><field var='uri' label='Invite URI' type='text-single'><desc>This"
            f" alternative link can be opened with some XMPP clients</desc><value>{uri}</value>"
            "</field><field var='expire' label='Invite valid until' type='text-single'>"
            f"<value>{values['expire']}</value></field></x></command></iq>",
            (),
        )
        invite = await srv.invites().find(uri.rpartition("=")[2])
        # bound to that name, and befriends the inviter on sign-up (see tests/flows)
        assert invite is not None and invite.subject == "romeo" and invite.inviter == "admin"
        assert invite.allow_registration
        # no name, no subscription: a plain account invite for the host
        sid = sessionid_of(await run(admin, node))
        done = await run(admin, node, XEP0401_FORM.format(""), sessionid=sid)
        uri = result_form(done)["uri"] or ""
        assert re.fullmatch(r"xmpp:localhost\?register;preauth=[\w-]{24}", uri), uri
        invite = await srv.invites().find(uri.rpartition("=")[2])
        assert invite is not None and invite.kind == "account" and invite.inviter is None
        # a name that is taken or invalid gets no invite that could never work
        for name, problem in (("Admin", "already taken"), ("a@b", "invalid")):
            before = len(await srv.invites().list())
            sid = sessionid_of(await run(admin, node))
            form = XEP0401_FORM.format(f"<field var='username'><value>{name}</value></field>")
            same_xml(
                await run(admin, node, form, sessionid=sid, action="complete"),
                f"<iq type='result' id='c' from='localhost' to='{ADMIN}'><command"
                f" xmlns='{CMD}' node='{node}' sessionid='{sid}' status='completed'><note"
                f" type='error'>username: The username is {problem}</note></command></iq>",
                (),
            )
            assert len(await srv.invites().list()) == before


async def test_xep0401_landing_url_after_the_uri(tmp_path: Path) -> None:
    options = {
        "admins": ["admin@localhost"],
        "invites_adhoc_form": "xep0401",
        "invites_page": "https://example.com/i/{invite.token}",
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("admin", "pw")
        reply = await run(await connect(srv, "admin"), "urn:xmpp:invite#invite")
        x = reply.find(f"{{{CMD}}}command/{{jabber:x:data}}x")
        assert x is not None
        fields = [f.get("var") for f in x.iterchildren("{jabber:x:data}field")]
        assert fields == ["FORM_TYPE", "uri", "landing-url", "expire"]
        values = result_form(reply)
        token = (values["uri"] or "").split("preauth=")[1].split(";")[0]
        assert values["landing-url"] == f"https://example.com/i/{token}"
