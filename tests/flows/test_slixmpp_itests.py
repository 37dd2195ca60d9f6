"""slixmpp's own integration tests (its sdist's ``itests/``, written for a live Prosody with
accounts in CI_ACCOUNT1/CI_ACCOUNT2) against a minixmpp server with Prosody's modules.

Each itests file runs in a process of its own (tests/slixmpp_itests.py), bounded in time, all
at once. ``PASSING`` are the ones that must pass; the others need what minixmpp does not have
yet (vCard, MUC, HTTP upload, external components) or an outside server, and are reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from minixmpp.testing import TestServer, running_server
from tests.slixmpp_itests import fetch_itests

MODULES = [
    "disco", "ping", "version", "time", "carbons", "csi", "private", "blocklist", "mam",
    "uptime", "lastactivity", "pep",
]  # fmt: skip
PASSING = {  # 17 of slixmpp 1.17.0's 27 files
    "test_basic_connect_and_message.py",
    "test_blocking.py",
    "test_bob.py",
    "test_chatmarkers.py",
    "test_disco.py",
    "test_ibb.py",
    "test_last_activity.py",
    "test_mam.py",
    "test_pep.py",
    "test_ping.py",
    "test_privatestorage.py",
    "test_quickresponse.py",
    "test_reactions.py",
    "test_retract.py",
    "test_slow_filters.py",
    "test_user_avatar.py",
    "test_version.py",
}
TIMEOUT = 20.0  # per file; a test waiting for what never comes is cut off
PARALLEL = 6


async def run_file(
    srv: TestServer, parent: Path, name: str, slots: asyncio.Semaphore
) -> dict[str, str]:
    async with slots:
        return await _run_file(srv, parent, name)


async def _run_file(srv: TestServer, parent: Path, name: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CI_ACCOUNT1": "ci1@localhost",
        "CI_ACCOUNT1_PASSWORD": "ci1-secret",
        "CI_ACCOUNT2": "ci2@localhost",
        "CI_ACCOUNT2_PASSWORD": "ci2-secret",
    }
    args = [str(srv.c2s_port), str(srv.direct_tls_port), str(srv.ca_file), str(parent), name]
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


@pytest.mark.timeout(240)
async def test_slixmpp_own_integration_tests(tmp_path: Path) -> None:
    parent = await asyncio.to_thread(fetch_itests)
    files = sorted(p.name for p in (parent / "itests").glob("test_*.py"))
    async with running_server(tmp_path, modules=MODULES) as srv:
        await srv.create_user("ci1", "ci1-secret")
        await srv.create_user("ci2", "ci2-secret")
        slots = asyncio.Semaphore(PARALLEL)
        outcomes = await asyncio.gather(*(run_file(srv, parent, n, slots) for n in files))
    by_file = dict(zip(files, outcomes, strict=True))
    passed = sorted(f for f, r in by_file.items() if r and all(v == "ok" for v in r.values()))
    report = "\n".join(f"{f}: {r}" for f, r in by_file.items())
    print(f"slixmpp itests: {len(passed)} of {len(files)} files pass\n{report}")
    assert set(passed) >= PASSING, report
