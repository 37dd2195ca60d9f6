"""Operator safety (issue 10) as an operator meets it, through real processes: the command
line, the data folder a server owns, one-line errors, the start-up checks and limits.

Permission checks run the CLI bound by file permissions: as this user, or, when the tests run
as root, as root without the capabilities that let it read and write everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from minixmpp import admin, datalock
from minixmpp import server as server_module
from minixmpp.config import load as load_config
from minixmpp.server import Server
from minixmpp.tls import generate_test_certificate
from tests.core.test_cli import run, write_config
from tests.core.test_cli_extra import MODULES, acli, serving
from tests.xmpp import RawClient, login

# -- helpers --------------------------------------------------------------------------------------


def accounts(folder: Path) -> list[str]:
    database = folder / "data" / "minixmpp.sqlite"
    if not database.exists():
        return []
    with sqlite3.connect(database) as db:
        names = [row[0] for row in db.execute("SELECT username FROM accounts ORDER BY 1")]
    db.close()
    return names


def unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI bound by file permissions: as this user, or as root without the capabilities
    that override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop the override capabilities")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "minixmpp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result.stderr
    assert f"minixmpp: {message}\n" in result.stderr, result.stderr


# -- -c before or after the command ---------------------------------------------------------------


def test_config_before_the_command_is_used(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    elsewhere = tmp_path / "elsewhere"  # no server.toml here
    elsewhere.mkdir()
    checked = run("-c", config, "check-config", cwd=elsewhere)
    assert (checked.returncode, checked.stdout.splitlines()[-1]) == (0, f"{config}: OK")
    assert run("--config", config, "user", "add", "dan@localhost", "pw", cwd=elsewhere).stdout == (
        "created dan@localhost\n"
    )
    assert run("user", "list", "localhost", "-c", config, cwd=elsewhere).stdout == "dan\n"


def test_config_before_and_after_the_command_is_refused(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    for args in (
        ["-c", config, "check-config", "-c", config],
        ["-c", config, "user", "list", "localhost", "--config", "other.toml"],
    ):
        result = run(*args)
        assert (result.returncode, result.stdout) == (2, ""), result
        assert result.stderr == (
            "minixmpp: -c given both before and after the command; give it once\n"
        )


# -- one server per data folder -------------------------------------------------------------------


async def test_a_second_server_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, modules=MODULES)
    data, sock = tmp_path / "data", tmp_path / "data" / "minixmpp.sock"
    assert (await acli(config, "user", "add", "alice@localhost", "pw"))[0] == 0
    async with serving(config) as first:
        client, _ = await login(first.port, first.ca_file, "alice", "pw")
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "minixmpp", "serve", "-c", str(config),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(second.communicate(), 30)
        finally:
            if second.returncode is None:
                second.kill()
                await asyncio.wait_for(second.wait(), 10)
        assert second.returncode == 1
        assert err.decode() == (
            f"minixmpp: data folder {data} is in use by a minixmpp server (pid {first.pid});"
            " stop it, or give this server its own data_path\n"
        )
        # the first server still has its admin socket, so the CLI still acts on it
        assert sock.exists()
        assert (await acli(config, "user", "delete", "alice@localhost"))[0] == 0
        assert await client.stream_error() == ("not-authorized", "Account deleted")
        # check-config tells the same
        code, _, err = await acli(config, "check-config")
        in_use = f"data folder {data} is in use by a minixmpp server (pid {first.pid})"
        assert code == 1 and f"minixmpp: {in_use}\n" in err


async def test_a_killed_server_leaves_no_stale_lock(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with serving(config) as first:
        os.kill(first.pid, signal.SIGKILL)
    async with serving(config) as second:  # the kernel dropped the lock with the process
        assert (await acli(config, "user", "add", "bob@localhost", "pw"))[0] == 0
        assert any("admin command user.add" in line for line in second.log)


async def test_a_starting_server_waits_for_a_command_running_in_process(tmp_path: Path) -> None:
    # What an in-process command (`minixmpp user add` with no server running) holds while it
    # runs, so that a server starting meanwhile loads its state after the change, not before.
    config = write_config(tmp_path)
    data = tmp_path / "data"
    lock = datalock.DataLock.try_acquire(data, datalock.COMMAND)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minixmpp", "serve", "-c", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None

    async def until(text: str) -> list[str]:
        assert proc.stderr is not None
        lines = []
        while text not in (lines or [""])[-1]:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, f"the server exited: {lines}"
            lines.append(line)
        return lines

    try:
        lines = await until(" minixmpp.")
        waiting = f"waiting for a minixmpp command (pid {os.getpid()}) to finish with data folder"
        assert f"{waiting} {data}\n" in lines[-1]
        lock.release()
        await until("serving localhost")
    finally:
        lock.release()
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def test_a_command_waits_for_a_server_that_is_still_starting(tmp_path: Path) -> None:
    # A server holds the lock before its admin socket is open: a command in that window must
    # not run in-process beside it; it runs once the socket answers or the lock is free.
    config = write_config(tmp_path)
    lock = datalock.DataLock.try_acquire(tmp_path / "data", datalock.SERVER)
    try:
        argv = ["user", "add", "carol@localhost", "pw", "-c", str(config)]
        command = subprocess.Popen(
            [sys.executable, "-m", "minixmpp", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            command.wait(1.5)  # bounded: it is waiting, not done
        assert accounts(tmp_path) == []
    finally:
        lock.release()
    out, err = command.communicate(timeout=30)
    assert (command.returncode, out) == (0, "created carol@localhost\n"), err
    assert accounts(tmp_path) == ["carol"]


async def test_a_command_running_in_process_holds_the_data_folder(tmp_path: Path) -> None:
    server = Server(load_config(write_config(tmp_path)))
    await server.start(listen=False, admin_socket=False)  # what the CLI does without a server
    try:
        with pytest.raises(datalock.DataFolderBusy) as busy:
            datalock.check_free(tmp_path / "data")
        assert busy.value.holder == datalock.Holder(os.getpid(), datalock.COMMAND)
    finally:
        await server.stop()
    datalock.check_free(tmp_path / "data")  # released


async def test_a_command_gives_up_on_a_server_that_never_answers(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    data = tmp_path / "data"
    lock = datalock.DataLock.try_acquire(data, datalock.SERVER)
    try:
        with pytest.raises(admin.AdminError) as failed:
            await admin.run(config, "user.list", {"host": "localhost"}, wait=0.2)
    finally:
        lock.release()
    assert str(failed.value) == (
        f"data folder {data} is in use by a minixmpp server (pid {os.getpid()}), which does not"
        f" answer on its admin socket {data / 'minixmpp.sock'}"
    )
    assert await admin.run(config, "user.list", {"host": "localhost"}, wait=0.2) == []


@pytest.mark.parametrize(
    "args",
    [
        ["user", "add", "erin@localhost", "pw"],
        ["user", "list", "localhost"],
        ["invite", "list", "localhost"],
    ],
)
def test_commands_when_the_data_folder_cannot_be_created(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "file").touch()
    config = write_config(tmp_path, 'data_path = "file/data"', MODULES)
    one_line_error(
        run(*args, "-c", str(config)),
        1,
        f"cannot create data folder {tmp_path / 'file' / 'data'}: Not a directory",
    )
    (tmp_path / "readonly").mkdir(mode=0o555)
    config = write_config(tmp_path, 'data_path = "readonly/data"', MODULES)
    one_line_error(
        unprivileged(*args, "-c", str(config)),
        1,
        f"cannot create data folder {tmp_path / 'readonly' / 'data'}: Permission denied",
    )


# -- one-line errors instead of tracebacks ---------------------------------------------------------


async def test_command_without_access_to_the_admin_socket(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with serving(config) as server:
        sock = tmp_path / "data" / "minixmpp.sock"
        sock.chmod(0)  # now its owner may not connect either
        result = await asyncio.to_thread(
            unprivileged, "user", "add", "frank@localhost", "pw", "-c", str(config)
        )
        one_line_error(
            result,
            1,
            f"cannot use the running server's admin socket {sock}: Permission denied"
            " (run the command as the user the server runs as)",
        )
        assert not any("admin command" in line for line in server.log)
    assert accounts(tmp_path) == []


def test_check_config_with_an_unusable_certificate(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    certs = tmp_path / "certs"
    crt, key = certs / "localhost.crt", certs / "localhost.key"
    generate_test_certificate(certs, "localhost")
    stranger = generate_test_certificate(tmp_path / "other", "localhost")
    assert run("check-config", "-c", str(config)).returncode == 0

    # a certificate its reader may not read (check-config said OK: it never opened it)
    crt.chmod(0)
    result = unprivileged("check-config", "-c", str(config))
    one_line_error(
        result, 2, f'VirtualHost "localhost": cannot read certificate {crt}: Permission denied'
    )
    assert ": OK" not in result.stdout
    crt.chmod(0o644)

    # a key that is not the certificate's
    shutil.copy(stranger.key, key)
    result = run("check-config", "-c", str(config))
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result
    assert result.stderr.startswith(
        f'minixmpp: VirtualHost "localhost": cannot use certificate {crt} with key {key}:'
        " [X509: KEY_VALUES_MISMATCH] key values mismatch"
    )

    # a key that is not PEM; serve says the same, naming the file
    key.write_text("not a key\n")
    for command in ("check-config", "serve"):
        one_line_error(
            run(command, "-c", str(config)),
            2,
            f'VirtualHost "localhost": key {key} is not in PEM format',
        )


def test_check_config_when_certificates_cannot_be_generated(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    config = write_config(tmp_path, 'certificates = "file/certs"')
    result = run("check-config", "-c", str(config))
    one_line_error(
        result,
        2,
        'VirtualHost "localhost": no certificate, and none can be made:'
        f" {tmp_path / 'file'} is not a folder",
    )
    assert "certificate: none" in result.stdout and ": OK" not in result.stdout
    (tmp_path / "readonly").mkdir(mode=0o555)
    config = write_config(tmp_path, 'certificates = "readonly/certs"')
    one_line_error(
        unprivileged("check-config", "-c", str(config)),
        2,
        'VirtualHost "localhost": no certificate, and none can be made:'
        f" {tmp_path / 'readonly'} is not writable",
    )


def test_check_config_when_a_port_is_taken(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = config.read_text().replace(
            "c2s_direct_tls_ports = [0]", f"c2s_direct_tls_ports = [0, {port}]"
        )
        config.write_text(text)
        result = run("check-config", "-c", str(config))
        one_line_error(
            result,
            1,
            f"cannot listen on [127.0.0.1]:{port}: Address already in use"
            " (is a server already running?)",
        )
        assert ": OK" not in result.stdout
    # free again: released at once, so serve could use it
    assert run("check-config", "-c", str(config)).returncode == 0
    assert not (tmp_path / "data").exists()  # a check creates nothing


# -- the open files limit --------------------------------------------------------------------------


async def test_serve_raises_the_open_files_limit_and_warns_when_it_is_low(tmp_path: Path) -> None:
    if not os.path.exists("/proc/self/limits"):  # noqa: ASYNC240
        pytest.skip("needs /proc")
    config = write_config(tmp_path)
    async with serving(config, shell="ulimit -Sn 256 && ulimit -Hn 2048") as server:
        line = next(
            line
            for line in Path(f"/proc/{server.pid}/limits").read_text().splitlines()  # noqa: ASYNC240
            if line.startswith("Max open files")
        )
        assert line.split()[3:5] == ["2048", "2048"]
    warning = (
        "WARNING minixmpp.server the open files limit is 2048 (hard limit 2048): fewer than 2048"
        " clients can connect; raise it to at least 4096 (ulimit -n, or LimitNOFILE= in a"
        " systemd unit)\n"
    )
    assert any(line.endswith(warning) for line in server.log), server.log


def test_raise_open_files_limit(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"hard limit {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        with caplog.at_level(logging.WARNING, "minixmpp.server"):
            assert server_module.raise_open_files_limit(wanted=hard) == hard
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
            assert caplog.records == []  # enough
            assert server_module.raise_open_files_limit(wanted=hard + 1) == hard
            assert [r.getMessage().split(":")[0] for r in caplog.records] == [
                f"the open files limit is {hard} (hard limit {hard})"
            ]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- what a client sees on Ctrl-C ------------------------------------------------------------------


async def test_ctrl_c_closes_every_stream_with_received_sigint(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert (await acli(config, "user", "add", "gina@localhost", "pw"))[0] == 0
    async with serving(config) as server:
        bound, _ = await login(server.port, server.ca_file, "gina", "pw")
        fresh = await RawClient.connect(server.port)
        await fresh.open()
        os.kill(server.pid, signal.SIGINT)
        for client in (bound, fresh):
            assert await client.stream_error() == ("system-shutdown", "Received SIGINT")
        assert await asyncio.wait_for(server.proc.wait(), 30) == 0
    assert not (tmp_path / "data" / "minixmpp.sock").exists()
