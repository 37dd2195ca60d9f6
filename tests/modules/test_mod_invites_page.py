"""mod_invites_page over real HTTP: the landing URL an invite gets, the landing page (headers,
Link, cards and their buttons, QR code), HEAD + Link discovery as a QR-scanning app does it,
setup pages, contact and reset invites, the expired page, moved paths and escaping."""

from __future__ import annotations

import asyncio
import http.client
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import segno

from minixmpp.testing import TestServer, running_server
from tests.web import assert_page, fetch, visible_text
from tests.xmpp import register_preauth_stanza, slix_login

MODULES = ["register", "invites", "invites_register", "invites_page"]
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
PROSODY_ORDER = [
    "conversations", "yaxim", "siskin-im", "beagle-im", "dino", "gajim", "monal", "renga",
]  # fmt: skip

register_preauth_stanza()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


def cards(page: Any) -> list[tuple[str, str]]:
    """(app id, where its button goes) for each card, in order."""
    return [
        (li.get("id").removeprefix("app-"), li.xpath(".//a[@class='button']/@href")[0])
        for li in page.doc.xpath("//li[contains(@class, 'app')]")
    ]


# -- the landing URL ----------------------------------------------------------------------------


async def test_invites_get_this_page_as_their_landing_page(server: TestServer) -> None:
    invites = server.invites()
    account = await invites.create_account()
    assert account.landing_page == f"https://localhost:{server.https_port}/invites_page?" + (
        account.token
    )
    both = await invites.create_contact("alice", allow_registration=True)
    assert both.landing_page == f"https://localhost:{server.https_port}/invites_page?{both.token}"
    # Prosody's invites_page_supports: contact-only and reset invites get none by default
    assert (await invites.create_contact("alice")).landing_page is None
    assert (await invites.create_reset("alice")).landing_page is None


