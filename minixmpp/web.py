"""Web pages that modules serve through mod_http (the invite pages, web registration): the
HTML shell, the headers every page carries, links that survive ``http_paths`` and a reverse
proxy's path prefix, and CSRF tokens.

Pages work without JavaScript and load nothing from elsewhere: the Content-Security-Policy
allows this server's own stylesheet and images (``img-src`` may name more origins, for app
logos an operator configured as absolute URLs), no script, no frames, and forms that post back
to this server. Everything a page shows is escaped with ``escape``.

Links between pages are relative (``relative``): a page at ``/invites_page`` links to
``./register?t=…``, which still resolves when a proxy serves the server under
``https://example.com/xmpp/``.

CSRF: a signed double-submit cookie. The form carries HMAC-SHA256(key, cookie), the key derived
from the server's secret, so a site that cannot read the cookie cannot forge the field, and a
fresh cookie is useless without the form that came with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import posixpath
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from minixmpp.http import Cors

HTML = "text/html"

# Prosody's CORS headers (minixmpp.http.Cors), and Snikket's Expose-Headers so that a web
# client can read the Link header of a landing page.
CORS = Cors(expose=("Link",))
# Prosody's headers on a page that shows credentials
NO_STORE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
}


def escape(value: object) -> str:
    """Text for HTML content and attribute values (quotes too)."""
    return html.escape(str(value), quote=True)


def csp(*, images: Iterable[str] = (), forms: Iterable[str] = ()) -> str:
    """The Content-Security-Policy of a page: its own stylesheet and images, ``images`` (more
    origins), no script, forms posting to this server or to ``forms`` (where a form's answer
    may redirect: Chromium checks redirects of a form submission against form-action too)."""
    img = " ".join(["'self'", "data:", *sorted(set(images))])
    form = " ".join(["'self'", *sorted(set(forms))])
    return (
        f"default-src 'none'; style-src 'self'; img-src {img}; form-action {form}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def security_headers(policy: str | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy or csp(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, as CSP names a source; the scheme
    alone (``"xmpp:"``) for other absolute URLs; None for a relative one."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    if parts.scheme and re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme):
        return f"{parts.scheme}:"
    return None


def relative(page_path: str, target: str) -> str:
    """A link from the page at ``page_path`` to ``target`` (a path on this server, maybe with a
    query): ``relative("/invites_page/setup/dino", "/register?t=x")`` is
    ``"../../register?t=x"``. Absolute URLs are returned as they are."""
    if urlsplit(target).scheme:
        return target
    path, sep, query = target.partition("?")
    base = page_path.rsplit("/", 1)[0] or "/"
    link = posixpath.relpath(path, base)
    if link == "." and not path.endswith("/"):  # the page's own folder, named as a file
        link = "../" + posixpath.basename(path)
    link = "" if link == "." else link
    if path.endswith("/") and link and not link.endswith("/"):
        link += "/"
    if not link.startswith("../"):
        link = "./" + link
    return link + sep + query


@dataclass(frozen=True)
class LinkButton:
    """A link shown as a button that leads elsewhere (an app's download buttons)."""

    url: str
    text: str  # the button's text, or the alt text of its image
    image: str | None = None  # the image's link, shown in place of the text
    target: str | None = None


def link_buttons(buttons: Iterable[LinkButton]) -> str:
    """A row of ``buttons``: each link tells the other site nothing of this page (no
    referrer, no opener), which holds an invite's token."""
    links = []
    for b in buttons:
        attrs = f'href="{escape(b.url)}" rel="noopener noreferrer"'
        attrs += f' target="{escape(b.target)}"' if b.target else ""
        if b.image:
            links.append(f'<a {attrs}><img src="{escape(b.image)}" alt="{escape(b.text)}"></a>')
        else:
            links.append(f'<a class="button secondary" {attrs}>{escape(b.text)}</a>')
    return '<p class="downloads">' + "".join(links) + "</p>"


def page(title: str, body: str, *, stylesheet: str, head: str = "", lang: str = "en") -> str:
    """A whole page: ``title`` and ``body`` are HTML (already escaped)."""
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{title}</title>\n"
        f'<link rel="stylesheet" href="{escape(stylesheet)}">\n'
        '<link rel="icon" href="data:,">\n'  # no /favicon.ico request
        f"{head}</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def html_response(
    text: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=text, status=status, content_type=HTML, charset="utf-8", headers=headers
    )


class Csrf:
    """A signed double-submit cookie: ``issue`` before rendering a form, ``valid`` on POST."""

    COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32}")

    def __init__(self, secret: bytes, purpose: str, cookie: str) -> None:
        self.key = hmac.new(secret, f"minixmpp csrf {purpose}".encode(), hashlib.sha256).digest()
        self.cookie = cookie

    def _sign(self, value: str) -> str:
        digest = hmac.new(self.key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, request: web.Request, response_headers: dict[str, str]) -> str:
        """The form field for this browser's cookie (set a new one in ``response_headers``
        when it has none, or none of ours)."""
        value = request.cookies.get(self.cookie, "")
        if not self.COOKIE_VALUE.fullmatch(value):
            value = secrets.token_urlsafe(24)
            secure = "; Secure" if request.secure else ""
            # no Path: the page's folder, which is right behind a proxy's path prefix too
            response_headers["Set-Cookie"] = (
                f"{self.cookie}={value}; HttpOnly; SameSite=Lax{secure}"
            )
        return self._sign(value)

    def valid(self, request: web.Request, field: str) -> bool:
        value = request.cookies.get(self.cookie, "")
        if not self.COOKIE_VALUE.fullmatch(value):
            return False
        return hmac.compare_digest(self._sign(value), field)
