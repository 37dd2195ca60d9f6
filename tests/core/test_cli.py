"""The command line, as a user runs it: real processes, real config files, exit codes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.xmpp import TIMEOUT, RawClient, login

CONFIG = """
interfaces = ["127.0.0.1"]
c2s_ports = [0]
c2s_direct_tls_ports = [0]
default_iteration_count = 4096
modules_enabled = {modules}
log = {{ info = "*console" }}
{extra}
[VirtualHost."localhost"]
"""


def write_config(folder: Path, extra: str = "", modules: str = '["ping"]') -> Path:
    path = folder / "server.toml"
    path.write_text(textwrap.dedent(CONFIG.format(extra=extra, modules=modules)))
    return path


def run(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minixmpp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_help_and_version() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "check-config", "user"):
        assert command in result.stdout
    assert run("user", "--help").returncode == 0
    assert re.fullmatch(r"minixmpp \S+\n", run("--version").stdout)


def test_check_config(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert (
        "localhost: modules c2s, tls, saslauth, limit_auth, bind, roster, message, presence,"
        " offline, ping" in (result.stdout)
    )
    assert result.stdout.rstrip().endswith(": OK")


@pytest.mark.parametrize(
    ("extra", "modules", "expected"),
    [
        ("c2s_portz = [1]", '["ping"]', "unknown option 'c2s_portz' (did you mean 'c2s_ports'?)"),
        (
            'c2s_stanza_size_limit = "x"',
            '["ping"]',
            "option 'c2s_stanza_size_limit': expected `int`",
        ),
        ("", '["nope"]', "module 'nope' not found"),
        ("", '"ping"', "option 'modules_enabled': expected `array`, got `str`"),
    ],
)
def test_check_config_errors_exit_2(
    tmp_path: Path, extra: str, modules: str, expected: str
) -> None:
    config = write_config(tmp_path, extra, modules)
    result = run("check-config", "-c", str(config))
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_option_of_a_module_that_is_not_enabled_is_warned_about(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hide_os_type = true")  # mod_version is not enabled
    result = run("check-config", "-c", str(config))
    assert result.returncode == 0
    assert "option 'hide_os_type' is set but module version" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("check-config", cwd=tmp_path)  # default ./server.toml
    assert result.returncode == 2
    assert "server.toml: file not found" in result.stderr


def test_user_commands_offline(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert (
        run("user", "add", "Alice@localhost", "pw1", "-c", config).stdout
        == "created alice@localhost\n"
    )
    again = run("user", "add", "alice@localhost", "pw2", "-c", config)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run("user", "add", "bob@localhost", "-c", config, stdin="secret\n").returncode == 0
    assert run("user", "list", "localhost", "-c", config).stdout == "alice\nbob\n"
    assert run("user", "passwd", "alice@localhost", "pw3", "-c", config).returncode == 0
    assert run("user", "delete", "bob@localhost", "-c", config).returncode == 0
    gone = run("user", "delete", "bob@localhost", "-c", config)
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    for args, message in [
        (("user", "add", "x@other.example", "pw"), "not a VirtualHost"),
        (("user", "add", "not a jid", "pw"), "invalid"),
        (("user", "add", "localhost", "pw"), "user@host"),
        (("user", "list", "other.example"), "not a VirtualHost"),
        (("user", "add", "carol@localhost", "a\tb"), "invalid password: password fails SASLprep"),
        (("user", "passwd", "alice@localhost", "a\tb"), "invalid password"),
    ]:
        result = run(*args, "-c", config)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_deleting_an_account_offline_cancels_its_subscriptions(tmp_path: Path) -> None:
    # Without a running server the command runs the modules in-process: contacts' rosters
    # change as they would online (RFC 6121 §2.5.2), and a pre-approval is withdrawn.
    config = str(write_config(tmp_path))
    for name in ("alice", "bob", "carol"):
        assert run("user", "add", f"{name}@localhost", "pw", "-c", config).returncode == 0
    with sqlite3.connect(tmp_path / "data" / "minixmpp.sqlite") as db:
        db.executemany(
            "INSERT INTO roster (host, username, contact, subscription, ask, approved)"
            " VALUES ('localhost', ?, ?, ?, ?, ?)",
            [
                ("alice", "bob@localhost", "both", 0, 0),
                ("bob", "alice@localhost", "both", 0, 0),
                ("carol", "bob@localhost", "none", 0, 1),
            ],
        )
    db.close()
    assert run("user", "delete", "bob@localhost", "-c", config).returncode == 0
    with sqlite3.connect(tmp_path / "data" / "minixmpp.sqlite") as db:
        rows = db.execute(
            "SELECT username, contact, subscription, ask, approved FROM roster ORDER BY username"
        ).fetchall()
    db.close()
    assert rows == [
        ("alice", "bob@localhost", "none", 0, 0),
        ("carol", "bob@localhost", "none", 0, 0),
    ]


class Server:
    def __init__(self, proc: subprocess.Popen[str], port: int, folder: Path) -> None:
        self.proc, self.port, self.folder = proc, port, folder
        self.ca_file = folder / "certs" / "ca.pem"


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Server]:
    config = write_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "minixmpp", "serve", "-c", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:  # bounded by the process's own start-up
            match = re.search(r"c2s ports \[(\d+)\]", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "the server did not report its port"
        yield Server(proc, port, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


async def test_cli_changes_a_running_server(serving: Server) -> None:
    config = str(serving.folder / "server.toml")
    added = await asyncio.to_thread(run, "user", "add", "dave@localhost", "pw", "-c", config)
    assert added.returncode == 0, added.stderr
    assert (serving.folder / "data" / "minixmpp.sock").exists()
    client, _ = await login(serving.port, serving.ca_file, "dave", "pw")
    changed = await asyncio.to_thread(run, "user", "passwd", "dave@localhost", "pw2", "-c", config)
    assert changed.returncode == 0, changed.stderr
    assert await client.stream_error() == ("reset", "Password changed")
    client, _ = await login(serving.port, serving.ca_file, "dave", "pw2")
    deleted = await asyncio.to_thread(run, "user", "delete", "dave@localhost", "-c", config)
    assert deleted.returncode == 0, deleted.stderr
    assert await client.stream_error() == ("not-authorized", "Account deleted")


async def test_sigterm_closes_every_stream_cleanly(serving: Server) -> None:
    config = str(serving.folder / "server.toml")
    await asyncio.to_thread(run, "user", "add", "erin@localhost", "pw", "-c", config)
    bound, _ = await login(serving.port, serving.ca_file, "erin", "pw")
    fresh = await RawClient.connect(serving.port)
    await fresh.open()
    os.kill(serving.proc.pid, signal.SIGTERM)
    for client in (bound, fresh):
        assert await client.stream_error() == ("system-shutdown", "Received SIGTERM")
    code = await asyncio.to_thread(serving.proc.wait, TIMEOUT)
    assert code == 0
    assert not (serving.folder / "data" / "minixmpp.sock").exists()
