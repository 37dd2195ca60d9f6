"""The onboarding journey as a 2026 client makes it: Alice invites a friend; the friend's app
redeems the invite and registers (slixmpp, as Conversations does: preauth, then in-band
registration), logs in with SASL2 + Bind 2 asking for a FAST token, and from then on logs in
with the token alone: one round trip, no password kept, and Alice is in the roster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.sasl2 import (
    MODULES,
    NS_FAST,
    NS_SASL2,
    agent,
    bind2,
    connect,
    fast,
    identifier,
    request_token,
    scram,
    token_of,
)
from tests.xmpp import NS_STREAM, register_preauth_stanza, slix_login

register_preauth_stanza()

APP = "5c0b7e9a-6a61-4f0e-9d8c-2f1f3d1a7b42"  # the new user's app installation


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    modules = [*MODULES, "roster", "presence", "register", "invites", "invites_register"]
    async with running_server(tmp_path, modules=modules) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


async def test_invite_then_sasl2_then_fast(server: TestServer) -> None:
    invite = await server.invites().create_contact("alice", allow_registration=True)
    alice = await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost/desk", "alice-secret", roster=True
    )

    # The friend's app redeems the invite and registers; it keeps no password afterwards.
    signup = await slix_login(
        server.c2s_port,
        server.ca_file,
        "friend@localhost/setup",
        "first-and-last-password",
        register=True,
        preauth=invite.token,
    )
    await signup.disconnect()

    # First real login: SASL2 + Bind 2 (carbons on), asking for a FAST token.
    client, features = await connect(server)
    assert features.find(f".//{{{NS_SASL2}}}inline/{{{NS_FAST}}}fast") is not None
    extra = agent(APP) + bind2("Phone", "<enable xmlns='urn:xmpp:carbons:2'/>") + request_token()
    result = await scram(client, "friend", "first-and-last-password", extra=extra)
    assert result.reply.tag == f"{{{NS_SASL2}}}success"
    token, _ = token_of(result.reply)
    jid = identifier(result.reply)
    assert jid.startswith("friend@localhost/Phone~")
    await client.close()

    # Every login after: the token, in one round trip.
    client, _ = await connect(server)
    reply = await fast(client, "friend", token, extra=agent(APP) + bind2("Phone"))
    assert reply.tag == f"{{{NS_SASL2}}}success"
    assert identifier(reply) == jid
    assert (await client.next()).tag == f"{{{NS_STREAM}}}features"
    roster = await client.iq("<query xmlns='jabber:iq:roster'/>")
    item = roster.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
    assert item is not None
    assert (item.get("jid"), item.get("subscription")) == ("alice@localhost", "both")
    await client.send("<presence/>")
    await client.expect_where("presence", from_="alice@localhost/desk")
    alice.client.send_message(mto="friend@localhost", mbody="welcome!", mtype="chat")
    message = await client.expect("message")
    assert (message.get("from"), message.findtext("body")) == ("alice@localhost/desk", "welcome!")
