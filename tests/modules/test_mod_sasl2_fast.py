"""FAST (XEP-0484) on the wire: tokens asked for at a password login, logins with them (each
HT mechanism, channel-bound or not), what binds a token (mechanism, client, account, password,
expiry), rotation, invalidation, the replay counter, the cap per account, and that tokens are
neither stored nor logged."""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from minixmpp.testing import TestServer, running_server
from tests.sasl2 import (
    MODULES,
    NS_FAST,
    NS_SASL2,
    UA_ID,
    agent,
    bind2,
    condition,
    connect,
    end_point,
    fast,
    identifier,
    request_token,
    scram,
    token_of,
)
from tests.xmpp import NS_STREAM, RawClient, same_xml

SUCCESS = f"{{{NS_SASL2}}}success"
OTHER_UA = "0b7a6a58-9e2c-4a8c-a5a4-2a7b3b2c0f11"
DAY = 86400


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=[*MODULES, "register"]) as srv:
        await srv.create_user("alice", "alice-secret")
        srv.clock.freeze()
        yield srv


async def new_token(
    server: TestServer,
    mechanism: str = "HT-SHA-256-NONE",
    ua: str = UA_ID,
    maximum: ssl.TLSVersion | None = None,
) -> str:
    """A password login that asks for a token; the token."""
    client, _ = await connect(server, maximum)
    result = await scram(
        client, "alice", "alice-secret", extra=agent(ua) + request_token(mechanism)
    )
    assert result.reply.tag == SUCCESS, etree.tostring(result.reply)
    await client.close()
    return token_of(result.reply)[0]


async def fast_login(
    server: TestServer, token: str, mechanism: str = "HT-SHA-256-NONE", **kwargs: str
) -> etree._Element:
    client, _ = await connect(server)
    return await fast(client, "alice", token, mechanism, **kwargs)


async def test_fast_is_offered_inline_with_the_bindings_tls_allows(server: TestServer) -> None:
    _, features = await connect(server)
    fast_el = features.find(f"{{{NS_SASL2}}}authentication/{{{NS_SASL2}}}inline/{{{NS_FAST}}}fast")
    assert fast_el is not None
    same_xml(
        fast_el,
        f"<fast xmlns='{NS_FAST}'><mechanism>HT-SHA-256-ENDP</mechanism>"
        "<mechanism>HT-SHA-256-NONE</mechanism></fast>",
    )
    _, features = await connect(server, ssl.TLSVersion.TLSv1_2)
    offered = features.findall(f".//{{{NS_FAST}}}fast/{{{NS_FAST}}}mechanism")
    assert [m.text for m in offered] == ["HT-SHA-256-UNIQ", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]


async def test_a_token_for_a_password_login_then_a_login_with_it(server: TestServer) -> None:
    client, _ = await connect(server)
    extra = agent() + bind2("Awesome") + request_token()
    result = await scram(client, "alice", "alice-secret", extra=extra)
    token, expiry = token_of(result.reply)
    assert token.startswith("secret-token:fast-") and len(token) == 90
    expires = datetime.datetime.fromtimestamp(int(server.clock.time()) + 21 * DAY, datetime.UTC)
    assert expiry == expires.strftime("%Y-%m-%dT%H:%M:%SZ")  # in 21 days, as Prosody
    jid = identifier(result.reply)
    await client.close()

    client, _ = await connect(server)
    reply = await fast(client, "alice", token, extra=agent() + bind2("Awesome"))
    # the responder HMAC was checked by the helper
    assert reply.tag == SUCCESS
    assert [etree.QName(e).localname for e in reply] == [
        "additional-data",
        "authorization-identifier",
        "bound",
    ]  # no new token: not asked for, not due
    assert identifier(reply) == jid  # Bind 2 gives the same client the same resource
    assert (await client.next()).tag == f"{{{NS_STREAM}}}features"
    pong = await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert pong.get("type") == "result"


async def test_channel_bound_tokens(server: TestServer) -> None:
    endp = await new_token(server, "HT-SHA-256-ENDP")
    client, _ = await connect(server)
    reply = await fast(client, "alice", endp, "HT-SHA-256-ENDP", cb=end_point(client))
    assert reply.tag == SUCCESS
    client, _ = await connect(server)  # another connection's binding data: refused
    assert condition(await fast(client, "alice", endp, "HT-SHA-256-ENDP", cb=b"\0" * 32)) == (
        "not-authorized"
    )

    uniq = await new_token(server, "HT-SHA-256-UNIQ", ua=OTHER_UA, maximum=ssl.TLSVersion.TLSv1_2)
    client, _ = await connect(server, ssl.TLSVersion.TLSv1_2)
    unique = client.ssl_object.get_channel_binding("tls-unique")
    assert unique is not None
    reply = await fast(client, "alice", uniq, "HT-SHA-256-UNIQ", cb=unique, extra=agent(OTHER_UA))
    assert reply.tag == SUCCESS
    # -UNIQ is not offered on TLS 1.3 (RFC 9266)
    client, _ = await connect(server)
    assert condition(await fast(client, "alice", uniq, "HT-SHA-256-UNIQ", cb=unique)) == (
        "invalid-mechanism"
    )


