"""Message delivery to a local user (RFC 6121 §8.5), stanza by stanza: which of bob's resources
get a message to his bare or full JID, what is dropped, what bounces, what waits offline.

The basic cases (to a bare and a full JID, to the highest priority, to nobody) are in
tests/core/test_router.py; these are the rest. A stanza that must not arrive is checked by a
later one from the same sender arriving first: a session's stanzas are handled in order.
"""

from __future__ import annotations

from minixmpp.testing import TestServer
from tests.xmpp import RawClient, login, receives

A = "alice@localhost/r1"
SU = (
    "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
    "</error>"
)
GONE = "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
DELAY = "<delay xmlns='urn:xmpp:delay' from='localhost' stamp=''/>"


async def alice(server: TestServer) -> RawClient:
    """alice/r1, bound but not available: she only sends."""
    client, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret", "r1")
    return client


async def bob(
    server: TestServer, resource: str, priority: int | None, *available: RawClient
) -> RawClient:
    """bob/``resource``, available at ``priority`` (None: bound, no presence sent).
    ``available``: bob's resources already available, which see this one come online."""
    client, jid = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", resource)
    if priority is None:
        return client
    await client.send(f"<presence><priority>{priority}</priority></presence>")
    seen = [(await client.expect("presence")).get("from") for _ in range(len(available) + 1)]
    assert len(seen) == len(set(seen)) and jid in seen  # its echo, and each other resource's
    for other in available:
        assert (await other.expect("presence")).get("from") == jid
    return client


def message(to: str, body: str, *, type: str | None = None, id: str, extra: str = "") -> str:
    """A message from alice as bob's resources receive it."""
    type_attr = f" type='{type}'" if type else ""
    return (
        f"<message to='{to}'{type_attr} id='{id}' from='{A}' xml:lang='en'>"
        f"<body>{body}</body>{extra}</message>"
    )


async def test_chat_and_normal_to_the_bare_jid_reach_every_top_priority_resource(
    server: TestServer,
) -> None:
    sender = await alice(server)
    one = await bob(server, "one", 5)
    two = await bob(server, "two", 5, one)
    low = await bob(server, "low", 1, one, two)
    await sender.send("<message to='bob@localhost' type='chat' id='c'><body>chat</body></message>")
    await sender.send("<message to='bob@localhost' id='n'><body>normal</body></message>")
    await sender.send(
        "<message to='bob@localhost' type='normal' id='n2'><body>normal too</body></message>"
    )
    # an error is for no resource (RFC 6121 §8.5.2.1.1): silently ignored
    await sender.send(f"<message to='bob@localhost' type='error' id='e'>{GONE}</message>")
    await sender.send("<message to='bob@localhost/low' type='chat' id='last'><body/></message>")
    expected = [
        message("bob@localhost", "chat", type="chat", id="c"),
        message("bob@localhost", "normal", id="n"),
        message("bob@localhost", "normal too", type="normal", id="n2"),
    ]
    await receives(one, *expected)
    await receives(two, *expected)
    await receives(low, message("bob@localhost/low", "", type="chat", id="last"))
    await receives(sender)


async def test_headline_to_the_bare_jid_reaches_every_non_negative_resource(
    server: TestServer,
) -> None:
    sender = await alice(server)
    high = await bob(server, "high", 5)
    low = await bob(server, "low", 1, high)
    zero = await bob(server, "zero", 0, high, low)
    negative = await bob(server, "negative", -1, high, low, zero)
    idle = await bob(server, "idle", None)  # connected, never available
    await sender.send(
        "<message to='bob@localhost' type='headline' id='h'><body>news</body></message>"
    )
    for resource in ("negative", "idle"):
        await sender.send(
            f"<message to='bob@localhost/{resource}' type='chat' id='after'><body/></message>"
        )
    headline = message("bob@localhost", "news", type="headline", id="h")
    for client in (high, low, zero):
        await receives(client, headline)
    await receives(negative, message("bob@localhost/negative", "", type="chat", id="after"))
    await receives(idle, message("bob@localhost/idle", "", type="chat", id="after"))
    await receives(sender)


