"""minixmpp.web: relative links, CSP sources, escaping and the signed double-submit cookie."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from minixmpp.web import Csrf, csp, escape, origin_of, relative


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
