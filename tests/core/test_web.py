"""minixmpp.web: relative links, CSP sources, escaping and the signed double-submit cookie;
the pages' colours and logos readable (contrast)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from minixmpp.web import Csrf, csp, escape, origin_of, relative
from modules.mod_register_apps._logos import PALETTE


def test_relative_links_work_under_any_prefix() -> None:
    assert relative("/invites_page", "/register?t=x&c=y") == "./register?t=x&c=y"
    assert relative("/invites_page", "/invites_page/setup/dino?t") == "./invites_page/setup/dino?t"
    assert relative("/invites_page/setup/dino", "/register?t=x") == "../../register?t=x"
    assert relative("/join/setup/dino", "/join/register") == "../register"
    assert relative("/register", "/invites_page?TOKEN") == "./invites_page?TOKEN"
    assert relative("/a/b", "/a/") == "./"
    assert relative("/join/register", "/join?TOKEN") == "../join?TOKEN"
    assert relative("/a/b", "/c/") == "../c/"
    assert relative("/x", "https://example.com/y") == "https://example.com/y"
    assert relative("/x", "xmpp:localhost?register") == "xmpp:localhost?register"


def test_origins_as_csp_sources() -> None:
    assert origin_of("https://example.com:8443/a/b?c") == "https://example.com:8443"
    assert origin_of("http://localhost/x") == "http://localhost"
    assert origin_of("xmpp:alice@localhost") == "xmpp:"
    assert origin_of("conversations://login?u=x") == "conversations:"
    assert origin_of("assets/logos/x.svg") is None and origin_of("/register") is None
    assert csp(images=["https://img.example"], forms=["https://chat.example"]) == (
        "default-src 'none'; style-src 'self'; img-src 'self' data: https://img.example; "
        "form-action 'self' https://chat.example; frame-ancestors 'none'; base-uri 'none'"
    )


def test_escape_covers_attributes() -> None:
    assert escape("<a href=\"x\" onclick='y'>&") == (
        "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;"
    )


def test_the_csrf_field_is_bound_to_the_cookie() -> None:
    csrf = Csrf(b"server secret", "register localhost", "minixmpp_register")
    headers: dict[str, str] = {}
    field = csrf.issue(make_mocked_request("GET", "/register"), headers)
    cookie = headers["Set-Cookie"].split(";")[0]
    name, value = cookie.split("=", 1)
    assert name == "minixmpp_register" and len(value) == 32
    assert headers["Set-Cookie"].endswith("; HttpOnly; SameSite=Lax")  # no Path: the folder
    with_cookie = make_mocked_request("POST", "/register", headers={"Cookie": cookie})
    assert csrf.valid(with_cookie, field)
    # the same cookie keeps its field (several tabs); a new browser gets a new cookie
    again: dict[str, str] = {}
    assert csrf.issue(with_cookie, again) == field and again == {}
    assert not csrf.valid(make_mocked_request("POST", "/register"), field)  # no cookie
    other = make_mocked_request("POST", "/register", headers={"Cookie": f"{name}={'A' * 32}"})
    assert not csrf.valid(other, field)  # someone else's cookie
    assert not csrf.valid(with_cookie, "")
    assert not csrf.valid(with_cookie, field[:-1] + ("A" if field[-1] != "A" else "B"))
    elsewhere = Csrf(b"another secret", "register localhost", "minixmpp_register")
    assert not elsewhere.valid(with_cookie, field)  # the key is the server's
    bad = make_mocked_request("GET", "/register", headers={"Cookie": f"{name}=short"})
    fresh: dict[str, str] = {}
    csrf.issue(bad, fresh)
    assert "Set-Cookie" in fresh  # a malformed cookie is replaced


# -- contrast (WCAG 2.1: 4.5:1 for text) ---------------------------------------------------------

STYLE = Path(__file__).resolve().parents[2] / "modules/mod_invites_page/static/style.css"
# (text, background) pairs of colour variables that the stylesheet puts together
PAIRS = [
    ("text", "bg"), ("text", "card"), ("muted", "card"), ("muted", "bg"), ("accent", "card"),
    ("accent-hover", "card"), ("accent-text", "accent"), ("accent-text", "accent-hover"),
    ("badge-text", "badge"), ("accent", "badge"), ("accent-hover", "badge"), ("text", "badge"),
    ("text", "warn-bg"), ("text", "ok-bg"), ("text", "error-bg"),
]  # fmt: skip


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_pages_colours_are_readable_in_light_and_dark_mode() -> None:
    css = STYLE.read_text()
    light, dark = re.findall(r":root \{(.*?)\}", css, re.S)
    for scheme in (light, dark):
        colours = dict(re.findall(r"--([a-z-]+): (#[0-9a-f]{6});", scheme))
        for text, background in PAIRS:
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, (text, background, round(ratio, 2))


def test_the_logos_are_readable() -> None:
    for colour in PALETTE:  # white initials on each
        assert contrast("#ffffff", colour) >= 7, colour
