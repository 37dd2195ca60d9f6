"""Journeys with an unmodified XMPP client: slixmpp 1.17 logs in and talks to another client."""

from __future__ import annotations

import ssl

import pytest

from minixmpp.testing import TestServer
from tests.xmpp import SlixClient, slix_login


async def connect(server: TestServer, user: str, **kwargs: object) -> SlixClient:
    return await slix_login(
        server.c2s_port if not kwargs.get("direct_tls") else server.direct_tls_port,
        server.ca_file,
        f"{user}@localhost/slix",
        f"{user}-secret",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
async def test_starttls_login_with_each_mechanism(server: TestServer, mechanism: str) -> None:
    client = await connect(server, "alice", mechanism=mechanism)
    assert client.jid == "alice@localhost/slix"
    assert client.client.socket.version() == "TLSv1.3"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
async def test_scram_plus_over_tls12(server: TestServer, mechanism: str) -> None:
    # slixmpp binds with tls-unique, which only exists on TLS 1.2
    client = await connect(server, "alice", mechanism=mechanism, tls_maximum=ssl.TLSVersion.TLSv1_2)
    assert client.client.socket.version() == "TLSv1.2"
    assert client.jid == "alice@localhost/slix"


async def test_direct_tls_login(server: TestServer) -> None:
    client = await connect(server, "bob", direct_tls=True)
    assert client.jid == "bob@localhost/slix"


async def test_default_mechanism_choice(server: TestServer) -> None:
    assert (await connect(server, "carol")).jid == "carol@localhost/slix"


async def test_wrong_password(server: TestServer) -> None:
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(server.c2s_port, server.ca_file, "alice@localhost", "wrong")


async def test_messages_between_two_clients(server: TestServer) -> None:
    alice = await connect(server, "alice")
    bob = await connect(server, "bob")
    alice.client.send_message(mto="bob@localhost", mbody="hello bare", mtype="chat")
    msg = await bob.next_message()
    assert (str(msg["from"]), msg["body"], msg["type"]) == (alice.jid, "hello bare", "chat")
    bob.client.send_message(mto=alice.jid, mbody="hello full", mtype="chat")
    msg = await alice.next_message()
    assert (str(msg["from"]), msg["body"]) == (bob.jid, "hello full")


async def test_ping_and_disco(server: TestServer) -> None:
    alice = await connect(server, "alice")
    rtt = await alice.client.plugin["xep_0199"].ping("localhost", timeout=5)
    assert rtt is not None and rtt >= 0
    info = await alice.client.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
    features = info["disco_info"]["features"]
    assert {"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"} <= set(features)
    identities = info["disco_info"]["identities"]
    assert ("server", "im", None, "minixmpp") in identities
    bob = await connect(server, "bob")
    rtt = await alice.client.plugin["xep_0199"].ping(bob.jid, timeout=5)  # answered by bob's client
    assert rtt is not None
