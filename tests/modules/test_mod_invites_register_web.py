"""mod_invites_register_web over real HTTP: the form, every refusal with Prosody's text, CSRF,
the registration pipeline's gates (invite, bound and reserved names, IP limits), roles, groups
and contacts, resets, login_link_format, the success page's headers, racing browsers, and logs
and pages that never show a whole token or a password."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.web import Browser, Page, assert_page, visible_text
from tests.xmpp import slix_login

MODULES = ["register", "invites", "invites_register", "invites_page", "invites_register_web"]
NO_STORE = ("no-cache, no-store, must-revalidate", "no-cache", "0")  # Prosody's three headers
GOOD = "correct horse battery"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = Browser()
    yield b
    await b.close()


def form_fields(page: Page) -> dict[str, str]:
    """The hidden fields of the page's form (token, app_id, csrf)."""
    return {i.get("name"): i.get("value") for i in page.doc.xpath("//input[@type='hidden']")}


async def submit(
    browser: Browser, srv: TestServer, token: str, user: str, password: str, app: str = ""
) -> Page:
    """Open the form as a person would (GET), then send it (POST) with ``user`` and
    ``password``."""
    query = f"t={token}" + (f"&c={app}" if app else "")
    form = await browser.get(f"{srv.http_url}/register?{query}")
    assert form.status == 200, form.status
    data = {**form_fields(form), "user": user, "password": password}
    return await browser.post(f"{srv.http_url}/register?{query}", data)


async def exists(srv: TestServer, username: str) -> bool:
    return bool(await srv.server.hosts["localhost"].users.exists(username))


# -- the form -----------------------------------------------------------------------------------


async def test_the_form(server: TestServer, browser: Browser) -> None:
    invite = await server.invites().create_account()
    page = await browser.get(f"{server.http_url}/register?t={invite.token}&c=dino")
    assert_page(page, cors=False)  # no CORS on a form
    assert page.headers["Set-Cookie"].startswith("minixmpp_register=")
    assert page.doc.findtext(".//title") == "localhost"
    assert visible_text(page) == (
        "Register on localhost localhost is part of XMPP, a secure and decentralized messaging"
        " network. To begin chatting using Dino you need to first register an account. Creating"
        " an account will allow to communicate with other people on localhost and other services"
        " on the XMPP network. Create an account Username: @localhost Choose a username, this"
        " will become the first part of your new chat address. Password: Enter a secure password"
        " that you do not use anywhere else. Submit"
    )
    (password,) = page.doc.xpath("//input[@name='password']")
    assert (password.get("type"), password.get("minlength")) == ("password", "8")
    assert password.get("autocomplete") == "new-password"
    fields = form_fields(page)
    assert (fields["token"], fields["app_id"]) == (invite.token, "dino")
    assert len(fields["csrf"]) == 43
    assert page.doc.xpath("//form/@method") == ["post"]
    # an app that takes the invite itself: "Open the app" first
    page = await browser.get(f"{server.http_url}/register?t={invite.token}&c=siskin-im")
    assert page.testid("open-app").get("href") == invite.uri
    assert "If you already have Siskin IM installed, we recommend" in visible_text(page)
    page = await browser.get(f"{server.http_url}/register?t={invite.token}&c=nothing")
    assert "app_id" not in form_fields(page) and "using" not in visible_text(page)


async def test_the_password_policy_sets_the_minimum_length(tmp_path: Path) -> None:
    options = {"password_policy": {"length": 12}}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            page = await browser.get(f"{srv.http_url}/register?t={invite.token}")
            assert page.doc.xpath("//input[@name='password']/@minlength") == ["12"]
            page = await submit(browser, srv, invite.token, "newbie", "eleven char")
            assert page.message() == "Password is too short (minimum 12 characters)"


async def test_tokens_that_cannot_register_go_to_the_landing_page(
    server: TestServer, browser: Browser
) -> None:
    invites = server.invites()
    contact_only = await invites.create_contact("alice")
    used = await invites.create_account()
    assert await invites.use(used.token)
    for token in ("ZZZZZZZZZZZZZZZZZZZZZZZZ", used.token, contact_only.token, "", "a b&c"):
        page = await browser.get(f"{server.http_url}/register", params={"t": token})
        assert page.status == 303
        quoted = token.replace(" ", "%20").replace("&", "%26")
        assert page.headers["Location"] == f"./invites_page?{quoted}"
        page = await browser.post(f"{server.http_url}/register", {"token": token, "user": "x"})
        assert (page.status, page.headers["Location"]) == (303, f"./invites_page?{quoted}")
    landing = await browser.get(f"{server.http_url}/invites_page?{contact_only.token}")
    assert "Add alice@localhost to your contacts" in visible_text(landing)