async def test_the_landing_url_follows_http_external_url_and_the_options(tmp_path: Path) -> None:
    options: dict[str, Any] = {
        "http_external_url": "http://localhost:5280/",
        "invites_page_supports": ["account", "password-reset", "contact-only"],
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "pw-alice-1")
        for invite in (
            await srv.invites().create_account(),
            await srv.invites().create_reset("alice"),
            await srv.invites().create_contact("alice"),
        ):
            assert invite.landing_page == f"http://localhost:5280/invites_page?{invite.token}"
    options = {"invites_page": "https://join.example/{invite.token}/"}  # mod_invites' template
    async with running_server(tmp_path / "t", modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        assert invite.landing_page == f"https://join.example/{invite.token}/"


# -- the landing page ---------------------------------------------------------------------------


async def test_the_landing_page_of_an_account_invite(server: TestServer) -> None:
    invite = await server.invites().create_account()
    page = await fetch("GET", f"{server.http_url}/invites_page?{invite.token}")
    assert_page(page)
    assert (
        page.headers["Link"] == f'<xmpp:localhost?register;preauth={invite.token}>; rel="alternate"'
    )
    assert page.headers["Vary"] == "User-Agent"
    doc = page.doc
    assert doc.xpath("//link[@rel='alternate']/@href") == [invite.uri]
    assert doc.findtext(".//title") == "Invite to localhost"
    text = visible_text(page)
    assert text.startswith(
        "Invite to localhost Tip: You can open this invite on your mobile device by scanning a"
        " barcode with your camera. You have been invited to chat on localhost, part of the XMPP"
        " secure and decentralized messaging network. Get started To get started, you need to"
        " install an app for your platform:"
    )
    assert text.endswith(
        "Other software You can connect to localhost using any XMPP-compatible software. If"
        " your preferred software is not listed above, you may still register an account"
        " manually."
    )
    token = invite.token
    referrer = f"xmpp%3alocalhost%3fregister%3bpreauth%3d{token}"  # Prosody's escape
    play = "https://play.google.com/store/apps/details?id="
    assert cards(page) == [
        ("conversations", f"{play}eu.siacs.conversations&referrer={referrer}"),
        ("yaxim", f"{play}org.yaxim.androidclient&referrer={referrer}"),
        ("siskin-im", f"./invites_page/setup/siskin-im?{token}"),
        ("beagle-im", f"./register?t={token}&c=beagle-im"),
        ("dino", f"./register?t={token}&c=dino"),
        ("gajim", f"./register?t={token}&c=gajim"),
        ("monal", f"./invites_page/setup/monal?{token}"),
        ("renga", f"./register?t={token}&c=renga"),
    ]
    assert page.testid("register-manually").get("href") == f"./register?t={token}"
    assert page.testid("select-dino").text_content() == "Select Dino"  # the name for readers
    logos = doc.xpath("//img[@class='logo']/@src")
    assert logos[0] == "./register_apps/assets/logos/conversations.svg"
    for logo in logos:
        assert (await fetch("GET", f"{server.http_url}/{logo[2:]}")).status == 200
    stylesheet = doc.xpath("//link[@rel='stylesheet']/@href")[0]
    css = await fetch("GET", f"{server.http_url}/{stylesheet[2:]}")
    assert css.status == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "url(" not in css.text and "@import" not in css.text  # no fonts or images elsewhere
    # the QR code is the landing URL, drawn on the server
    (svg,) = doc.xpath("//aside[@class='qr']/*[local-name()='svg']")
    expected = segno.make(invite.landing_page, error="m", micro=False)
    width, height = expected.symbol_size(border=4)
    assert svg.get("viewbox") == f"0 0 {width} {height}"  # (the HTML parser lowers names)
    assert svg.get("role") == "img" and svg.get("aria-label") == "QR code of this invite"
    assert _svg_path(page.text) == _svg_path(
        expected.svg_inline(scale=1, border=4, omitsize=True, dark="#000000", light="#ffffff")
    )
    assert token not in text  # the token is in links, never shown


def _svg_path(svg: str) -> str:
    return re.findall(r' d="(M[^"]+)"', svg)[-1]


async def test_the_visitors_platform_comes_first(server: TestServer) -> None:
    invite = await server.invites().create_account()
    url = f"{server.http_url}/invites_page?{invite.token}"
    for agent, first, note in (
        (IPHONE, ["siskin-im", "monal"], "Apps for iOS are listed first."),
        (ANDROID, ["conversations", "yaxim"], "Apps for Android are listed first."),
        (LINUX, ["dino", "gajim"], "Apps for Linux are listed first."),
    ):
        page = await fetch("GET", url, headers={"User-Agent": agent})
        ids = [i for i, _ in cards(page)]
        assert ids[: len(first)] == first
        assert ids[len(first) :] == [i for i in PROSODY_ORDER if i not in first]
        assert note in visible_text(page)
    page = await fetch("GET", url, headers={"User-Agent": "curl/8.5.0"})
    assert [i for i, _ in cards(page)] == PROSODY_ORDER
    assert "listed first" not in visible_text(page)


async def test_head_and_link_as_a_qr_scanning_app_does_it(server: TestServer) -> None:
    """Conversations and Snikket scan the QR code (the https landing URL), send HEAD, require
    200, read the Link header and carry on as if they had scanned the xmpp: URI: here that is
    a plain HTTP client, then slixmpp registering in-band with the token from the URI."""
    invite = await server.invites().create_account()
    path = invite.landing_page.split(f":{server.https_port}", 1)[1]

    def head() -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection("localhost", server.http_port, timeout=10)
        try:
            conn.request("HEAD", path)
            response = conn.getresponse()
            return response.status, response.getheader("Link"), response.read()
        finally:
            conn.close()

    status, link, body = await asyncio.to_thread(head)
    assert (status, body) == (200, b"")
    found = re.fullmatch(r'<(xmpp:[^>]+)>; rel="alternate"', link or "")
    assert found is not None, link
    uri = found[1]
    assert uri == invite.uri
    token = re.search(r";preauth=([^;]+)", uri)[1]  # type: ignore[index]
    client = await slix_login(
        server.c2s_port, server.ca_file, "scanner@localhost", "scanned-pw-1",
        register=True, preauth=token,
    )  # fmt: skip
    assert client.jid.startswith("scanner@localhost/")
    status, link, _ = await asyncio.to_thread(head)  # used up now
    assert (status, link) == (200, None)


async def test_unknown_used_and_expired_invites_show_the_expired_page(server: TestServer) -> None:
    invites = server.invites()
    used = await invites.create_account()
    assert await invites.use(used.token)
    expired = await invites.create_account(ttl=60)
    server.clock.freeze()
    server.clock.set_time(expired.expires + 1.0)
    for query in ("ZZZZZZZZZZZZZZZZZZZZZZZZ", used.token, expired.token, "", "t=x&c=y"):
        for method in ("GET", "HEAD"):
            page = await fetch(method, f"{server.http_url}/invites_page?{query}")
            assert_page(page)
            assert "Link" not in page.headers
            if method == "GET":
                assert visible_text(page) == (
                    "Invite to localhost Invite expired Sorry, it looks like this invite code has"
                    " expired!"
                )
                page = await fetch("GET", f"{server.http_url}/invites_page/setup/dino?{query}")
                assert_page(page)
                assert "Invite expired" in visible_text(page)


async def test_the_expired_status_is_an_option(tmp_path: Path) -> None:
    for status in (404, 410):
        options = {"invites_page_expired_status": status}
        async with running_server(tmp_path / str(status), modules=MODULES, options=options) as srv:
            page = await fetch("GET", f"{srv.http_url}/invites_page?nothing")
            assert_page(page, status=status)
            assert "Invite expired" in visible_text(page)
            page = await fetch("HEAD", f"{srv.http_url}/invites_page/setup/dino?nothing")
            assert_page(page, status=status)
    with pytest.raises(Exception, match="invites_page_expired_status must be 200, 404 or 410"):
        options = {"invites_page_expired_status": 500}
        async with running_server(tmp_path / "x", modules=MODULES, options=options):
            pass


async def test_setup_pages(server: TestServer) -> None:
    invite = await server.invites().create_account()
    page = await fetch("GET", f"{server.http_url}/invites_page/setup/siskin-im?{invite.token}")
    assert_page(page)
    assert "Link" not in page.headers  # as Prosody: only the landing page has it
    assert page.doc.findtext(".//h1") == "Join localhost with Siskin IM"
    assert page.testid("accept-invite").get("href") == invite.uri
    assert page.testid("accept-invite").text_content() == "Accept invite using Siskin IM"
    text = visible_text(page)
    assert "Step 1: Install Siskin IM Download and install Siskin IM below:" in text
    assert "Step 2: Activate your account Installed ok? Great!" in text
    (store,) = page.doc.xpath("//p[@class='downloads']/a")
    assert (store.get("href"), store.get("target"), store.text_content()) == (
        "https://apps.apple.com/us/app/siskin-im/id1153516838", "_blank",
        "Download on the App Store",
    )  # fmt: skip
    assert store.get("rel") == "noopener noreferrer"
    assert page.doc.xpath("//img[@class='logo']/@src") == [
        "../../register_apps/assets/logos/siskin-im.svg"
    ]
    # an app that cannot take the invite: its step 2 is web registration
    page = await fetch("GET", f"{server.http_url}/invites_page/setup/dino?{invite.token}")
    assert_page(page)
    assert page.testid("register").get("href") == f"../../register?t={invite.token}&c=dino"
    assert "Click the button to open the Dino website" in visible_text(page)
    page = await fetch("GET", f"{server.http_url}/invites_page/setup/pidgin?{invite.token}")
    assert_page(page, status=404)
    assert visible_text(page) == "Unknown app This server does not list that app."


async def test_a_contact_invite(server: TestServer) -> None:
    invites = server.invites()
    both = await invites.create_contact("alice", allow_registration=True)
    page = await fetch("GET", f"{server.http_url}/invites_page?{both.token}")
    assert_page(page)
    assert page.headers["Link"] == f'<{both.uri}>; rel="alternate"'
    assert both.uri.endswith(";ibr=y")
    assert "You have been invited to chat with alice on localhost" in visible_text(page)
    assert page.testid("register-manually").get("href") == f"./register?t={both.token}"
    # a contact invite that allows no account: setup pages, and no registration
    only = await invites.create_contact("alice")
    page = await fetch("GET", f"{server.http_url}/invites_page?{only.token}")
    assert_page(page)
    text = visible_text(page)
    assert "You have been invited to chat with alice on localhost" in text
    assert page.testid("add-contact").get("href") == only.uri
    assert "register" not in page.text.lower().replace("register_apps", "")
    assert text.endswith("add alice@localhost to your contacts in it.")
    assert dict(cards(page))["dino"] == f"./invites_page/setup/dino?{only.token}"
    page = await fetch("GET", f"{server.http_url}/invites_page/setup/dino?{only.token}")
    assert "Step 2: Add alice@localhost to your contacts In Dino, add alice@localhost" in (
        visible_text(page)
    )
    page = await fetch("GET", f"{server.http_url}/invites_page/setup/monal?{only.token}")
    assert page.testid("accept-invite").get("href") == only.uri
    assert "Step 2: Add alice@localhost to your contacts" in visible_text(page)


async def test_a_password_reset_invite(server: TestServer) -> None:
    reset = await server.invites().create_reset("alice")
    page = await fetch("GET", f"{server.http_url}/invites_page?{reset.token}")
    assert_page(page)
    assert visible_text(page) == (
        "Reset your password on localhost This link lets you choose a new password for"
        " alice@localhost. Choose a new password"
    )
    assert page.testid("reset-password").get("href") == f"./register?t={reset.token}"


async def test_moved_paths_and_relative_links(tmp_path: Path) -> None:
    paths = {"invites_page": "/join", "invites_register_web": "/join/register"}
    options = {"http_paths": paths, "http_external_url": "https://chat.example/xmpp/"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        assert invite.landing_page == f"https://chat.example/xmpp/join?{invite.token}"
        page = await fetch("GET", f"{srv.http_url}/join?{invite.token}")
        assert_page(page)
        assert dict(cards(page))["dino"] == f"./join/register?t={invite.token}&c=dino"
        assert dict(cards(page))["monal"] == f"./join/setup/monal?{invite.token}"
        (css,) = page.doc.xpath("//link[@rel='stylesheet']/@href")
        assert css == "./join/static/style.css"
        assert (await fetch("GET", f"{srv.http_url}/join/static/style.css")).status == 200
        assert (await fetch("GET", f"{srv.http_url}/invites_page?{invite.token}")).status == 404
        page = await fetch("GET", f"{srv.http_url}/join/setup/dino?{invite.token}")
        assert page.testid("register").get("href") == f"../register?t={invite.token}&c=dino"


async def test_registration_page_template(tmp_path: Path) -> None:
    options = {"invites_registration_page": "signup/{invite.token}?app={app.id}"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        page = await fetch("GET", f"{srv.http_url}/invites_page?{invite.token}")
        assert dict(cards(page))["dino"] == f"./signup/{invite.token}?app=dino"
        assert page.testid("register-manually").get("href") == f"./signup/{invite.token}?app="


async def test_what_a_page_shows_is_escaped(tmp_path: Path) -> None:
    badge = {
        "image": "assets/logos/generic.svg",
        "alttext": "Get <it>",
        "url": "https://x.example/?a=1&b=2",
    }
    apps = [
        {"name": "<script>x</script>", "text": 'a "b" & <i>c</i>', "id": "x",
         "download": {"buttons": [badge, {"text": "<b>Direct</b>", "url": "https://x.example/d"}]}},
    ]  # fmt: skip
    options = {"site_name": "<b>Chat</b> & co", "site_apps": apps}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        page = await fetch("GET", f"{srv.http_url}/invites_page?{invite.token}")
        assert_page(page)
        assert page.doc.findtext(".//title") == "Invite to <b>Chat</b> & co"
        assert "Invite to &lt;b&gt;Chat&lt;/b&gt; &amp; co" in page.text
        assert page.doc.findtext(".//h3") == "<script>x</script>"
        assert "a &quot;b&quot; &amp; &lt;i&gt;c&lt;/i&gt;" in page.text
        page = await fetch("GET", f"{srv.http_url}/invites_page/setup/x?{invite.token}")
        assert_page(page)
        image, text = page.doc.xpath("//p[@class='downloads']/a")
        assert (image.get("href"), image.get("rel")) == ("https://x.example/?a=1&b=2",
                                                         "noopener noreferrer")  # fmt: skip
        (img,) = image.xpath("img")
        assert img.get("alt") == "Get <it>"
        assert img.get("src") == "../../register_apps/assets/logos/generic.svg"
        assert text.text_content() == "<b>Direct</b>" and "&lt;b&gt;Direct" in page.text


async def test_external_pages_serve_nothing(tmp_path: Path) -> None:
    options: dict[str, Any] = {
        "invites_page_external": True,
        "invites_page": "https://pages.example/{invite.token}",
    }
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        assert invite.landing_page == f"https://pages.example/{invite.token}"
        assert (await fetch("GET", f"{srv.http_url}/invites_page?{invite.token}")).status == 404
    with pytest.raises(Exception, match="invites_page_external needs invites_page"):
        options = {"invites_page_external": True}
        async with running_server(tmp_path / "x", modules=MODULES, options=options):
            pass


async def test_cors_preflight_and_methods(server: TestServer) -> None:
    """Prosody's CORS answers (minixmpp.http.Cors) with Snikket's Expose-Headers: Link, so that
    a web client on another origin can read where an invite leads."""
    invite = await server.invites().create_account()
    page = await fetch("OPTIONS", f"{server.http_url}/invites_page?x")
    assert page.status == 200 and page.body == b""
    assert page.headers["Access-Control-Allow-Origin"] == "*"
    assert page.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert page.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert page.headers["Access-Control-Expose-Headers"] == "Link"
    assert page.headers["Access-Control-Max-Age"] == "7200"
    web_client = {"Origin": "https://webchat.example"}
    for method in ("GET", "HEAD"):
        page = await fetch(method, f"{server.http_url}/invites_page?{invite.token}",
                           headers=web_client)  # fmt: skip
        assert page.headers["Access-Control-Allow-Origin"] == "https://webchat.example"
        assert page.headers.getall("Vary") == ["User-Agent", "Origin"]
        assert page.headers["Access-Control-Expose-Headers"] == "Link"
        assert page.headers["Link"] == f'<{invite.uri}>; rel="alternate"'
    assert (await fetch("POST", f"{server.http_url}/invites_page?x")).status == 405
    assert (await fetch("GET", f"{server.http_url}/invites_page/other")).status == 404