async def test_to_the_full_jid_of_a_negative_priority_or_unavailable_resource(
    server: TestServer,
) -> None:
    # RFC 6121 §8.5.3.1: a resource that exactly matches gets it, whatever its priority, and
    # even if it has sent no presence: not re-routed as if to the bare JID.
    sender = await alice(server)
    high = await bob(server, "high", 5)
    negative = await bob(server, "negative", -1, high)
    idle = await bob(server, "idle", None)
    kinds = ("chat", None, "headline", "groupchat")
    for target in ("negative", "idle"):
        for i, kind in enumerate(kinds):
            type_attr = f" type='{kind}'" if kind else ""
            await sender.send(
                f"<message to='bob@localhost/{target}'{type_attr} id='m{i}'>"
                f"<body>{kind or 'normal'}</body></message>"
            )
    await sender.send("<message to='bob@localhost/high' type='chat' id='last'><body/></message>")
    for client, target in ((negative, "negative"), (idle, "idle")):
        await receives(
            client,
            *(
                message(f"bob@localhost/{target}", kind or "normal", type=kind, id=f"m{i}")
                for i, kind in enumerate(kinds)
            ),
        )
    await receives(high, message("bob@localhost/high", "", type="chat", id="last"))
    await receives(sender)


async def test_groupchat_normal_and_error_to_a_resource_that_is_not_there(
    server: TestServer,
) -> None:
    # RFC 6121 §8.5.3.2.1, bob/gone not connected while bob/here is available: a groupchat and
    # a normal message bounce with service-unavailable (the allowed "return an error"; Prosody
    # delivers a normal one as if to the bare JID), from the full JID they were sent to; an
    # error is silently ignored. None goes to bob/here.
    sender = await alice(server)
    here = await bob(server, "here", 0)
    await sender.send(
        "<message to='bob@localhost/gone' type='groupchat' id='g'><body>room</body></message>"
    )
    await sender.send("<message to='bob@localhost/gone' id='n'><body>hi</body></message>")
    await sender.send(f"<message to='bob@localhost/gone' type='error' id='e'>{GONE}</message>")
    await sender.send("<message to='bob@localhost/here' type='chat' id='last'><body/></message>")
    await receives(
        sender,
        f"<message to='{A}' id='g' from='bob@localhost/gone' type='error'>{SU}</message>",
        f"<message to='{A}' id='n' from='bob@localhost/gone' type='error'>{SU}</message>",
    )
    await receives(here, message("bob@localhost/here", "", type="chat", id="last"))


async def test_an_error_to_an_offline_user_is_not_stored(server: TestServer) -> None:
    # bob exists, with no resource: an error is silently ignored (RFC 6121 §8.5.2.2.1), never
    # stored; a normal message, and a chat to a resource that is gone (§8.5.3.2.1), are.
    sender = await alice(server)
    await sender.send(f"<message to='bob@localhost' type='error' id='e'>{GONE}</message>")
    await sender.send("<message to='bob@localhost' id='n'><body>stored</body></message>")
    await sender.send(f"<message to='bob@localhost/gone' type='error' id='e2'>{GONE}</message>")
    await sender.send(
        "<message to='bob@localhost/gone' type='chat' id='c'><body>also</body></message>"
    )
    await receives(sender)
    phone, _ = await login(server.c2s_port, server.ca_file, "bob", "bob-secret", "phone")
    await phone.send("<presence/>")
    await receives(
        phone,
        "<presence from='bob@localhost/phone' xml:lang='en'/>",
        message("bob@localhost", "stored", id="n", extra=DELAY),
        message("bob@localhost/gone", "also", type="chat", id="c", extra=DELAY),
    )