async def test_what_a_token_is_bound_to(server: TestServer) -> None:
    token = await new_token(server)
    # its mechanism: not another one, even with the right binding data
    client, _ = await connect(server)
    reply = await fast(client, "alice", token, "HT-SHA-256-ENDP", cb=end_point(client))
    same_xml(
        reply,
        f"<failure xmlns='{NS_SASL2}'>"
        "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>",
    )
    # its client installation
    assert condition(await fast_login(server, token, extra=agent(OTHER_UA))) == "not-authorized"
    # its account
    await server.create_user("bob", "bob-secret")
    client, _ = await connect(server)
    assert condition(await fast(client, "bob", token)) == "not-authorized"
    # and itself
    other = token[:-1] + ("B" if token.endswith("A") else "A")  # one in 64 tokens ends in A
    assert condition(await fast_login(server, other)) == "not-authorized"
    assert (await fast_login(server, token)).tag == SUCCESS


@pytest.mark.parametrize(
    ("extra", "fast_attrs", "expected", "text"),
    [
        (agent(None), "", "malformed-request", "FAST is not available on this stream"),
        ("", "", "malformed-request", "FAST is not available on this stream"),
        (agent(), " count='0'", "malformed-request", "Invalid FAST count"),
        (agent(), " count='x1'", "malformed-request", "Invalid FAST count"),
        (agent(), f" count='{'9' * 5000}'", "malformed-request", "Invalid FAST count"),
        (agent(), f" count='{2**63}'", "malformed-request", "Invalid FAST count"),
    ],
)
async def test_fast_refusals(
    server: TestServer, extra: str, fast_attrs: str, expected: str, text: str
) -> None:
    token = await new_token(server)
    client, _ = await connect(server)
    reply = await fast(client, "alice", token, extra=extra, fast_attrs=fast_attrs)
    assert condition(reply) == expected
    assert reply.findtext(f"{{{NS_SASL2}}}text") == text
    assert (await fast(client, "alice", token)).tag == SUCCESS  # the stream goes on


async def test_fast_with_a_password_mechanism_is_refused(server: TestServer) -> None:
    client, _ = await connect(server)
    result = await scram(
        client, "alice", "alice-secret", extra=agent() + f"<fast xmlns='{NS_FAST}'/>"
    )
    assert condition(result.reply) == "invalid-mechanism"


@pytest.mark.parametrize("used", [False, True], ids=["new", "used"])
async def test_an_expired_token(server: TestServer, used: bool) -> None:
    token = await new_token(server)
    if used:  # in the 'cur' slot, whose logins do not write
        assert (await fast_login(server, token)).tag == SUCCESS
    server.clock.advance(21 * DAY + 1)
    same_xml(
        await fast_login(server, token),
        f"<failure xmlns='{NS_SASL2}'>"
        "<credentials-expired xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>",
    )
    assert condition(await fast_login(server, token)) == "not-authorized"  # it was dropped


async def test_rotation(server: TestServer) -> None:
    first = await new_token(server)
    assert (await fast_login(server, first)).find(f"{{{NS_FAST}}}token") is None
    server.clock.advance(DAY + 1)  # sasl2_fast_token_min_ttl: due for rotation
    reply = await fast_login(server, first)
    second, _ = token_of(reply)  # given without being asked for
    # The client may not have got it: the one it has still works (and gets a successor)...
    third, _ = token_of(await fast_login(server, first))
    assert condition(await fast_login(server, second)) == "not-authorized"  # never used: gone
    # ...until the newest one is used: then the older one is void.
    assert (await fast_login(server, third)).find(f"{{{NS_FAST}}}token") is None
    assert condition(await fast_login(server, first)) == "not-authorized"
    assert (await fast_login(server, third)).tag == SUCCESS


async def test_invalidate(server: TestServer) -> None:
    token = await new_token(server)
    assert (await fast_login(server, token)).tag == SUCCESS  # used: in the 'cur' slot
    reply = await fast_login(server, token, fast_attrs=" invalidate='true'")
    assert reply.tag == SUCCESS and reply.find(f"{{{NS_FAST}}}token") is None
    assert condition(await fast_login(server, token)) == "not-authorized"
    # invalidating and asking for a new one at once
    token = await new_token(server)
    server.clock.advance(DAY + 1)  # due, but invalidate gives nothing unless asked for
    assert (await fast_login(server, token, fast_attrs=" invalidate='1'")).find(
        f"{{{NS_FAST}}}token"
    ) is None
    token = await new_token(server)
    reply = await fast_login(
        server, token, fast_attrs=" invalidate='1'", extra=agent() + request_token()
    )
    fresh, _ = token_of(reply)
    assert condition(await fast_login(server, token)) == "not-authorized"
    assert (await fast_login(server, fresh)).tag == SUCCESS


