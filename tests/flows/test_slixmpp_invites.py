"""Invite journeys with unmodified slixmpp clients (plus the small <preauth/> stanza), and the
invite CLI against a server process.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minixmpp.testing import TestServer, running_server
from tests.core.test_cli import write_config
from tests.xmpp import SlixClient, register_preauth_stanza, slix_login

MODULES = ["register", "invites", "invites_register", "ping"]
INVITE_FEATURES = [
    "{urn:xmpp:invite}register",
    "{urn:xmpp:ibr-token:0}register",
    "{http://jabber.org/features/iq-register}register",
]

register_preauth_stanza()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with running_server(tmp_path, modules=MODULES) as srv:
        for name in ("alice", "bob"):
            await srv.create_user(name, f"{name}-secret")
        yield srv


async def sign_up(server: TestServer, jid: str, password: str, token: str, **kw: Any) -> SlixClient:
    return await slix_login(
        server.c2s_port, server.ca_file, jid, password, register=True, preauth=token, **kw
    )


async def test_invite_sign_up(server: TestServer) -> None:
    invite = await server.invites().create_account()
    client = await sign_up(server, "newbie@localhost/app", "s3cret", invite.token)
    assert client.jid == "newbie@localhost/app"
    assert client.features_seen[1][:3] == INVITE_FEATURES  # after TLS, before SASL
    assert all("register" not in tag for tag in client.features_seen[-1])  # after SASL
    for token, why in (
        (invite.token, "used"),
        ("ZZZZZZZZZZZZZZZZZZZZZZZZ", "unknown"),
    ):
        with pytest.raises(AssertionError, match=r"preauth failed.*forbidden"):
            await sign_up(server, f"x{why}@localhost", "pw", token)


async def test_expired_and_revoked_tokens(server: TestServer) -> None:
    api = server.invites()
    expired, revoked = await api.create_account(), await api.create_account()
    assert await api.revoke(revoked.token)
    server.clock.freeze()
    server.clock.set_time(expired.expires + 1.0)
    for token in (expired.token, revoked.token):
        with pytest.raises(AssertionError, match="preauth failed"):
            await sign_up(server, "late@localhost", "pw", token)
    assert not await server.server.hosts["localhost"].users.exists("late")


async def test_without_an_invite_sign_up_is_refused(server: TestServer) -> None:
    with pytest.raises(AssertionError, match="through invitation only"):
        await slix_login(server.c2s_port, server.ca_file, "walkin@localhost", "pw", register=True)


async def test_contact_invite_makes_friends(server: TestServer) -> None:
    invite = await server.invites().create_contact("alice", allow_registration=True)
    alice = await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost/desk", "alice-secret",
        roster=True, watch=["roster_update"],
    )  # fmt: skip
    await alice.next_event("roster_update")  # its own roster fetch
    nurse = await sign_up(server, "nurse@localhost/app", "pw", invite.token, roster=True)
    push = await alice.next_event("roster_update")
    assert push["type"] == "set"
    assert push["roster"]["items"]["nurse@localhost"]["subscription"] == "both"
    assert alice.roster["nurse@localhost"]["subscription"] == "both"
    assert nurse.roster["alice@localhost"]["subscription"] == "both"


async def test_subscription_approved_by_the_server(server: TestServer) -> None:
    invite = await server.invites().create_contact("alice")
    watch = ["roster_subscription_request", "roster_subscription_authorized", "got_online"]
    alice = await slix_login(
        server.c2s_port, server.ca_file, "alice@localhost/desk", "alice-secret",
        roster=True, watch=watch,
    )  # fmt: skip
    bob = await slix_login(
        server.c2s_port, server.ca_file, "bob@localhost/phone", "bob-secret",
        roster=True, watch=watch,
    )  # fmt: skip
    request = bob.client.Presence()
    request["to"], request["type"] = "alice@localhost", "subscribe"
    request["preauth"]["token"] = invite.token
    request.send()
    assert (await bob.next_event("roster_subscription_authorized"))["from"] == "alice@localhost"
    back = await bob.next_event("roster_subscription_request")  # alice subscribes back
    assert back["from"] == "alice@localhost"
    await bob.event_from("got_online", "alice@localhost/desk")
    await alice.settle()
    await bob.settle()
    assert alice.pending_events("roster_subscription_request") == []  # never asked
    seen_by_alice = alice.roster["bob@localhost"]
    assert (seen_by_alice["from"], seen_by_alice["pending_out"]) == (True, True)
    assert bob.roster["alice@localhost"]["to"]


async def test_reset_bound_and_reusable_invites(server: TestServer) -> None:
    api = server.invites()
    reset = await api.create_reset("bob")
    with pytest.raises(AssertionError, match="Incorrect username for password reset"):
        await sign_up(server, "mallory@localhost", "pw", reset.token)
    await sign_up(server, "bob@localhost/new", "new-bob-pw", reset.token)
    with pytest.raises(AssertionError, match="failed_all_auth"):
        await slix_login(server.c2s_port, server.ca_file, "bob@localhost", "bob-secret")

    bound = await api.create_account("carol")
    with pytest.raises(AssertionError, match="not valid with this invitation"):
        await sign_up(server, "dave@localhost", "pw", bound.token)
    await sign_up(server, "carol@localhost", "pw", bound.token)

    club = await api.create_account(reusable=True, max_uses=2)
    for name in ("m1", "m2"):
        await sign_up(server, f"{name}@localhost", "pw", club.token)
    with pytest.raises(AssertionError, match="preauth failed"):
        await sign_up(server, "m3@localhost", "pw", club.token)


# -- the CLI, as an operator runs it --------------------------------------------------------


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minixmpp", *args, "-c", str(folder / "server.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def configure(folder: Path, modules: list[str]) -> None:
    write_config(folder, modules="[" + ", ".join(f'"{m}"' for m in modules) + "]")


def test_invite_commands_offline(tmp_path: Path) -> None:
    configure(tmp_path, MODULES)
    assert cli(tmp_path, "user", "add", "alice@localhost", "pw").returncode == 0
    generated = cli(tmp_path, "mod_invites", "generate", "localhost")
    assert generated.returncode == 0, generated.stderr
    assert re.fullmatch(r"xmpp:localhost\?register;preauth=[A-Za-z0-9_-]{24}\n", generated.stdout)

    created = cli(
        tmp_path, "invite", "create-account", "localhost", "--reusable", "--max-uses", "3",
        "--expires-after", "2 days", "--group", "team",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().rpartition("=")[2]
    contact = cli(tmp_path, "invite", "create-contact", "alice@localhost", "--allow-registration")
    assert re.fullmatch(r"xmpp:alice@localhost\?roster;preauth=\S{24};ibr=y\n", contact.stdout)
    reset = cli(tmp_path, "invite", "create-reset", "alice@localhost")
    first, second = reset.stdout.splitlines()
    assert first.startswith("xmpp:alice@localhost?register;preauth=")
    assert second.startswith("Password reset link for alice@localhost valid until ")

    listing = cli(tmp_path, "invite", "list", "localhost")
    assert listing.returncode == 0 and token in listing.stdout
    assert "Reusable account invite (0/3 uses), groups team" in listing.stdout
    shown = cli(tmp_path, "invite", "show", "localhost", token)
    assert f"token: {token}" in shown.stdout and "kind: account" in shown.stdout
    assert cli(tmp_path, "invite", "delete", "localhost", token).returncode == 0
    gone = cli(tmp_path, "invite", "show", "localhost", token)
    assert gone.returncode == 1 and "no such invite" in gone.stderr


@pytest.mark.parametrize("dashed", ["-cj057Yw14YnDiUFhuweL0B3", "-gAAAAAAAAAAAAAAAAAAAAAA"])
def test_invite_commands_take_a_token_that_starts_with_a_dash(tmp_path: Path, dashed: str) -> None:
    # One token in 64 starts with "-"; "-c…" once parsed as "-c FILE" and "-g…" as "--group".
    configure(tmp_path, MODULES)
    token = cli(tmp_path, "mod_invites", "generate", "localhost").stdout.strip().rpartition("=")[2]
    with sqlite3.connect(tmp_path / "data" / "minixmpp.sqlite") as db:  # the invites map store
        (value,) = db.execute(
            "SELECT value FROM kv WHERE store = 'invites' AND key = ?", (token,)
        ).fetchone()
        invite = json.loads(value)
        invite["token"] = dashed
        assert db.execute(
            "UPDATE kv SET key = ?, value = ? WHERE store = 'invites' AND key = ?",
            (dashed, json.dumps(invite), token),
        ).rowcount
    db.close()
    shown = cli(tmp_path, "invite", "show", "localhost", dashed)
    assert shown.returncode == 0 and f"token: {dashed}" in shown.stdout, shown
    assert cli(tmp_path, "invite", "delete", "localhost", dashed).returncode == 0
    gone = cli(tmp_path, "invite", "show", "localhost", dashed)
    assert gone.returncode == 1 and "no such invite" in gone.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["mod_invites", "generate", "elsewhere.example"], 1, "not a VirtualHost"),
        (["mod_invites", "generate", "localhost", "--reset", "alice", "--admin"], 2, "--reset"),
        (["mod_invites", "generate", "localhost", "--reset", "nobody"], 1, "does not exist"),
        (["invite", "create-contact", "nobody@localhost"], 1, "does not exist"),
        (["invite", "create-account", "localhost", "--max-uses", "2"], 2, "--reusable"),
        (["invite", "create-account", "localhost", "--expires-after", "1m"], 1, "duration"),
        (["invite", "delete", "localhost", "nope"], 1, "no such invite"),
        (
            ["invite", "create-account", "localhost", "--expires-after", "9999999 years"],
            1,
            "at most 100 years",
        ),
        (
            [
                "invite",
                "create-account",
                "localhost",
                "--expires-after",
                "99999999999999999999 years",
            ],
            1,
            "at most 100 years",
        ),
        (["invite", "create-account", "localhost", "--expires-after", ""], 1, "not a duration"),
        (["invite", "create-contact", "bad jid@@"], 1, "invalid JID: bad jid@@"),
        (["invite", "create-reset", "bad jid@@"], 1, "invalid JID: bad jid@@"),
    ],
)
def test_invite_command_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    configure(tmp_path, MODULES)
    cli(tmp_path, "user", "add", "alice@localhost", "pw")
    result = cli(tmp_path, *args)
    assert result.returncode == code and message in result.stderr, result


def test_invites_not_enabled(tmp_path: Path) -> None:
    configure(tmp_path, ["ping"])
    result = cli(tmp_path, "invite", "list", "localhost")
    assert result.returncode == 1 and "needs module invites, which is not enabled" in result.stderr


async def test_cli_invite_for_a_running_server(tmp_path: Path) -> None:
    configure(tmp_path, MODULES)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minixmpp", "serve", "-c", str(tmp_path / "server.toml"),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = 0
        while not port:  # bounded: the server reports its ports at once, or exits
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "the server did not start"
            match = re.search(r"c2s ports \[(\d+)\]", line)
            port = int(match.group(1)) if match else 0
        drain = asyncio.ensure_future(proc.stderr.read())
        generated = await asyncio.to_thread(cli, tmp_path, "mod_invites", "generate", "localhost")
        assert generated.returncode == 0, generated.stderr
        token = generated.stdout.strip().rpartition("=")[2]
        client = await slix_login(
            port, tmp_path / "certs" / "ca.pem", "fresh@localhost/app", "pw",
            register=True, preauth=token,
        )  # fmt: skip
        assert client.features_seen[1][:3] == INVITE_FEATURES
        assert client.jid == "fresh@localhost/app"
        await client.disconnect()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        if "drain" in locals():
            await drain
