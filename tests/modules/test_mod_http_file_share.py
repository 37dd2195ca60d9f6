"""HTTP File Upload (XEP-0363), the XMPP side over real sockets: discovery, slot requests and
their errors as Prosody 0.12.3 answers them (recorded against a live Prosody with
``http_file_share_size_limit = 1000`` and ``http_file_share_daily_quota = 2500``), quotas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.clock import stamp
from minixmpp.errors import ModuleError
from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.stored import stored
from tests.upload import NS, ask, http, new_slot, request_xml, slot_of
from tests.upload import stored as stored_files
from tests.xmpp import RawClient, login, same_xml, stanza_error, until_pong

INFO = "http://jabber.org/protocol/disco#info"
MODULES = ["disco", "ping", "http_file_share"]
LIMITS = {"http_file_share_size_limit": 1000, "http_file_share_daily_quota": 2500}
STILL = {"c2s_idle_timeout": 0}  # the clock moves by days: no stream may time out


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES, options={**LIMITS, **STILL}) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        yield server


async def alice_of(srv: TestServer) -> RawClient:
    client, _ = await login(srv.c2s_port, srv.ca_file, "alice", PASSWORDS["alice"], "r")
    return client


async def test_the_host_announces_the_service(srv: TestServer) -> None:
    alice = await alice_of(srv)
    info = (await alice.iq(f"<query xmlns='{INFO}'/>", to="localhost"))[0]
    identities = {
        (i.get("category"), i.get("type"), i.get("name")) for i in info.iter(f"{{{INFO}}}identity")
    }
    assert ("store", "file", "HTTP File Upload") in identities
    assert NS in {f.get("var") for f in info.iter(f"{{{INFO}}}feature")}
    form = info.find("{jabber:x:data}x")
    assert form is not None
    same_xml(  # Prosody 0.12.3's form, byte for byte but for attribute order
        form,
        "<x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'>"
        f"<value>{NS}</value></field><field type='text-single' var='max-file-size'>"
        "<value>1000</value></field></x>",
    )


async def test_a_slot(srv: TestServer) -> None:
    alice = await alice_of(srv)
    reply = await ask(alice, "ünï code.txt", 5, "text/plain")
    slot = slot_of(reply)
    url = f"{srv.https_url}/file_share/{slot.id}/%C3%BCn%C3%AF%20code.txt"
    same_xml(  # Prosody's shape: <get/> first, the same URL for both, one Authorization header
        reply,
        f"<iq type='result' from='localhost' to='alice@localhost/r'><slot xmlns='{NS}'>"
        f"<get url='{url}'/><put url='{url}'><header name='Authorization'>"
        f"{slot.authorization}</header></put></slot></iq>",
    )
    assert len(slot.id) == 24 and slot.authorization.startswith("Bearer ey")
    other = await new_slot(alice, "ünï code.txt", 5, "text/plain", id="again")
    assert other.id != slot.id  # each request is a new slot


# (request attributes, Prosody's error type, condition and text)
REFUSED = [
    (("a/b.txt", 10, None), ("modify", "bad-request", "Invalid filename")),
    ((None, 10, None), ("modify", "bad-request", "Invalid filename")),
    (("x", -1, None), ("modify", "bad-request", "File size must be positive integer")),
    (("x", "1.5", None), ("modify", "bad-request", "File size must be positive integer")),
    (("x", "abc", None), ("modify", "bad-request", "File size must be positive integer")),
    (("x", None, None), ("modify", "bad-request", "File size must be positive integer")),
    # stricter than Prosody, same answer: a file name must be one path segment a browser takes
    (("", 10, None), ("modify", "bad-request", "Invalid filename")),
    ((".", 10, None), ("modify", "bad-request", "Invalid filename")),
    (("..", 10, None), ("modify", "bad-request", "Invalid filename")),
    (("a&#10;b", 10, None), ("modify", "bad-request", "Invalid filename")),
    (("é" * 128, 10, None), ("modify", "bad-request", "Invalid filename")),  # 256 bytes
    (("x", "+5", None), ("modify", "bad-request", "File size must be positive integer")),
    # a content type becomes a header of the download: it must be a media type
    (("x", 10, "text/html&#13;&#10;X-A: b"), ("modify", "bad-request", "Invalid content type")),
    (("x", 10, "nonsense"), ("modify", "bad-request", "Invalid content type")),
]


@pytest.mark.parametrize(("request_attrs", "error"), REFUSED)
async def test_refused_requests(
    srv: TestServer,
    request_attrs: tuple[str | None, str | int | None, str | None],
    error: tuple[str, str, str],
) -> None:
    alice = await alice_of(srv)
    reply = await ask(alice, *request_attrs)
    assert reply.get("type") == "error" and reply.get("from") == "localhost"
    assert stanza_error(reply) == error
    assert len(reply) == 1  # the request is not echoed (Prosody)


async def test_too_large(srv: TestServer) -> None:
    alice = await alice_of(srv)
    same_xml(  # Prosody 0.12.3's answer
        await ask(alice, "big", 1001, None),
        "<iq type='error' from='localhost' to='alice@localhost/r'><error type='modify'>"
        "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File too large</text>"
        f"<file-too-large xmlns='{NS}'><max-file-size>1000</max-file-size></file-too-large>"
        "</error></iq>",
    )
    assert (await ask(alice, "fits", 1000, None, id="fits")).get("type") == "result"


async def test_only_a_get_to_the_host(srv: TestServer) -> None:
    alice = await alice_of(srv)
    for kind, to in (("set", "localhost"), ("get", None)):  # set, or to the account
        reply = await alice.iq(request_xml("x", 1, None), type=kind, to=to, id=kind)
        assert stanza_error(reply) == ("cancel", "service-unavailable", None)


async def test_daily_quota(srv: TestServer) -> None:
    srv.clock.freeze()
    alice = await alice_of(srv)
    first = srv.clock.time()
    await new_slot(alice, "a", 1000, None, id="1")
    srv.clock.advance(3600)
    await new_slot(alice, "b", 1000, None, id="2")
    refused = await ask(alice, "c", 600, None, id="3")  # 2600 > 2500 in 24 hours
    same_xml(  # Prosody's error, and XEP-0363's <retry/>: when the first slot is a day old
        refused,
        "<iq type='error' from='localhost' to='alice@localhost/r'><error type='wait'>"
        "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Daily quota reached</text>"
        f"<retry xmlns='{NS}' stamp='{stamp(first + 86401)}'/></error></iq>",
    )
    assert (await ask(alice, "d", 500, None, id="4")).get("type") == "result"  # 2500 fits
    # the quota is the user's: bob has his own
    bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
    assert (await ask(bob, "e", 1000, None)).get("type") == "result"
    # a slot counts whether or not it is used; a day after the first, it no longer counts
    srv.clock.advance(86400 - 3600)
    assert stanza_error(await ask(alice, "f", 600, None, id="5"))[1] == "resource-constraint"
    srv.clock.advance(1)
    assert (await ask(alice, "g", 600, None, id="6")).get("type") == "result"


async def test_a_file_larger_than_the_quota_has_no_retry(tmp_path: Path) -> None:
    options = {"http_file_share_size_limit": 1000, "http_file_share_daily_quota": 10}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        alice = await alice_of(srv)
        reply = await ask(alice, "x", 11, None)
        assert stanza_error(reply) == ("wait", "resource-constraint", "Daily quota reached")
        assert reply.find(f"error/{{{NS}}}retry") is None


async def test_daily_slots(tmp_path: Path) -> None:
    # empty files cost no bytes, but a client cannot ask for slots without end
    async with running_server(
        tmp_path, modules=MODULES, options={"http_file_share_daily_slots": 2, **STILL}
    ) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        srv.clock.freeze()
        alice = await alice_of(srv)
        first = srv.clock.time()
        for n in range(2):
            assert (await ask(alice, "empty", 0, None, id=f"s{n}")).get("type") == "result"
        refused = await ask(alice, "empty", 0, None, id="s3")
        assert stanza_error(refused) == ("wait", "resource-constraint", "Daily quota reached")
        retry = refused.find(f"error/{{{NS}}}retry")
        assert retry is not None and retry.get("stamp") == stamp(first + 86401)


async def test_global_quota(tmp_path: Path) -> None:
    options = {**LIMITS, **STILL, "http_file_share_global_quota": 1500}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, PASSWORDS[name])
        srv.clock.freeze()
        alice = await alice_of(srv)
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        await new_slot(alice, "a", 1000, None)
        assert stanza_error(await ask(bob, "b", 600, None)) == (
            "wait",
            "resource-constraint",
            "Server global storage quota reached",
        )
        assert (await ask(bob, "c", 500, None, id="fits")).get("type") == "result"
        # once the slots expire (a week), the space is free again
        srv.clock.advance(7 * 86400 + 1)
        await srv.idle()
        later = await ask(bob, "d", 1000, None, id="later")
        assert later.get("type") == "result", stanza_error(later)


async def test_types_and_access(tmp_path: Path) -> None:
    options = {
        "http_file_share_allowed_file_types": ["image/*", "text/plain"],
        "http_file_share_access": ["bob@localhost"],
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, PASSWORDS[name])
        alice = await alice_of(srv)
        assert stanza_error(await ask(alice, "a.png", 5, "image/png")) == (
            "auth",
            "forbidden",
            None,
        )
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        for n, kind in enumerate(["image/png", "IMAGE/JPEG", "text/plain; charset=utf-8"]):
            assert (await ask(bob, "ok", 5, kind, id=f"ok{n}")).get("type") == "result", kind
        for n, kind in enumerate(["text/html", None, "application/pdf"]):
            reply = await ask(bob, "no", 5, kind, id=f"no{n}")
            assert stanza_error(reply) == ("modify", "not-acceptable", "File type not allowed")


async def test_users_of_other_hosts(tmp_path: Path) -> None:
    # Prosody's default access: anyone with an account on this server
    async with running_server(
        tmp_path,
        hosts=("localhost", "other.test"),
        modules=MODULES,
        options={"c2s_require_encryption": False},
    ) as srv:
        await srv.create_user("carol", PASSWORDS["carol"], host="other.test")
        carol = await RawClient.connect(srv.c2s_port)
        await carol.open(to="other.test")
        assert (await carol.scram("carol", PASSWORDS["carol"])).tag.endswith("success")
        await carol.open(to="other.test")
        await carol.bind("r")
        reply = await ask(carol, "c.txt", 5, None)
        assert reply.get("type") == "result", reply


async def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="'images' is not a type"):
        async with running_server(
            tmp_path,
            modules=MODULES,
            options={"http_file_share_allowed_file_types": ["images"]},
        ):
            pass


async def test_a_hostile_uploader_fills_no_disk(tmp_path: Path) -> None:
    """A client asking for slot after slot and putting more than it asked for: the files on
    disk stay within the daily quota and the slot records within the daily slots (both
    measured), every refusal is on the wire or in the HTTP status, another user is served."""
    options = {**LIMITS, **STILL, "http_file_share_daily_slots": 6}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, PASSWORDS[name])
        alice = await alice_of(srv)
        bob, _ = await login(srv.c2s_port, srv.ca_file, "bob", PASSWORDS["bob"])
        answers: list[object] = []

        async def upload(name: str, size: int, *bodies: bytes) -> None:
            """Ask for a slot, PUT each of ``bodies`` into it; the answers, in order."""
            reply = await ask(alice, name, size, None, id=name)
            if reply.get("type") == "error":
                answers.append(stanza_error(reply)[1])
                return
            slot = slot_of(reply)
            for body in bodies:
                answers.append((await http(srv, "PUT", slot.put, slot=slot, data=body)).status)

        for i in range(6):  # as large as allowed (2 fit the daily 2500 bytes), then again
            await upload(f"big{i}", 1000, b"b" * 1000, b"c" * 1000)
        assert answers == [201, 409, 201, 409] + ["resource-constraint"] * 4
        for i in range(20):  # small slots, each filled with far more than it said
            await upload(f"small{i}", 1, b"s" * 50_000)
        assert answers[8:] == [413] * 4 + ["resource-constraint"] * 16  # 6 slots a day
        assert await until_pong(bob) == []
        await srv.idle()
        on_disk = sum(len(data) for data in stored_files(srv).values())
        assert on_disk == 2000, stored_files(srv).keys()
        assert (await stored(srv, "", "uploads"))[0] == 6  # the host's records, no user's
        assert (await ask(bob, "b", 1000, None, id="bob")).get("type") == "result"
