"""HTTP File Upload (XEP-0363), the HTTP side over real sockets (aiohttp): PUT into a slot and
every refusal (Prosody 0.12.3's statuses where it has them), GET/HEAD with their headers,
expiry on the server's clock, deletion with the account, and what is left on disk."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.conftest import PASSWORDS
from tests.upload import Slot, chunks, http, new_slot, request_xml, slot_of, stored
from tests.xmpp import RawClient, login

MODULES = ["disco", "ping", "http_file_share"]
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
OPTIONS = {"http_file_share_size_limit": 1000, "c2s_idle_timeout": 0}
CORS = {
    "Access-Control-Allow-Methods": "PUT, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Max-Age": "7200",
}


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES, options=OPTIONS) as server:
        for name, password in PASSWORDS.items():
            await server.create_user(name, password)
        yield server


async def client(srv: TestServer, name: str = "alice") -> RawClient:
    connected, _ = await login(srv.c2s_port, srv.ca_file, name, PASSWORDS[name], "r")
    return connected


async def uploaded(srv: TestServer, slot: Slot, body: bytes, kind: str | None) -> None:
    headers = {"Content-Type": kind} if kind else {}
    answer = await http(srv, "PUT", slot.put, slot=slot, data=body, headers=headers)
    assert answer.status == 201, answer


async def test_put_then_get(srv: TestServer) -> None:
    srv.clock.freeze()
    issued = srv.clock.time()
    alice = await client(srv)
    slot = await new_slot(alice, "ünï code.txt", 5, "text/plain")
    put = await http(srv, "PUT", slot.put, slot=slot, data=b"hello")
    assert (put.status, put.body) == (201, b"")
    assert {k: put.headers.get(k) for k in CORS} == CORS  # Prosody's CORS for this route
    assert put.headers["Access-Control-Allow-Origin"] == "*"
    got = await http(srv, "GET", slot.get)
    assert (got.status, got.body) == (200, b"hello")
    last_modified = email.utils.formatdate(int(issued), usegmt=True)
    expected = {  # Prosody's headers, but X-XSS-Protection and Strict-Transport-Security
        "Content-Type": "text/plain",
        "Content-Length": "5",
        "Content-Disposition": "inline; filename*=UTF-8''%C3%BCn%C3%AF%20code.txt",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none';",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "max-age=31556952, immutable",
        "Accept-Ranges": "bytes",
        "Last-Modified": last_modified,  # when the slot was issued, on the server's clock
    }
    assert {k: got.headers.get(k) for k in expected} == expected
    assert "Strict-Transport-Security" not in got.headers
    head = await http(srv, "HEAD", slot.get)
    assert (head.status, head.body) == (200, b"")
    assert {k: head.headers.get(k) for k in expected} == expected
    part = await http(srv, "GET", slot.get, headers={"Range": "bytes=2-"})
    assert (part.status, part.body, part.headers["Content-Range"]) == (206, b"llo", "bytes 2-4/5")
    cached = await http(srv, "GET", slot.get, headers={"If-Modified-Since": last_modified})
    assert (cached.status, cached.body) == (304, b"")
    origin = await http(srv, "GET", slot.get, headers={"Origin": "https://web.example"})
    assert origin.headers["Access-Control-Allow-Origin"] == "https://web.example"
    preflight = await http(srv, "OPTIONS", slot.put, headers={"Origin": "https://web.example"})
    assert preflight.status == 200 and {k: preflight.headers.get(k) for k in CORS} == CORS
    # on disk: the file alone, owner-only, in the server's data folder
    assert stored(srv) == {f"{slot.id}.bin": b"hello"}
    path = srv.data_path / "http_file_share" / "localhost" / f"{slot.id}.bin"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_served_types(srv: TestServer) -> None:
    alice = await client(srv)
    cases = [  # (asked for, PUT with, served as, disposition)
        ("text/html", "text/html", "text/html", "attachment"),  # not among the safe types
        ("image/png", "image/png", "image/png", "inline"),
        (None, "image/png", "application/octet-stream", "attachment"),  # the slot's, not the PUT's
        ("text/plain; charset=utf-8", "text/plain", "text/plain; charset=utf-8", "inline"),
    ]
    for n, (asked, sent, served, disposition) in enumerate(cases):
        slot = await new_slot(alice, "f.x", 3, asked, id=f"s{n}")
        await uploaded(srv, slot, b"<b>", sent)
        got = await http(srv, "GET", slot.get)
        assert got.headers["Content-Type"] == served, asked
        assert got.headers["Content-Disposition"] == f"{disposition}; filename*=UTF-8''f.x"
        assert got.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_put_refused(srv: TestServer) -> None:
    alice = await client(srv)
    slot = await new_slot(alice, "a.txt", 5, "text/plain")
    other = await new_slot(alice, "b.txt", 5, "text/plain", id="other")
    # no token: 401 asking for one; a wrong one, or one changed by a byte: 401
    missing = await http(srv, "PUT", slot.put, data=b"hello")
    assert (missing.status, missing.headers.get("WWW-Authenticate")) == (401, "Bearer")
    for auth in ("Basic YTpi", "Bearer xyz", "Bearer a.b.c", slot.authorization[:-2] + "AA"):
        wrong = await http(srv, "PUT", slot.put, data=b"hello", headers={"Authorization": auth})
        assert wrong.status == 401, auth
    token = slot.authorization.split(".")
    token[1] = token[1][:-2] + ("AA" if token[1][-2:] != "AA" else "BB")  # other claims
    forged = await http(
        srv, "PUT", slot.put, data=b"hello", headers={"Authorization": ".".join(token)}
    )
    assert forged.status == 401
    # another slot's token: 400
    assert (await http(srv, "PUT", slot.put, slot=other, data=b"hello")).status == 400
    # not the slot's size: 413, by Content-Length or counted as it streams in (chunked)
    for body in (b"hell", b"hello!", chunks(b"hel", b"lo!"), chunks(b"he", b"ll")):
        assert (await http(srv, "PUT", slot.put, slot=slot, data=body)).status == 413
    # another content type than the slot's: 415 (XEP-0363 §5; Prosody takes it)
    typed = await http(
        srv, "PUT", slot.put, slot=slot, data=b"hello", headers={"Content-Type": "text/html"}
    )
    assert typed.status == 415
    assert stored(srv) == {}  # nothing of all that was kept
    assert (await http(srv, "GET", slot.get)).status == 410  # a slot without its file
    # the right one, in chunks, with parameters on the type
    ok = await http(
        srv,
        "PUT",
        slot.put,
        slot=slot,
        data=chunks(b"he", b"llo"),
        headers={"Content-Type": "Text/Plain; charset=utf-8"},
    )
    assert ok.status == 201
    # the same slot again: 409, the file stays as it was
    assert (await http(srv, "PUT", slot.put, slot=slot, data=b"HELLO")).status == 409
    assert (await http(srv, "GET", slot.get)).body == b"hello"


async def test_a_body_longer_than_the_slot_is_cut_off(srv: TestServer) -> None:
    alice = await client(srv)
    slot = await new_slot(alice, "a.bin", 1000, None)
    answered = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        yield b"y"  # one byte too many: the server answers now, without the rest
        await asyncio.wait_for(answered.wait(), 10)  # a server that waits for more, waits
        for _ in range(10_000):
            yield b"z" * 65536

    try:
        answer = await http(srv, "PUT", slot.put, slot=slot, data=endless())
    finally:
        answered.set()
    assert answer.status == 413
    await srv.idle()
    assert stored(srv) == {}  # and no .part either


async def test_expired_token(srv: TestServer) -> None:
    srv.clock.freeze()
    alice = await client(srv)
    slot = await new_slot(alice, "a.txt", 5, None)
    srv.clock.advance(300)
    late = await new_slot(alice, "b.txt", 5, None, id="late")
    srv.clock.advance(1)  # the first token is 301 s old (Prosody's lifetime: 300 s)
    assert (await http(srv, "PUT", slot.put, slot=slot, data=b"hello")).status == 410
    await uploaded(srv, late, b"hello", None)


async def test_two_puts_into_one_slot(srv: TestServer) -> None:
    alice = await client(srv)
    slot = await new_slot(alice, "a.bin", 6, None)
    half_sent = asyncio.Event()
    finish = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abc"
        half_sent.set()
        await finish.wait()
        yield b"def"

    first = asyncio.ensure_future(http(srv, "PUT", slot.put, slot=slot, data=slow()))
    await asyncio.wait_for(half_sent.wait(), 10)
    started = await srv.wait_for("upload-started")  # the server writes the first one now
    assert (started.slot, started.uploader, started.size) == (slot.id, "alice@localhost", 6)
    second = await http(srv, "PUT", slot.put, slot=slot, data=b"ABCDEF")
    assert second.status == 409
    finish.set()
    assert (await asyncio.wait_for(first, 10)).status == 201
    assert (await srv.wait_for("upload-stored")).slot == slot.id
    assert (await http(srv, "GET", slot.get)).body == b"abcdef"


async def test_get_refused(srv: TestServer) -> None:
    base = f"{srv.https_url}/file_share"
    for path in ("/AAAAAAAAAAAAAAAAAAAAAAAA/x.txt", "/short/x.txt", "/../etc/passwd"):
        assert (await http(srv, "GET", base + path)).status == 404, path
    index = await http(srv, "GET", base)
    assert index.status == 200 and b"uploaded" in index.body
    assert (await http(srv, "DELETE", base + "/AAAAAAAAAAAAAAAAAAAAAAAA/x")).status == 405


async def test_expiry(srv: TestServer) -> None:
    srv.clock.freeze()
    alice = await client(srv)
    old = await new_slot(alice, "old.txt", 3, None)
    await uploaded(srv, old, b"old", None)
    srv.clock.advance(3 * 86400)
    new = await new_slot(alice, "new.txt", 3, None, id="new")
    await uploaded(srv, new, b"new", None)
    srv.clock.advance(4 * 86400 + 1)  # the old one is a week old: the daily sweep takes it
    await srv.idle()
    assert (await http(srv, "GET", old.get)).status == 404
    assert (await http(srv, "GET", new.get)).body == b"new"
    assert stored(srv) == {f"{new.id}.bin": b"new"}
    srv.clock.advance(3 * 86400)
    await srv.idle()
    assert stored(srv) == {}


async def test_files_go_with_the_account(srv: TestServer) -> None:
    alice, bob = await client(srv), await client(srv, "bob")
    mine = await new_slot(alice, "a.txt", 3, None)
    unused = await new_slot(alice, "b.txt", 3, None, id="unused")
    theirs = await new_slot(bob, "c.txt", 3, None)
    await uploaded(srv, mine, b"abc", None)
    await uploaded(srv, theirs, b"xyz", None)
    await srv.delete_user("alice@localhost")
    await srv.idle()
    assert stored(srv) == {f"{theirs.id}.bin": b"xyz"}
    assert (await http(srv, "GET", mine.get)).status == 404
    # a slot whose account is gone takes no file
    assert (await http(srv, "PUT", unused.put, slot=unused, data=b"abc")).status == 410
    assert stored(srv) == {f"{theirs.id}.bin": b"xyz"}


async def test_a_reset_forgets_the_files(tmp_path: Path) -> None:
    async with running_server(tmp_path, modules=MODULES, options=OPTIONS) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        start = await srv.snapshot()
        alice = await client(srv)
        slot = await new_slot(alice, "a.txt", 3, None)
        await uploaded(srv, slot, b"abc", None)
        await srv.restore(start)  # as the pytest plugin does between tests
        assert stored(srv) == {}
        assert (await http(srv, "GET", slot.get)).status == 404


async def test_tokens_never_reach_the_wire_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="minixmpp")
    async with running_server(tmp_path, modules=MODULES, options=OPTIONS) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        alice = await client(srv)
        slot = await new_slot(alice, "a.txt", 3, None)
        await uploaded(srv, slot, b"abc", None)
    token = slot.authorization.removeprefix("Bearer ")
    assert "SEND" in caplog.text and slot.id in caplog.text  # the slot's URL was logged
    assert token[10:] not in caplog.text


async def test_a_moved_route(tmp_path: Path) -> None:
    options = {**OPTIONS, "http_paths": {"file_share": "/up/load"}}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        alice = await client(srv)
        slot = await new_slot(alice, "a.txt", 3, None)
        assert slot.put.startswith(f"{srv.https_url}/up/load/")
        await uploaded(srv, slot, b"abc", None)
        assert (await http(srv, "GET", slot.get)).body == b"abc"
        assert (await http(srv, "GET", f"{srv.https_url}/file_share/{slot.id}/a.txt")).status == 404


async def test_as_a_component(tmp_path: Path) -> None:
    # Prosody's way: Component "upload.localhost" "http_file_share"; the VirtualHost's mod_http
    # listens (components open no listeners) and serves the component's Host name
    async with running_server(
        tmp_path,
        modules=["disco", "ping", "http"],
        options={**OPTIONS, "https_ports": []},
        components={"upload.localhost": {"component_module": "http_file_share"}},
    ) as srv:
        await srv.create_user("alice", PASSWORDS["alice"])
        alice = await client(srv)
        items = await alice.iq(f"<query xmlns='{ITEMS}'/>", to="localhost")
        assert [i.get("jid") for i in items[0]] == ["upload.localhost"]
        info = (await alice.iq(f"<query xmlns='{INFO}'/>", to="upload.localhost", id="i"))[0]
        assert [(i.get("category"), i.get("type")) for i in info.iter(f"{{{INFO}}}identity")] == [
            ("store", "file")
        ]
        assert "urn:xmpp:http:upload:0" in {f.get("var") for f in info.iter(f"{{{INFO}}}feature")}
        assert info.find("{jabber:x:data}x") is not None
        reply = await alice.iq(request_xml("a.txt", 3, None), to="upload.localhost", id="r")
        slot = slot_of(reply)
        assert reply.get("from") == "upload.localhost"
        assert slot.put.startswith(f"http://upload.localhost:{srv.http_port}/file_share/")
        # upload.localhost does not resolve here: to the port, naming the component's host
        local = slot.put.replace("upload.localhost", "127.0.0.1")
        headers = {"Host": f"upload.localhost:{srv.http_port}"}
        put = await http(srv, "PUT", local, slot=slot, data=b"abc", headers=headers)
        assert put.status == 201
        got = await http(srv, "GET", local, headers=headers)
        assert (got.status, got.body) == (200, b"abc")
        folder = srv.data_path / "http_file_share" / "upload.localhost"
        assert [p.name for p in folder.iterdir()] == [f"{slot.id}.bin"]
        # the files of users of other hosts go with their accounts
        await srv.delete_user("alice@localhost")
        await srv.idle()
        assert list(folder.iterdir()) == []
