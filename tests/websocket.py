"""A raw RFC 7395 client for exact-frame checks (aiohttp's WebSocket client): every wait is
bounded; each text frame received is parsed as the standalone element it must be."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from typing import Any

import aiohttp
from lxml import etree

from tests.xmpp import NS_SASL, TIMEOUT

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
CLOSE = f"<close xmlns='{NS_FRAMING}'/>"

OPEN_WS: list[WsClient] = []


class WsClosed(Exception):
    """The server closed the WebSocket: ``code`` and ``reason`` of its close frame."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code, self.reason = code, reason


class WsClient:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.frames: list[str] = []  # every text frame received, as received
        OPEN_WS.append(self)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        protocols: tuple[str, ...] = ("xmpp",),
        origin: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WsClient:
        http = aiohttp.ClientSession()
        headers = {"Origin": origin} if origin else {}
        try:
            ws = await http.ws_connect(
                url,
                protocols=protocols,
                headers=headers,
                ssl=ssl_context if ssl_context is not None else True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=TIMEOUT, ws_close=TIMEOUT),
                autoclose=False,
            )
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def frame(self, timeout: float = TIMEOUT) -> str:
        """The next text frame; WsClosed when a close frame comes instead."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.TEXT:
            self.frames.append(msg.data)
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            with contextlib.suppress(Exception):
                await self.ws.close()
            raise WsClosed(msg.data, msg.extra or "")
        raise WsClosed(None, f"{msg.type.name}: {msg.data!r}")

    async def next(self, timeout: float = TIMEOUT) -> etree._Element:
        return etree.fromstring((await self.frame(timeout)).encode())

    async def expect(self, tag: str, timeout: float = TIMEOUT) -> etree._Element:
        while True:
            el = await self.next(timeout)
            if el.tag == tag:
                return el

    async def closed(self) -> WsClosed:
        """Read until the server's close frame; it is returned."""
        for _ in range(100):
            try:
                await self.frame()
            except WsClosed as closed:
                return closed
        raise AssertionError("no close frame")

    async def open(self) -> etree._Element:
        """Send <open/>; return the features (after checking the server's <open/>)."""
        await self.send(OPEN)
        opened = await self.next()
        assert opened.tag == f"{{{NS_FRAMING}}}open", etree.tostring(opened)
        return await self.expect(f"{{{NS_STREAM}}}features")

    async def login(self, username: str, password: str, resource: str = "ws") -> str:
        await self.open()
        payload = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        assert (await self.next()).tag == f"{{{NS_SASL}}}success"
        await self.open()
        await self.send(
            f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{NS_BIND}'>"
            f"<resource>{resource}</resource></bind></iq>"
        )
        reply = await self.expect("{jabber:client}iq")
        jid = reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        assert jid, etree.tostring(reply)
        return jid

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        await self.http.close()


async def close_all() -> None:
    while OPEN_WS:
        await OPEN_WS.pop().close()


def text_of(error: etree._Element) -> dict[str, Any]:
    """A stream error's condition and text."""
    condition = next(etree.QName(c).localname for c in error if etree.QName(c).localname != "text")
    return {
        "condition": condition,
        "text": error.findtext("{urn:ietf:params:xml:ns:xmpp-streams}text"),
    }