# -- refusals, with Prosody's texts -------------------------------------------------------------


async def test_every_refusal_on_the_form(server: TestServer, browser: Browser) -> None:
    invite = await server.invites().create_account()
    for user, password, message in (
        ("", GOOD, "Please fill in all fields."),
        ("newbie", "", "Please fill in all fields."),
        ("new@bie", GOOD, "This username contains invalid characters."),
        ("new bie", GOOD, "This username contains invalid characters."),
        ("<b>x</b>", GOOD, "This username contains invalid characters."),
        ("Alice", GOOD, "This username is already in use."),  # nodeprep: alice
        ("newbie", "short", "Password is too short (minimum 8 characters)"),
        ("newbie", "my newbie pw", "Password must not include your username"),
        ("newbie", GOOD + "\x07", "This password contains characters that cannot be used."),
    ):
        page = await submit(browser, server, invite.token, user, password)
        assert_page(page, cors=False)
        assert page.message() == message, (user, password)
        assert page.testid("message").get("role") == "alert"
        assert page.doc.xpath("//input[@name='user']/@value") == [user]  # kept, escaped
        assert page.doc.xpath("//input[@name='password']/@value") == []  # never sent back
    assert await server.invites().find(invite.token) is not None  # still usable
    assert not await exists(server, "newbie")


async def test_csrf(server: TestServer, browser: Browser) -> None:
    invite = await server.invites().create_account()
    url = f"{server.http_url}/register?t={invite.token}"
    form = await browser.get(url)
    fields = {**form_fields(form), "user": "newbie", "password": GOOD}
    forger = Browser()  # another site posting into this form: it has no cookie
    try:
        for attempt in (
            forger.post(url, fields),
            forger.post(url, {k: v for k, v in fields.items() if k != "csrf"}),
            browser.post(url, {**fields, "csrf": ""}),
            browser.post(url, {**fields, "csrf": fields["csrf"][::-1]}),
        ):
            page = await attempt
            assert_page(page, status=403, cors=False)
            assert page.message() == "This form has expired. Please send it again."
        assert not await exists(server, "newbie")
        # the refused form carries a field for the cookie it now has: sending it again works
        retry = await forger.post(url, fields)
        page = await forger.post(url, {**fields, **form_fields(retry)})
        assert page.status == 200 and page.testid("jid").text == "newbie@localhost"
    finally:
        await forger.close()


BROKEN_MODULE = """
from minixmpp.events import USER_REGISTERING

def load(module):
    @module.hook(USER_REGISTERING)
    async def broken(event):
        raise RuntimeError("a bug in a user-registering handler")
"""


