"""slixmpp's own integration tests (its sdist's ``itests/``, written for a live Prosody with
accounts in CI_ACCOUNT1/CI_ACCOUNT2, configured by their ``prosody.cfg.lua``) against a
minixmpp server with Prosody's modules.

Each itests file runs in a process of its own (tests/slixmpp_itests.py), bounded in time, all
at once. ``PASSING`` are the ones that must pass; the others fail for the reason ``FAILING``
gives (each seen in a run of its own), and the summary the test prints says it. Files that
change the same state of an account run one after the other (``ONE_AT_A_TIME``).

``test_tls_check.py`` checks that the client's peer port is 5222 (STARTTLS) or 5223 (direct
TLS), so it runs against a second server listening on exactly those ports, on a loopback
address of its own (127.x.y.z: Linux routes all of 127/8 to loopback), where no other server
of this machine listens. (Its two ``test_connect_custom_fail*`` cannot fail: they assert
the tuple ``asyncio.wait`` returns, always true; the server still refuses both mismatches at
once, TLS on the STARTTLS port and XML on the direct TLS port.) ``test_sos.py`` (XEP-0455)
fetches the outage document whose address ``service_outage_status`` announces: a small HTTP
server of this test serves it, as the XEP wants it served by another machine than the XMPP
server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from minixmpp.testing import XmppServer, running_server
from tests.slixmpp_itests import fetch_itests

MODULES = [
    "disco", "ping", "version", "time", "carbons", "csi", "private", "blocklist", "mam",
    "uptime", "lastactivity", "pep", "http_file_share", "vcard_legacy", "vcard4",
    "service_outage_status",
]  # fmt: skip
PASSING = {  # 23 of slixmpp 1.17.0's 27 files
    "test_basic_connect_and_message.py",
    "test_blocking.py",
    "test_bob.py",
    "test_chatmarkers.py",
    "test_disco.py",
    "test_httpupload.py",
    "test_ibb.py",
    "test_last_activity.py",
    "test_mam.py",
    "test_pep.py",
    "test_ping.py",
    "test_privatestorage.py",
    "test_quickresponse.py",
    "test_reactions.py",
    "test_reconnect.py",
    "test_retract.py",
    "test_slow_filters.py",
    "test_sos.py",
    "test_tls_check.py",
    "test_user_avatar.py",
    "test_vcard.py",
    "test_vcard_avatar.py",
    "test_version.py",
}
# Why the others fail. minixmpp has no MUC (XEP-0045) and no server-to-server connections.
_NO_MUC = (
    "MUC (XEP-0045) at CI_MUC_SERVER, which minixmpp does not have; unset, the room is on "
    "the public chat.jabberfr.org, and the join presence to that remote domain is refused "
    "(not-allowed: no server-to-server)"
)
FAILING = {
    "test_muc.py": f"{_NO_MUC}, so waiting for the room's got_online hangs until cut off",
    "test_selfping.py": (
        f"{_NO_MUC}, so waiting for the room's got_online hangs (slixmpp's wait_until gives "
        "up after 30 s) until cut off"
    ),
    "test_moderate.py": (
        "MUC moderation (XEP-0425 in a XEP-0045 room at CI_MUC_SERVER, a MUC service, which "
        "minixmpp does not have); CI_MUC_SERVER has no default, so unset its setUp fails at "
        "once: JID('<uuid>@') is an InvalidJID"
    ),
    "test_component.py": (
        "skipped unless CI=woodpecker (slixmpp's own CI); it connects an external component "
        "(XEP-0114, jabber:component:accept) slixmpp.prosody with secret 'secret' to host "
        "'prosody' port 5347, which minixmpp does not serve (only internal components)"
    ),
}
TIMEOUT = 20.0  # per file; a test waiting for what never comes is cut off
PARALLEL = 6
# Files that change the same state of CI_ACCOUNT1 (its one vCard, its avatar: in PEP with
# vcard_legacy) run one after the other
ONE_AT_A_TIME = ({"test_vcard.py", "test_vcard_avatar.py", "test_user_avatar.py"},)
STANDARD_PORTS = {"test_tls_check.py"}  # against a server on ports 5222 and 5223
OUTAGE_DOCUMENT = "{}"  # XEP-0455's JSON document: no outage (slixmpp's fetch_status: None)


async def run_file(
    srv: XmppServer, address: str, parent: Path, name: str, slots: asyncio.Semaphore,
    turn: asyncio.Lock,
) -> dict[str, str]:  # fmt: skip
    async with turn, slots:
        return await _run_file(srv, address, parent, name)


async def _run_file(srv: XmppServer, address: str, parent: Path, name: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CI_ACCOUNT1": "ci1@localhost",
        "CI_ACCOUNT1_PASSWORD": "ci1-secret",
        "CI_ACCOUNT2": "ci2@localhost",
        "CI_ACCOUNT2_PASSWORD": "ci2-secret",
        # test_httpupload GETs the file with aiohttp's default TLS context: the test CA
        "SSL_CERT_FILE": str(srv.ca_file),
    }
    ports = [str(srv.c2s_port), str(srv.direct_tls_port)]
    args = [address, *ports, str(srv.ca_file), str(parent), name]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.slixmpp_itests", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {name: "timeout"}
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        return {name: f"crashed: {err.decode()[-300:]}"}
    results: dict[str, str] = json.loads(lines[-1])
    return results


@asynccontextmanager
async def outage_document() -> AsyncIterator[str]:
    """An HTTP server of its own serving the XEP-0455 document; yields its URL."""

    async def document(_: web.Request) -> web.Response:
        return web.Response(text=OUTAGE_DOCUMENT, content_type="application/json")

    app = web.Application()
    app.router.add_get("/status.json", document)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/status.json"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def standard_ports_server(folder: Path) -> AsyncIterator[tuple[XmppServer, str]]:
    """A server on ports 5222 and 5223 of a random 127.x.y.z (another one if those are
    taken there, e.g. by a concurrent run of this test); yields it and its address."""
    for attempt in range(5):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        options = {"interfaces": [address], "c2s_ports": [5222], "c2s_direct_tls_ports": [5223]}
        srv = XmppServer(folder / str(attempt), modules=["disco"], options=options)
        try:
            await srv.start()
        except OSError:  # "cannot listen on [address]:5222: Address already in use"
            continue
        try:
            await srv.create_user("ci1", "ci1-secret")
            await srv.create_user("ci2", "ci2-secret")
            yield srv, address
        finally:
            await srv.stop()
        return
    pytest.fail("no free 127.x.y.z with ports 5222 and 5223 in 5 attempts")


@pytest.mark.timeout(240)
async def test_slixmpp_own_integration_tests(tmp_path: Path) -> None:
    parent = await asyncio.to_thread(fetch_itests)
    files = sorted(p.name for p in (parent / "itests").glob("test_*.py"))
    assert set(files) == PASSING | set(FAILING), "a new slixmpp: sort its itests out"
    async with (
        outage_document() as status_url,
        running_server(
            tmp_path / "main", modules=MODULES, options={"outage_status_urls": [status_url]}
        ) as srv,
        standard_ports_server(tmp_path / "standard") as (standard, address),
    ):
        await srv.create_user("ci1", "ci1-secret")
        await srv.create_user("ci2", "ci2-secret")
        slots = asyncio.Semaphore(PARALLEL)
        turns = {name: asyncio.Lock() for name in files}
        for group in ONE_AT_A_TIME:
            shared = asyncio.Lock()
            turns.update(dict.fromkeys(group, shared))
        targets = {
            name: (standard, address) if name in STANDARD_PORTS else (srv, "127.0.0.1")
            for name in files
        }
        outcomes = await asyncio.gather(
            *(run_file(*targets[n], parent, n, slots, turns[n]) for n in files)
        )
    by_file = dict(zip(files, outcomes, strict=True))
    passed = sorted(f for f, r in by_file.items() if r and all(v == "ok" for v in r.values()))
    report = "\n".join(
        f"{f}: {r}" + (f"\n    why: {FAILING[f]}" if f in FAILING else "")
        for f, r in by_file.items()
    )
    print(f"slixmpp itests: {len(passed)} of {len(files)} files pass\n{report}")
    assert set(passed) >= PASSING, report
