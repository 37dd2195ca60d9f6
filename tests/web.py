"""An HTTP client for the web page tests: real requests over real sockets (aiohttp, with a cookie
jar like a browser's), pages parsed with lxml, and the checks every page must pass."""

from __future__ import annotations

import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import lxml.html
from multidict import CIMultiDictProxy

TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")
ROOT = Path(__file__).resolve().parents[1]
# the command the README's set-up runs (`.venv/bin/minixmpp`): the console script of this venv
MINIXMPP = str(Path(sys.executable).parent / "minixmpp")


@dataclass
class Page:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def doc(self) -> Any:
        return lxml.html.fromstring(self.body)

    def testid(self, name: str) -> Any:
        found = self.doc.xpath(f'//*[@data-testid="{name}"]')
        assert len(found) == 1, f"data-testid={name!r}: {len(found)} found"
        return found[0]

    def message(self) -> str:
        return str(self.testid("message").text_content()).strip()

    def field(self, name: str) -> str:
        (value,) = self.doc.xpath(f'//input[@name="{name}"]/@value')
        return str(value)


class Browser:
    """One browser: a cookie jar shared by its requests; redirects are not followed."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession()

    async def request(self, method: str, url: str, **kw: Any) -> Page:
        kw.setdefault("allow_redirects", False)
        async with self.session.request(method, url, **kw) as response:
            return Page(response.status, response.headers, await response.read())

    async def get(self, url: str, **kw: Any) -> Page:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, data: dict[str, str], **kw: Any) -> Page:
        return await self.request("POST", url, data=data, **kw)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def fetch(method: str, url: str, **kw: Any) -> Page:
    browser = Browser()
    try:
        return await browser.request(method, url, **kw)
    finally:
        await browser.close()


CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def assert_page(page: Page, *, status: int = 200, cors: bool = True) -> None:
    """An HTML page with the headers every page carries, and nothing loaded from elsewhere."""
    h = page.headers
    assert page.status == status, (page.status, page.text[:500])
    assert h["Content-Type"] == "text/html; charset=utf-8"
    assert h["Content-Security-Policy"] == CSP
    assert (h["X-Content-Type-Options"], h["Referrer-Policy"]) == ("nosniff", "no-referrer")
    assert h["X-Frame-Options"] == "DENY"
    if cors:
        assert h["Access-Control-Allow-Origin"] == "*"
        assert h["Access-Control-Expose-Headers"] == "Link"
    else:
        assert "Access-Control-Allow-Origin" not in h
    assert "no-store" in h["Cache-Control"]
    if page.body:
        doc = page.doc
        assert doc.get("lang") == "en"
        assert not doc.xpath("//script") and "javascript:" not in page.text
        assert not doc.xpath("//*[@style]")  # CSP: no inline styles either
        for url in doc.xpath("//link/@href | //img/@src"):
            assert url.startswith(("./", "../", "data:", "xmpp:")), url  # all from this server
        for label in doc.xpath("//label/@for"):
            assert doc.xpath(f'//input[@id="{label}"]'), label
        for field in doc.xpath('//input[@type!="hidden"]'):
            assert doc.xpath(f'//label[@for="{field.get("id")}"]'), field.get("name")


BLOCKS = {
    "p", "div", "h1", "h2", "h3", "h4", "li", "ul", "dl", "dt", "dd", "label", "form", "aside",
    "details", "summary", "button", "main",
}  # fmt: skip


def visible_text(page: Page) -> str:
    """What a person reads: the body's text, a space between blocks, whitespace collapsed."""
    (main,) = page.doc.xpath("//main")
    for element in main.iter():
        if element.tag in BLOCKS:
            element.text = " " + (element.text or "")
            element.tail = " " + (element.tail or "")
    return " ".join(main.text_content().split())


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (bound together, so distinct, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Shipped:
    folder: Path
    c2s: int
    direct_tls: int
    http: int
    https: int

    @property
    def config(self) -> Path:
        return self.folder / "server.toml"


def shipped_config(folder: Path) -> Shipped:
    """The shipped server.toml in ``folder``, only its ports moved to free ones (so that a test
    runs beside anything), unchanged otherwise: what a new user runs."""
    ports = Shipped(folder, *free_ports(4))
    text = (ROOT / "server.toml").read_text()
    for old, new in ((5222, ports.c2s), (5223, ports.direct_tls), (5280, ports.http),
                     (5281, ports.https)):  # fmt: skip
        assert text.count(str(old)) >= 1, old
        text = text.replace(str(old), str(new))
    assert f'http_external_url = "http://localhost:{ports.http}/"' in text
    assert f"http_ports = [{ports.http}]" in text and f"https_ports = [{ports.https}]" in text
    folder.mkdir(parents=True, exist_ok=True)
    ports.config.write_text(text)
    return ports
