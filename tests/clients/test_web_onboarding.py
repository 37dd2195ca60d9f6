"""The invite web pages in Debian's headless Chromium (playwright-core, JavaScript off), as
people go through them: a landing link, an app, web registration, then a slixmpp login with the
new account; a contact invite ending with both rosters "both"; a password reset; an expired
link; two browsers racing for one token; and the shipped server.toml, from `minixmpp mod_invites
generate localhost` to a working account.

Every page is screenshotted into the test's tmp folder (``browser/*.png``);
``MINIXMPP_SCREENSHOTS=docs/screenshots`` copies those the README shows (DOCUMENTED) there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minixmpp.testing import TestServer, running_server
from tests.clients.node import INSTALL_TIMEOUT, NodeScript, NodeTools
from tests.web import MINIXMPP, shipped_config
from tests.xmpp import TIMEOUT, slix_login

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["register", "invites", "invites_register", "invites_page", "invites_register_web"]
BROWSER_TIMEOUT = 45.0  # Chromium's start and every page of a journey
GOOD = "correct horse battery"
# the screenshots the README shows (MINIXMPP_SCREENSHOTS=docs/screenshots copies them there)
DOCUMENTED = {
    "landing", "landing-phone", "setup", "register", "register-error", "success",
    "contact-only-landing", "register-refused", "reset-landing", "reset-form", "reset-done",
    "expired",
}  # fmt: skip

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 3 * BROWSER_TIMEOUT)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    # no HTTPS port: the landing links are http://localhost:PORT/…, which the browser trusts
    options = {"https_ports": [], "invites_page_supports": ["account", "account-and-contact",
                                                             "password-reset"]}  # fmt: skip
    async with running_server(tmp_path / "server", modules=MODULES, options=options) as srv:
        await srv.create_user("alice", "alice-secret")
        yield srv


async def journey(
    tools: NodeTools, chromium: Path, tmp_path: Path, origin: str, name: str, **params: Any
) -> tuple[NodeScript, Path]:
    artifacts = tmp_path / "browser"
    config = {
        "chromium": str(chromium), "journey": name, "origin": origin,
        "artifacts": str(artifacts), "timeout_ms": int(BROWSER_TIMEOUT * 1000), **params,
    }  # fmt: skip
    return await NodeScript.start(tools, "web_onboarding.mjs", config, artifacts), artifacts


async def finish(node: NodeScript, artifacts: Path, *, keep: bool) -> None:
    """The last line: nothing was loaded from elsewhere, no console error (CSP violations show
    there), no HTTP error; then the script ends by itself. Screenshots are kept."""
    checks = await node.event("checks")
    assert checks == {"event": "checks", "blocked": [], "console_errors": [], "http_errors": []}
    await node.finished()
    wanted = os.environ.get("MINIXMPP_SCREENSHOTS")
    if wanted and keep:
        folder = ROOT / wanted
        folder.mkdir(parents=True, exist_ok=True)
        for picture in os.listdir(artifacts):
            if picture.removesuffix(".png") in DOCUMENTED:
                shutil.copy(artifacts / picture, folder / picture)


async def run(node: NodeScript, artifacts: Path, steps: Any, *, keep: bool = True) -> None:
    where = f"(screenshots and browser log under {artifacts})"
    try:
        await steps
        await finish(node, artifacts, keep=keep)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{where}") from None
    finally:
        await node.kill()


async def test_landing_link_app_web_registration_then_login(
    server: TestServer, tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    invite = await server.invites().create_account()
    assert invite.landing_page == f"{server.http_url}/invites_page?{invite.token}"
    node, artifacts = await journey(
        node_clients, chromium, tmp_path, server.http_url, "register",
        landing_url=invite.landing_page, setup_app="siskin-im", app="dino",
        username="newbie", weak_password="newbie-password", password=GOOD,
    )  # fmt: skip

    async def steps() -> None:
        phone = await node.event("phone")
        assert 0 < phone["widest"] <= phone["viewport"], phone  # nothing wider than a phone
        refused = await node.event("refused")
        assert refused["message"] == "Password must not include your username"
        registered = await node.event("registered")
        assert registered["jid"] == "newbie@localhost"
        client = await slix_login(server.c2s_port, server.ca_file, "newbie@localhost", GOOD)
        assert client.jid.startswith("newbie@localhost/")
        await client.disconnect()

    await run(node, artifacts, steps())
    for name in ("landing", "landing-phone", "setup", "register", "register-error", "success"):
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name


async def test_a_contact_invite_ends_with_both_rosters_both(
    server: TestServer, tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    alice = await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost", "alice-secret",
        roster=True, watch=["roster_update"],
    )  # fmt: skip
    await alice.next_event("roster_update")  # its own roster fetch
    invite = await server.invites().create_contact("alice", allow_registration=True)
    only = await server.invites().create_contact("alice")  # no account: no landing page given
    node, artifacts = await journey(
        node_clients, chromium, tmp_path, server.http_url, "contact",
        landing_url=invite.landing_page, username="friend", password=GOOD,
        contact_only_url=f"{server.http_url}/invites_page?{only.token}",
    )  # fmt: skip

    async def steps() -> None:
        assert await node.event("contact-only") == {
            "event": "contact-only", "add_contact": only.uri, "register_manually": 0,
        }  # fmt: skip
        assert (await node.event("registered"))["jid"] == "friend@localhost"
        push = await alice.next_event("roster_update")  # the server's push to alice
        assert push["roster"]["items"]["friend@localhost"]["subscription"] == "both"
        friend = await slix_login(
            server.c2s_port, server.ca_file, "friend@localhost", GOOD, roster=True
        )
        assert alice.roster["friend@localhost"]["subscription"] == "both"
        assert friend.roster["alice@localhost"]["subscription"] == "both"
        await friend.disconnect()

    await run(node, artifacts, steps())
    await alice.disconnect()


async def test_a_password_reset(
    server: TestServer, tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    invite = await server.invites().create_reset("alice")
    assert invite.landing_page is not None
    node, artifacts = await journey(
        node_clients, chromium, tmp_path, server.http_url, "reset",
        landing_url=invite.landing_page, password=GOOD,
    )  # fmt: skip

    async def steps() -> None:
        assert (await node.event("reset"))["jid"] == "alice@localhost"
        client = await slix_login(server.c2s_port, server.ca_file, "alice@localhost", GOOD)
        await client.disconnect()

    await run(node, artifacts, steps())


async def test_a_refused_registration_says_why(
    tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    """The web form goes through user-registering: here the IP limits refuse loopback."""
    options = {
        "https_ports": [], "registration_blocklist": ["127.0.0.1", "::1"],
        "registration_allowlist": [],
    }  # fmt: skip
    async with running_server(tmp_path / "server", modules=MODULES, options=options) as srv:
        invite = await srv.invites().create_account()
        node, artifacts = await journey(
            node_clients, chromium, tmp_path, srv.http_url, "refused",
            register_url=f"{srv.http_url}/register?t={invite.token}", username="newbie",
            password=GOOD,
        )  # fmt: skip

        async def steps() -> None:
            refused = await node.event("refused")
            assert (refused["heading"], refused["message"]) == (
                "Registration error", "Your IP address is blocklisted",
            )  # fmt: skip
            assert await srv.invites().find(invite.token) is not None

        await run(node, artifacts, steps())


async def test_an_expired_link(
    server: TestServer, tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    invites = server.invites()
    invite = await invites.create_account(ttl=60)
    server.clock.freeze()
    server.clock.set_time(invite.expires + 1.0)
    node, artifacts = await journey(
        node_clients, chromium, tmp_path, server.http_url, "expired", url=invite.landing_page
    )

    async def steps() -> None:
        expired = await node.event("expired")
        assert (expired["status"], expired["heading"]) == (200, "Invite expired")

    await run(node, artifacts, steps())


async def test_two_browsers_race_for_one_token(
    server: TestServer, tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    invite = await server.invites().create_account()
    node, artifacts = await journey(
        node_clients, chromium, tmp_path, server.http_url, "race",
        register_url=f"{server.http_url}/register?t={invite.token}",
        usernames=["racer-one", "racer-two"], password=GOOD,
    )  # fmt: skip

    async def steps() -> None:
        results = (await node.event("raced"))["results"]
        won = [r for r in results if r["jid"] is not None]
        lost = [r for r in results if r["jid"] is None]
        assert len(won) == 1 and won[0]["heading"] == "Congratulations!", results
        assert len(lost) == 1 and lost[0]["heading"] == "Invite expired", results
        assert lost[0]["url"] == f"{server.http_url}/invites_page?{invite.token}"
        users = server.server.hosts["localhost"].users
        made = [n for n in ("racer-one", "racer-two") if await users.exists(n)]
        assert [f"{n}@localhost" for n in made] == [won[0]["jid"]]

    await run(node, artifacts, steps())


# -- the shipped configuration, as a new user runs it ----------------------------------------------


async def test_the_shipped_server_toml_from_generate_to_an_account(
    tmp_path: Path, node_clients: NodeTools, chromium: Path
) -> None:
    """README's two commands on the shipped server.toml (its ports moved to free ones, so that
    the test runs beside anything), as they are written there: `minixmpp serve`, then
    `minixmpp mod_invites generate localhost` prints a link that opens in the browser and ends
    in an account."""
    shipped = shipped_config(tmp_path)
    serve = await asyncio.create_subprocess_exec(
        MINIXMPP, "serve", cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    drain: asyncio.Future[bytes] | None = None
    try:
        assert serve.stderr is not None
        while True:  # bounded: the server says it serves at once, or ends
            line = (await asyncio.wait_for(serve.stderr.readline(), 30)).decode()
            assert line, "the server ended before serving"
            if "minixmpp.server serving localhost" in line:
                break
        drain = asyncio.ensure_future(serve.stderr.read())
        generate = await asyncio.create_subprocess_exec(
            MINIXMPP, "mod_invites", "generate", "localhost",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(generate.communicate(), 60)
        assert generate.returncode == 0, err
        link = out.decode().strip()
        origin = f"http://localhost:{shipped.http}"
        assert re.fullmatch(rf"{origin}/invites_page\?[A-Za-z0-9_-]{{24}}", link), link
        node, artifacts = await journey(
            node_clients, chromium, tmp_path, origin, "register",
            landing_url=link, setup_app="monal", app="gajim", username="fresh",
            weak_password="fresh-password", password=GOOD,
        )  # fmt: skip

        async def steps() -> None:
            await node.event("phone")
            await node.event("refused")
            assert (await node.event("registered"))["jid"] == "fresh@localhost"
            client = await slix_login(
                shipped.c2s, tmp_path / "certs" / "ca.pem", "fresh@localhost", GOOD
            )
            assert client.jid.startswith("fresh@localhost/")
            await client.disconnect()

        await run(node, artifacts, steps(), keep=False)  # the same pages as the first test
    finally:
        if serve.returncode is None:
            serve.terminate()
        await asyncio.wait_for(serve.wait(), TIMEOUT * 3)
        if drain is not None:
            await drain
