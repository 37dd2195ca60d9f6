"""A host's ``authentication``: anonymous (SASL ANONYMOUS, XEP-0175) and insecure (any
password), as test suites use them; and allow_unencrypted_plain_auth."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from minixmpp.config import ConfigError
from minixmpp.testing import XmppServer
from tests.xmpp import NS_SASL, RawClient

ANON, ANY = "anon.localhost", "any.localhost"


@pytest.fixture
async def server() -> AsyncIterator[XmppServer]:
    async with XmppServer(
        modules=["ping"], users={"alice": "pw"}, anonymous_host=ANON, any_password_host=ANY
    ) as srv:
        yield srv


async def secure_stream(srv: XmppServer, host: str) -> tuple[RawClient, list[str]]:
    client = await RawClient.connect(srv.c2s_port)
    await client.open(host)
    features = await client.starttls(srv.ca_file, host=host)
    names = [m.text or "" for m in features.iter(f"{{{NS_SASL}}}mechanism")]
    return client, names


async def auth(client: RawClient, mechanism: str, payload: bytes) -> etree._Element:
    data = base64.b64encode(payload).decode() or "="
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{data}</auth>")
    return await client.next()


async def bound_jid(client: RawClient, host: str) -> str:
    await client.open(host)
    return await client.bind()


async def test_anonymous_logins_get_a_new_account_that_goes_with_them(server: XmppServer) -> None:
    client, names = await secure_stream(server, ANON)
    assert names == ["ANONYMOUS"]
    assert (await auth(client, "ANONYMOUS", b"trace")).tag == f"{{{NS_SASL}}}success"
    jid = await bound_jid(client, ANON)
    user, _, rest = jid.partition("@")
    assert rest.startswith(ANON + "/") and len(user) == 36  # a UUID
    users = server.server.hosts[ANON].users
    assert await users.exists(user)
    other, _ = await secure_stream(server, ANON)
    await auth(other, "ANONYMOUS", b"")
    other_jid = await bound_jid(other, ANON)
    assert other_jid.split("@")[0] != user  # another one each time
    await client.send(f"<message to='{other_jid}' type='chat'><body>x</body></message>")
    assert (await other.expect("message")).findtext("body") == "x"
    await client.send("</stream:stream>")
    await client.closed()
    await server.wait_for("user-deleted")
    assert not await users.exists(user)  # gone with its last session
    # the main host is not anonymous
    main, names = await secure_stream(server, "localhost")
    assert "ANONYMOUS" not in names
    assert (await auth(main, "ANONYMOUS", b"")).find(f"{{{NS_SASL}}}invalid-mechanism") is not None


async def test_any_password_host(server: XmppServer) -> None:
    client, names = await secure_stream(server, ANY)
    assert names == ["PLAIN"]
    assert (await auth(client, "PLAIN", b"\0bob\0whatever")).tag == f"{{{NS_SASL}}}success"
    assert (await bound_jid(client, ANY)).startswith(f"bob@{ANY}/")
    again, _ = await secure_stream(server, ANY)
    assert (await auth(again, "PLAIN", b"\0bob\0something else")).tag == f"{{{NS_SASL}}}success"
    refused, _ = await secure_stream(server, ANY)
    failure = await auth(refused, "PLAIN", b"\0\0x")
    assert failure.find(f"{{{NS_SASL}}}malformed-request") is not None
    # the main host still checks passwords
    main, _ = await secure_stream(server, "localhost")
    failure = await auth(main, "PLAIN", b"\0alice\0wrong")
    assert failure.find(f"{{{NS_SASL}}}not-authorized") is not None


async def test_plain_without_tls_only_when_allowed() -> None:
    async with XmppServer(plaintext=True, users={"alice": "pw"}) as srv:
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        names = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert "PLAIN" not in names and "SCRAM-SHA-1" in names
    options = {"allow_unencrypted_plain_auth": True}
    async with XmppServer(plaintext=True, users={"alice": "pw"}, options=options) as srv:
        client = await RawClient.connect(srv.c2s_port)
        features = await client.open()
        assert "PLAIN" in [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        assert (await auth(client, "PLAIN", b"\0alice\0pw")).tag == f"{{{NS_SASL}}}success"


async def test_an_unknown_kind_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="authentication must be one of"):
        async with XmppServer(options={"authentication": "ldap"}):
            pass
