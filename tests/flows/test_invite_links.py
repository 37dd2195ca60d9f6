"""With the invite pages on, every way of making an invite hands out the landing URL, and that
URL opens: the CLI on the shipped server.toml (in-process while the server is down, then served
once it is up), the ad-hoc commands' "landing-url" field, and mod_invites_api's Location."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

from minixmpp import admin
from minixmpp.testing import running_server
from tests.core.test_cli_extra import serving
from tests.modules.test_mod_adhoc import connect, result_form, run
from tests.web import MINIXMPP, Page, fetch, shipped_config

TOKEN = r"[A-Za-z0-9_-]{24}"


async def cli(folder: Path, *args: str) -> str:
    """A README command run in ``folder`` (where server.toml is): its stdout; it must succeed."""
    proc = await asyncio.create_subprocess_exec(
        MINIXMPP, *args, cwd=folder,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (args, err.decode())
    return out.decode()


def discovered(page: Page) -> str:
    """What a QR-scanning app reads: HEAD answered 200, the xmpp: URI in Link."""
    assert page.status == 200 and page.body == b"", page.status
    found = re.fullmatch(r'<(xmpp:[^>]+)>; rel="alternate"', page.headers.get("Link", ""))
    assert found is not None, page.headers
    return found[1]


async def test_the_shipped_cli_prints_landing_urls_that_the_server_then_serves(
    tmp_path: Path,
) -> None:
    shipped = shipped_config(tmp_path)
    landing = rf"http://localhost:{shipped.http}/invites_page\?({TOKEN})"
    # the server is down: the commands run in-process on the database
    await cli(tmp_path, "user", "add", "alice@localhost", "alice-secret")
    account = (await cli(tmp_path, "mod_invites", "generate", "localhost")).strip()
    assert re.fullmatch(landing, account), account
    named = (await cli(tmp_path, "invite", "create-account", "carol@localhost")).strip()
    assert re.fullmatch(landing, named), named
    contact = await cli(
        tmp_path, "invite", "create-contact", "alice@localhost", "--allow-registration"
    )
    assert re.fullmatch(landing, contact.strip()), contact
    # Prosody's invites_page_supports: contact-only and reset invites get no page by default
    only = await cli(tmp_path, "invite", "create-contact", "alice@localhost")
    assert re.fullmatch(rf"xmpp:alice@localhost\?roster;preauth={TOKEN}", only.strip())
    reset = (await cli(tmp_path, "invite", "create-reset", "alice@localhost")).splitlines()[0]
    assert re.fullmatch(rf"xmpp:alice@localhost\?register;preauth={TOKEN}", reset)
    # then it serves them, at the printed address
    async with serving(shipped.config):
        for link, uri in (
            (account, "xmpp:localhost?register;preauth="),
            (named, "xmpp:carol@localhost?register;preauth="),
            (contact.strip(), "xmpp:alice@localhost?roster;preauth="),
        ):
            token = link.rpartition("?")[2]
            found = discovered(await fetch("HEAD", link))
            assert found.startswith(uri + token), found
            page = await fetch("GET", link)
            assert page.status == 200 and page.doc.findtext(".//title") == "Invite to localhost"
        # the running server's answer is the same link (through its admin socket)
        running = (await cli(tmp_path, "mod_invites", "generate", "localhost")).strip()
        assert re.fullmatch(landing, running), running
        assert discovered(await fetch("HEAD", running)).endswith(running.rpartition("?")[2])


MODULES = [
    "register", "invites", "invites_register", "invites_page",
    "adhoc", "invites_adhoc", "invites_api",
]  # fmt: skip


async def test_ad_hoc_and_api_results_carry_the_landing_url(tmp_path: Path) -> None:
    options = {"admins": ["admin@localhost"]}
    async with running_server(tmp_path, modules=MODULES, options=options) as srv:
        await srv.create_user("admin", "pw")
        tls = ssl.create_default_context(cafile=str(srv.ca_file))
        landing = rf"https://localhost:{srv.https_port}/invites_page\?({TOKEN})"
        admin_client = await connect(srv, "admin")
        for node, uri in (
            ("urn:xmpp:invite#create-account", "xmpp:localhost?register;preauth="),
            ("urn:xmpp:invite#invite", "xmpp:admin@localhost?roster;preauth="),
        ):
            fields = result_form(await run(admin_client, node))
            found = re.fullmatch(landing, fields["landing-url"] or "")
            assert found is not None, fields
            assert fields["uri"] is not None and fields["uri"].startswith(uri + found[1])
            page = await fetch("HEAD", fields["landing-url"] or "", ssl=tls)
            assert discovered(page) == fields["uri"]
        await admin_client.close()

        key = await admin.dispatch(srv.server, "invites_api.create", {"host": "localhost"})
        assert isinstance(key, dict)
        api = f"{srv.http_url}/invites_api?key={key['key']}"
        created = await fetch("GET", api)
        assert created.status == 201 and re.fullmatch(landing, created.headers["Location"])
        redirected = await fetch("GET", api + "&redirect=1")
        assert redirected.status == 303
        location = redirected.headers["Location"]
        assert re.fullmatch(landing, location) and location != created.headers["Location"]
        page = await fetch("GET", location, ssl=tls)
        assert page.status == 200 and page.headers["Link"].startswith("<xmpp:localhost?register")
