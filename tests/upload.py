"""Helpers for the HTTP File Upload tests (XEP-0363): slot requests over a raw XMPP stream,
and HTTP requests over real sockets with aiohttp, trusting the test server's CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree
from multidict import CIMultiDictProxy

from minixmpp.testing import XmppServer
from tests.xmpp import RawClient

NS = "urn:xmpp:http:upload:0"


@dataclass
class Slot:
    put: str
    get: str
    authorization: str

    @property
    def id(self) -> str:
        return self.put.rsplit("/", 2)[1]


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


def request_xml(filename: str | None, size: str | int | None, content_type: str | None) -> str:
    attrs = "".join(
        f" {name}='{value}'"
        for name, value in (("filename", filename), ("size", size), ("content-type", content_type))
        if value is not None
    )
    return f"<request xmlns='{NS}'{attrs}/>"


async def ask(
    client: RawClient,
    filename: str | None = "a.txt",
    size: str | int | None = 5,
    content_type: str | None = "text/plain",
    *,
    id: str = "slot",
) -> etree._Element:
    """The host's answer to a slot request."""
    return await client.iq(request_xml(filename, size, content_type), to="localhost", id=id)


def slot_of(reply: etree._Element) -> Slot:
    assert reply.get("type") == "result", etree.tostring(reply)
    put = reply.find(f"{{{NS}}}slot/{{{NS}}}put")
    get = reply.find(f"{{{NS}}}slot/{{{NS}}}get")
    assert put is not None and get is not None
    header = put.find(f"{{{NS}}}header")
    assert header is not None and header.get("name") == "Authorization"
    return Slot(put.get("url", ""), get.get("url", ""), header.text or "")


async def new_slot(client: RawClient, *args: Any, **kw: Any) -> Slot:
    return slot_of(await ask(client, *args, **kw))


async def http(
    server: XmppServer, method: str, url: str, *, slot: Slot | None = None, **kw: Any
) -> Answer:
    """One request, trusting the server's CA; ``slot``: with its Authorization header."""
    headers = dict(kw.pop("headers", {}))
    if slot is not None:
        headers.setdefault("Authorization", slot.authorization)
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, ssl=ctx, headers=headers, **kw) as response,
    ):
        return Answer(response.status, response.headers, await response.read())


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent in chunks (``Transfer-Encoding: chunked``: no Content-Length)."""
    for part in parts:
        yield part


def stored(server: XmppServer) -> dict[str, bytes]:
    """The files in the upload folder, by name."""
    folder: Path = server.data_path / "http_file_share" / "localhost"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
