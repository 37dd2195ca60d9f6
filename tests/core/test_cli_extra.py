"""The CLI's edges: a data path too long for the admin socket, invite arguments it must refuse,
and the invite commands going through a running server's admin socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from tests.core.test_cli import run, write_config
from tests.xmpp import RawClient, login, stanza_error

MODULES = '["register", "invites", "invites_register", "ping"]'


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = run(*args, "-c", str(config))
    return result.returncode, result.stdout, result.stderr


async def acli(config: Path, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(cli, config, *args)


def long_data_config(folder: Path) -> tuple[Path, Path]:
    """A config whose ``<data_path>/minixmpp.sock`` is longer than any AF_UNIX path may be."""
    data = folder / ("d" * 120) / "data"
    socket = data / "minixmpp.sock"
    assert len(os.fsencode(socket)) > 108
    return write_config(folder, f'data_path = "{data}"', MODULES), socket


class Serving:
    def __init__(self, port: int, folder: Path, log: list[str], proc: Process) -> None:
        self.port, self.folder, self.log, self.proc = port, folder, log, proc
        self.pid = proc.pid
        self.ca_file = folder / "certs" / "ca.pem"


@contextlib.asynccontextmanager
async def serving(config: Path, *, shell: str = "") -> AsyncIterator[Serving]:
    """``minixmpp serve`` as a process; its log lines are collected as they come. ``shell``:
    sh commands run first in the process, which then becomes the server (exec)."""
    argv = [sys.executable, "-m", "minixmpp", "serve", "-c", str(config)]
    if shell:
        argv = ["sh", "-c", f'{shell} && exec "$@"', "sh", *argv]
    proc = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    stderr = proc.stderr
    log: list[str] = []
    started = asyncio.get_running_loop().create_future()

    async def collect() -> None:
        while line := (await stderr.readline()).decode():
            log.append(line)
            match = re.search(r"c2s ports \[(\d+)\]", line)
            if match and not started.done():
                started.set_result(int(match.group(1)))
        if not started.done():
            started.set_exception(AssertionError("the server exited:\n" + "".join(log)))

    reader = asyncio.ensure_future(collect())
    try:
        port = await asyncio.wait_for(started, 30)
        yield Serving(port, config.parent, log, proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await reader


async def preauth(port: int, ca_file: Path, token: str) -> etree._Element:
    """A fresh unauthenticated stream's reply to a <preauth/> with ``token``."""
    client = await RawClient.connect(port)
    await client.open()
    await client.starttls(ca_file)
    await client.send(
        f"<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>"
    )
    reply = await client.expect("iq")
    await client.close()
    return reply


# -- an admin socket path over the AF_UNIX limit -----------------------------------------------


def test_too_long_socket_path_works_offline(tmp_path: Path) -> None:
    config, socket = long_data_config(tmp_path)
    assert cli(config, "user", "add", "alice@localhost", "pw") == (
        0,
        "created alice@localhost\n",
        "",
    )
    assert cli(config, "user", "list", "localhost")[:2] == (0, "alice\n")
    code, out, err = cli(config, "invite", "create-account", "localhost")
    assert code == 0 and out.startswith("xmpp:localhost?register;preauth="), err
    assert cli(config, "invite", "list", "localhost")[0] == 0
    assert not socket.exists()


async def test_too_long_socket_path_with_a_running_server(tmp_path: Path) -> None:
    config, socket = long_data_config(tmp_path)
    async with serving(config) as server:
        assert any("admin socket path too long" in line for line in server.log)
        code, out, err = await acli(config, "user", "add", "bob@localhost", "pw")
        assert (code, out) == (0, "created bob@localhost\n"), err
        assert "Traceback" not in err
        assert not socket.exists()
        client, _ = await login(server.port, server.ca_file, "bob", "pw")  # same database
        await client.close()
        code, out, _ = await acli(config, "invite", "create-account", "localhost")
        token = out.strip().rpartition("=")[2]
        assert code == 0
        assert (await preauth(server.port, server.ca_file, token)).get("type") == "result"
        assert not any("admin command" in line for line in server.log)  # all of it offline