async def test_the_count_must_increase(server: TestServer) -> None:
    token = await new_token(server)
    assert (await fast_login(server, token, fast_attrs=" count='5'")).tag == SUCCESS
    replayed = await fast_login(server, token, fast_attrs=" count='5'")
    assert condition(replayed) == "not-authorized"
    assert replayed.findtext(f"{{{NS_SASL2}}}text") == "FAST count must increase"
    assert condition(await fast_login(server, token, fast_attrs=" count='4'")) == "not-authorized"
    assert (await fast_login(server, token, fast_attrs=" count='6'")).tag == SUCCESS
    assert (await fast_login(server, token)).tag == SUCCESS  # no count: not TLS 0-RTT


async def test_a_password_change_voids_every_token(server: TestServer) -> None:
    token = await new_token(server)
    assert (await fast_login(server, token)).tag == SUCCESS  # used: in the 'cur' slot
    other = await new_token(server, ua=OTHER_UA)  # never used: in the 'new' slot
    # the user changes the password in-band (XEP-0077) from a third client
    client, _ = await connect(server)
    await scram(
        client,
        "alice",
        "alice-secret",
        extra=agent("3f0e3b7c-1d9a-4c1e-9c47-0d5b8e6f2a10") + bind2(),
    )
    await client.expect(f"{{{NS_STREAM}}}features")
    changed = await client.iq(
        "<query xmlns='jabber:iq:register'><username>alice</username>"
        "<password>a-new-secret</password></query>",
        type="set",
    )
    assert changed.get("type") == "result"
    assert condition(await fast_login(server, token)) == "credentials-expired"
    assert (
        condition(await fast_login(server, other, extra=agent(OTHER_UA))) == "credentials-expired"
    )
    assert condition(await fast_login(server, token)) == "not-authorized"  # dropped
    # a reset that keeps sessions (an invite's) voids them too; a new login gets a new one
    client, _ = await connect(server)
    result = await scram(client, "alice", "a-new-secret", extra=agent() + request_token())
    fresh, _ = token_of(result.reply)
    host = server.server.hosts["localhost"]
    assert await host.users.set_password("alice", "third-secret", close_sessions=False)
    assert condition(await fast_login(server, fresh)) == "credentials-expired"


async def test_a_deleted_account_takes_its_tokens(server: TestServer) -> None:
    token = await new_token(server)
    host = server.server.hosts["localhost"]
    assert await host.users.delete("alice")
    await server.create_user("alice", "alice-secret")  # someone else, the same name
    assert condition(await fast_login(server, token)) == "not-authorized"


async def test_tokens_are_stored_hashed_and_never_logged(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    token = await new_token(server)
    assert (await fast_login(server, token)).tag == SUCCESS
    random_part = token.removeprefix("secret-token:fast-")
    stored = b"".join(p.read_bytes() for p in server.data_path.glob("minixmpp.sqlite*"))
    assert random_part.encode() not in stored and random_part[8:40].encode() not in stored
    key = base64.b64encode(hashlib.sha256(token.encode()).digest())
    assert key in stored  # what is kept: the token's SHA-256
    logged = caplog.text
    assert "SEND" in logged and "fast" in logged  # the wire log was on
    assert random_part[4:] not in logged and random_part[10:30] not in logged
    assert f'token="secret-token:fast-{random_part[:4]}\\xe2\\x80\\xa6"' in logged  # "…"


async def test_tokens_per_account_are_capped(tmp_path: Path) -> None:
    options = {"sasl2_fast_max_tokens": 2}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        srv.clock.freeze()
        clients = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(3)]
        tokens = []
        for ua in clients:
            tokens.append(await new_token(srv, ua=ua))
            srv.clock.advance(1)
        # the third client's token pushed the oldest client's out
        assert condition(await fast_login(srv, tokens[0], extra=agent(clients[0]))) == (
            "not-authorized"
        )
        for ua, token in zip(clients[1:], tokens[1:], strict=True):
            assert (await fast_login(srv, token, extra=agent(ua))).tag == SUCCESS


async def test_wrong_tokens_count_as_failed_logins(tmp_path: Path) -> None:
    options = {"limit_auth_max": 2, "limit_auth_period": 3600, "unlimited_ips": []}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        srv.clock.freeze()
        token = await new_token(srv)
        client, _ = await connect(srv)
        for _ in range(2):
            assert condition(await fast(client, "alice", "secret-token:fast-" + "x" * 72)) == (
                "not-authorized"
            )
        assert condition(await fast(client, "alice", token)) == "temporary-auth-failure"


async def test_no_token_without_a_user_agent_id(server: TestServer) -> None:
    client, _ = await connect(server)
    result = await scram(client, "alice", "alice-secret", extra=agent(None) + request_token())
    assert result.reply.tag == SUCCESS
    assert result.reply.find(f"{{{NS_FAST}}}token") is None
    # nor for a mechanism that is not offered
    client, _ = await connect(server)
    result = await scram(
        client, "alice", "alice-secret", extra=agent() + request_token("HT-SHA-256-EXPR")
    )
    assert result.reply.find(f"{{{NS_FAST}}}token") is None


async def test_unknown_user(server: TestServer) -> None:
    token = await new_token(server)
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    assert condition(await fast(client, "nobody", token)) == "not-authorized"
    assert condition(await fast(client, "not a name@", token)) == "not-authorized"