async def test_a_failure_shows_an_error_id_that_the_log_explains(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Prosody's "An unknown error has occurred (ID)": the page has the ID, the log has the
    ID and the traceback; the invite is not used."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "mod_broken.py").write_text(BROKEN_MODULE)
    options = {"plugin_paths": [str(plugins)]}
    async with running_server(tmp_path, modules=[*MODULES, "broken"], options=options) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            page = await submit(browser, srv, invite.token, "newbie", GOOD)
        assert_page(page, cors=False)
        found = re.fullmatch(r"An unknown error has occurred \(([0-9a-f]{8})\)", page.message())
        assert found is not None, page.message()
        assert "a bug" not in page.text and "RuntimeError" not in page.text
        (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert logged.getMessage() == f"web registration failed ({found[1]})"
        assert logged.exc_info is not None and "a bug" in str(logged.exc_info[1])
        assert await srv.invites().find(invite.token) is not None
        assert not await exists(srv, "newbie")


# -- success ------------------------------------------------------------------------------------


async def test_success_and_logging_in(server: TestServer, browser: Browser) -> None:
    invite = await server.invites().create_account()
    page = await submit(browser, server, invite.token, "Newbie", GOOD)
    assert_page(page, cors=False)
    h = page.headers
    assert (h["Cache-Control"], h["Pragma"], h["Expires"]) == NO_STORE
    assert visible_text(page) == (
        "localhost Congratulations! You have created an account on localhost. To start chatting,"
        " you need to enter your new account credentials into your chosen XMPP software. As a"
        " final reminder, your account details are shown below: Chat address (JID):"
        " newbie@localhost Password: the one you have just chosen Your password is stored"
        " encrypted on localhost: nobody can look it up, so keep it safe and never share it"
        " with anyone."
    )
    assert GOOD not in page.text  # never shown (Prosody's page shows it)
    assert await server.invites().find(invite.token) is None  # used
    client = await slix_login(server.c2s_port, server.ca_file, "newbie@localhost", GOOD)
    assert client.jid.startswith("newbie@localhost/")
    data = {"token": invite.token, "user": "second", "password": GOOD, "csrf": "x"}
    again = await browser.post(f"{server.http_url}/register?t={invite.token}", data)
    assert again.status == 303  # the same form sent again: the invite is gone


async def test_success_with_an_app_and_webchat(tmp_path: Path) -> None:
    options = {"webchat_url": "https://chat.example/"}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            page = await submit(browser, srv, invite.token, "newbie", GOOD, app="beagle-im")
        text = visible_text(page)
        assert text.startswith(
            "localhost Congratulations! You have created an account on localhost! You can now"
            " set up Beagle IM and connect it to your new account. Step 1: Download and install"
            " Beagle IM Download and install Beagle IM below: Download from Mac App Store Step 2:"
            " Connect Beagle IM to your new account Launch Beagle IM, and select 'Yes' to add a"
            " new account."
        )
        assert "No suitable software installed right now?" in text
        (webchat,) = page.doc.xpath("//a[text()='Log in via web']/@href")
        assert webchat == "https://chat.example/"


async def test_login_link_format_redirects(tmp_path: Path) -> None:
    apps = [
        {
            "name": "Web Chat",
            "login_link_format": "https://chat.example/login?jid={username}@{domain}&app={app.id}",
        }
    ]
    async with running_server(tmp_path, modules=MODULES, options={"site_apps": apps}) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            form = await browser.get(f"{srv.http_url}/register?t={invite.token}&c=web-chat")
            assert (
                "form-action 'self' https://chat.example;"
                in (form.headers["Content-Security-Policy"])
            )
            page = await submit(browser, srv, invite.token, "newbie", GOOD, app="web-chat")
        assert page.status == 303
        assert page.headers["Location"] == (
            "https://chat.example/login?jid=newbie@localhost&app=web-chat"
        )
        assert (page.headers["Cache-Control"], page.headers["Expires"]) == (NO_STORE[0], "0")


# -- the registration pipeline ------------------------------------------------------------------


async def test_roles_groups_and_the_contact_come_with_the_invite(server: TestServer) -> None:
    host = server.server.hosts["localhost"]
    invites = server.invites()
    admin = await invites.create_account(roles=["prosody:admin"], groups=["team"])
    friend = await invites.create_contact("alice", allow_registration=True)
    for invite, name in ((admin, "boss"), (friend, "friend")):
        async with Browser() as browser:
            page = await submit(browser, server, invite.token, name, GOOD)
            assert page.status == 200 and page.testid("jid").text == f"{name}@localhost"
    assert await host.users.roles("boss") == ["prosody:admin"]
    alice = await host.rosters.items("localhost", "alice")
    mine = await host.rosters.items("localhost", "friend")
    assert alice["friend@localhost"].subscription == "both"
    assert mine["alice@localhost"].subscription == "both"


async def test_bound_and_reserved_names(server: TestServer, browser: Browser) -> None:
    invites = server.invites()
    carols = await invites.create_account("carol")
    page = await browser.get(f"{server.http_url}/register?t={carols.token}")
    (user,) = page.doc.xpath("//input[@name='user']")
    assert (user.get("value"), user.get("readonly")) == ("carol", "readonly")
    page = await submit(browser, server, carols.token, "dave", GOOD)  # a tampered form
    assert_page(page, cors=False)
    assert visible_text(page).startswith(
        "Invite to localhost Registration error The chosen username is not valid with this"
        " invitation Back to your invite"
    )
    other = await invites.create_account()
    page = await submit(browser, server, other.token, "carol", GOOD)
    assert page.message() == "The requested username is reserved"
    page = await submit(browser, server, carols.token, "carol", GOOD)
    assert page.testid("jid").text == "carol@localhost"


async def test_ip_limits_apply(tmp_path: Path) -> None:
    options = {"registration_blocklist": ["127.0.0.1", "::1"], "registration_allowlist": []}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            page = await submit(browser, srv, invite.token, "newbie", GOOD)
        assert_page(page, cors=False)
        assert page.message() == "Your IP address is blocklisted"
        assert await srv.invites().find(invite.token) is not None


async def test_a_password_reset(server: TestServer, browser: Browser) -> None:
    reset = await server.invites().create_reset("alice")
    page = await browser.get(f"{server.http_url}/register?t={reset.token}")
    assert_page(page, cors=False)
    assert visible_text(page) == (
        "Reset your password on localhost Choose a new password for alice@localhost. Username:"
        " @localhost This is your chat address. New password: Enter a secure password that you do"
        " not use anywhere else. Set new password"
    )
    assert page.doc.xpath("//input[@name='user']/@value") == ["alice"]
    page = await submit(browser, server, reset.token, "bob", GOOD)  # a tampered form
    assert "Incorrect username for password reset" in visible_text(page)
    page = await submit(browser, server, reset.token, "alice", "short")
    assert page.message() == "Password is too short (minimum 8 characters)"
    page = await submit(browser, server, reset.token, "alice", GOOD)
    assert_page(page, cors=False)
    assert (page.headers["Cache-Control"], page.headers["Pragma"]) == NO_STORE[:2]
    assert visible_text(page) == (
        "localhost Password changed You can now log in to alice@localhost with your new password."
    )
    assert GOOD not in page.text
    client = await slix_login(server.c2s_port, server.ca_file, "alice@localhost", GOOD)
    assert client.jid.startswith("alice@localhost/")
    assert await server.invites().find(reset.token) is None


async def test_one_token_one_account_however_many_browsers_race(server: TestServer) -> None:
    for round_ in range(3):
        invite = await server.invites().create_account()
        browsers = [Browser() for _ in range(4)]
        try:
            forms = [await b.get(f"{server.http_url}/register?t={invite.token}") for b in browsers]
            names = [f"racer{round_}x{i}" for i in range(len(browsers))]
            pages = await asyncio.gather(
                *(
                    b.post(
                        f"{server.http_url}/register?t={invite.token}",
                        {**form_fields(f), "user": name, "password": GOOD},
                    )
                    for b, f, name in zip(browsers, forms, names, strict=True)
                )
            )
        finally:
            for b in browsers:
                await b.close()
        assert sorted(p.status for p in pages) == [200, 303, 303, 303]
        assert {p.headers.get("Location") for p in pages if p.status == 303} == {
            f"./invites_page?{invite.token}"
        }
        created = [n for n in names if await exists(server, n)]
        assert len(created) == 1
        (winner,) = [p for p in pages if p.status == 200]
        assert winner.testid("jid").text == f"{created[0]}@localhost"


async def test_a_reusable_invite_with_max_uses(server: TestServer, browser: Browser) -> None:
    invite = await server.invites().create_account(reusable=True, max_uses=2)
    for name in ("first", "second"):
        page = await submit(browser, server, invite.token, name, GOOD)
        assert page.testid("jid").text == f"{name}@localhost"
    page = await browser.get(f"{server.http_url}/register?t={invite.token}")
    assert page.status == 303


async def test_moved_paths(tmp_path: Path) -> None:
    paths = {"invites_page": "/join", "invites_register_web": "/join/register"}
    async with running_server(tmp_path, modules=MODULES, options={"http_paths": paths}) as srv:
        invite = await srv.invites().create_account()
        async with Browser() as browser:
            form = await browser.get(f"{srv.http_url}/join/register?t={invite.token}")
            assert form.doc.xpath("//link[@rel='stylesheet']/@href") == ["./static/style.css"]
            page = await browser.post(
                f"{srv.http_url}/join/register?t={invite.token}",
                {**form_fields(form), "user": "newbie", "password": GOOD},
            )
            assert page.testid("jid").text == "newbie@localhost"
            gone = await browser.get(f"{srv.http_url}/join/register?t={invite.token}")
            assert gone.headers["Location"] == f"../join?{invite.token}"


async def test_logs_never_show_a_token_or_a_password(
    server: TestServer, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    invites = server.invites()
    invite = await invites.create_account()
    reset = await invites.create_reset("alice")
    await browser.get(f"{server.http_url}/invites_page?{invite.token}")
    await submit(browser, server, invite.token, "newbie", "tiny1")
    await browser.post(f"{server.http_url}/register?t={invite.token}", {"token": invite.token})
    page = await submit(browser, server, invite.token, "newbie", GOOD)
    assert page.status == 200
    await submit(browser, server, reset.token, "alice", "new alice pw")
    await browser.get(f"{server.http_url}/register?t={invite.token}")  # used: redirected
    # what the server's log shows: its sinks are on the "minixmpp" logger (aiosqlite's debug
    # lines, with SQL parameters, never reach them)
    records = [r for r in caplog.records if r.name.startswith("minixmpp")]
    logged = "\n".join(r.getMessage() for r in records)
    assert "account newbie@localhost registered (invites_register_web)" in logged
    for secret in (invite.token, reset.token, GOOD, "new alice pw", "tiny1"):
        assert secret not in logged, secret
    for record in records:
        assert not any(isinstance(a, str) and invite.token in a for a in record.args or ())