# -- invite arguments that are refused -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # an account invite for a taken name could never be used
        (["invite", "create-account", "alice@localhost"], 1, "user alice@localhost already exists"),
        (["invite", "create-account", "Alice@LOCALHOST"], 1, "user alice@localhost already exists"),
        (["invite", "create-account", "alice@localhost", "--reusable"], 1, "already exists"),
        # HOST or user@HOST, never a full JID
        (
            ["invite", "create-account", "localhost/res"], 1,
            "expected a host or a JID of the form user@host, got localhost/res",
        ),
        (
            ["invite", "create-account", "carol@localhost/res"], 1,
            "expected a host or a JID of the form user@host, got carol@localhost/res",
        ),
        (["invite", "create-account", "local host"], 1, "invalid JID: local host"),
        (["mod_invites", "generate", "localhost/res"], 1, "expected a host, got localhost/res"),
        (["mod_invites", "generate", "alice@localhost"], 1, "expected a host, got alice@localhost"),
        # a bad value is a failed command (1), as a bad JID is for `user add`; usage is 2
        (["mod_invites", "generate", "localhost", "--reset", "a b"], 1, "invalid username: a b"),
        (["mod_invites", "generate", "localhost", "--reset", "a@b"], 1, "invalid username: a@b"),
        (["mod_invites", "generate", "localhost", "--reset", ""], 1, "invalid username: \n"),
        (["mod_invites", "generate", "localhost", "--reset", "a b", "--admin"], 2, "--reset"),
        (["invite", "create-account", "alice@localhost", "--max-uses", "2"], 2, "--reusable"),
    ],
)  # fmt: skip
def test_invite_arguments_refused(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    config = write_config(tmp_path, modules=MODULES)
    assert cli(config, "user", "add", "alice@localhost", "pw")[0] == 0
    result = cli(config, *args)
    assert result[:2] == (code, "") and message in result[2], result
    assert "Traceback" not in result[2]
    assert cli(config, "invite", "list", "localhost")[1].count("\n") == 1  # the header alone


def test_account_invite_for_a_free_name_still_works(tmp_path: Path) -> None:
    config = write_config(tmp_path, modules=MODULES)
    assert cli(config, "user", "add", "alice@localhost", "pw")[0] == 0
    code, out, err = cli(config, "invite", "create-account", "Carol@localhost")
    assert code == 0 and out.startswith("xmpp:carol@localhost?register;preauth="), err


# -- invite commands through a running server's admin socket -------------------------------------


async def test_invite_commands_through_a_running_server(tmp_path: Path) -> None:
    config = write_config(tmp_path, modules=MODULES)
    async with serving(config) as server:
        assert (await acli(config, "user", "add", "alice@localhost", "pw"))[0] == 0
        assert (tmp_path / "data" / "minixmpp.sock").exists()
        refused = await acli(config, "invite", "create-account", "alice@localhost")
        assert refused[0] == 1 and "user alice@localhost already exists" in refused[2]

        code, out, err = await acli(config, "invite", "create-account", "localhost")
        assert code == 0, err
        token = out.strip().rpartition("=")[2]
        code, out, err = await acli(config, "invite", "list", "localhost")
        assert code == 0 and re.search(rf"^{token} +\S+ \S+ +Account invite$", out, re.M)
        code, out, err = await acli(config, "invite", "show", "localhost", token)
        assert code == 0 and f"token: {token}\nkind: account\njid: localhost\n" in out, err
        assert (await preauth(server.port, server.ca_file, token)).get("type") == "result"

        code, out, err = await acli(config, "invite", "delete", "localhost", token)
        assert (code, out) == (0, f"deleted invite {token[:4]}…\n"), err
        # the running server knows at once: the token no longer opens registration
        reply = await preauth(server.port, server.ca_file, token)
        assert stanza_error(reply) == (
            "cancel",
            "forbidden",
            "The invite token is invalid or expired",
        )
        gone = await acli(config, "invite", "show", "localhost", token)
        assert gone[0] == 1 and "no such invite" in gone[2]
        assert token not in (await acli(config, "invite", "list", "localhost"))[1]
        again = await acli(config, "invite", "delete", "localhost", token)
        assert again[0] == 1 and "no such invite" in again[2]
    commands = [m.group(1) for line in server.log if (m := re.search(r"admin command (\S+)", line))]
    assert commands == [
        "user.add", "invite.create", "invite.create", "invite.list", "invite.show",
        "invite.delete", "invite.show", "invite.list", "invite.delete",
    ]  # fmt: skip
    assert token not in "".join(server.log)  # tokens are never logged whole
