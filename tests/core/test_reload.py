"""SIGHUP reloads the configuration and reopens the log files, as Prosody does; the signal
handlers cover the server's whole life (issue 10, operator safety).

What a reload changes is decided by ``reload.plan`` (tested directly below), applied by
``Server.reload`` (tested in-process over real sockets), and driven by the process's SIGHUP
(tested on ``minixmpp serve`` processes).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from minixmpp.config import Config, from_dict
from minixmpp.reload import plan
from minixmpp.testing import make_config, running_server
from tests.core.test_cli import run, write_config
from tests.process import server_process
from tests.xmpp import NS_BIND, RawClient, login, stanza_error

PLUGINS = Path(__file__).parent / "plugins"
NS_VERSION = "jabber:iq:version"


def config(folder: Path, **options: Any) -> Config:
    hosts = options.pop("hosts", ("localhost",))
    host_options = options.pop("host_options", None)
    raw = make_config(folder, hosts=hosts, options=options, host_options=host_options)
    return from_dict(raw, folder / "server.toml")


# -- what a reload changes (reload.plan) ----------------------------------------------------------


def test_a_reload_takes_what_can_change_live_and_names_the_rest(tmp_path: Path) -> None:
    running = config(
        tmp_path,
        hosts=("localhost", "old.example"),
        c2s_timeout=60,
        registration_title="Old",
        hide_os_type=False,
    )
    new = config(
        tmp_path,
        hosts=("localhost", "new.example"),
        c2s_ports=[5999],
        interfaces=["0.0.0.0"],
        log={"debug": "*console"},
        admins=["boss@localhost"],
        max_resources=2,
        modules_enabled=["disco", "ping", "register"],
        certificates="elsewhere",
        registration_title="New",
        hide_os_type=True,
    )  # c2s_timeout no longer set: back to its default
    modules = {"localhost": {"registration_title": False, "hide_os_type": True}}
    result = plan(running, new, modules)

    assert result.restart == [
        "c2s_ports",
        "certificates",
        "interfaces",
        "modules_enabled",
        "registration_title",
    ]
    assert (result.hosts_added, result.hosts_removed) == (["new.example"], ["old.example"])
    assert result.changed_now == ["admins", "c2s_timeout", "hide_os_type", "log", "max_resources"]
    assert result.live["old.example"] == {"c2s_timeout", "log"}  # gone from the file: kept
    options = result.config.options
    assert (options.c2s_ports, options.interfaces) == (running.options.c2s_ports, ["127.0.0.1"])
    assert (options.log, options.c2s_timeout) == ({"debug": "*console"}, 300)
    host = result.config.hosts["localhost"]
    assert host.options.admins == ["boss@localhost"] and host.options.max_resources == 2
    assert host.options.modules_enabled == running.hosts["localhost"].options.modules_enabled
    assert host.options.certificates == str(tmp_path / "certs")
    assert (host.raw["registration_title"], host.raw["hide_os_type"]) == ("Old", True)
    assert set(result.config.hosts) == {"localhost", "old.example"}


def test_an_unchanged_configuration_changes_nothing(tmp_path: Path) -> None:
    running = config(tmp_path)
    result = plan(running, config(tmp_path), {})
    assert (result.restart, result.changed_now) == ([], [])
    assert result.config.options == running.options
    assert result.config.hosts["localhost"].options == running.hosts["localhost"].options


# -- Server.reload, over real sockets -------------------------------------------------------------


async def version_os(client: RawClient) -> str | None:
    reply = await client.iq(f"<query xmlns='{NS_VERSION}'/>", to="localhost")
    return reply.findtext(f"{{{NS_VERSION}}}query/{{{NS_VERSION}}}os")


async def test_limits_and_module_options_change_live(tmp_path: Path) -> None:
    modules = ["disco", "version"]
    async with running_server(tmp_path, modules=modules) as server:
        await server.create_user("alice", "pw")
        first, _ = await login(server.c2s_port, server.ca_file, "alice", "pw", "one")
        assert await version_os(first) is not None
        raw = make_config(
            tmp_path, modules=modules, options={"max_resources": 1, "hide_os_type": True}
        )
        await server.server.reload(from_dict(raw, tmp_path / "server.toml"))

        assert await version_os(first) is None  # mod_version follows reloads
        second = await RawClient.connect(server.c2s_port)
        await second.open()
        await second.starttls(server.ca_file)
        assert (await second.scram("alice", "pw")).tag.endswith("success")
        await second.open()
        await second.send(
            f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>two</resource></bind></iq>"
        )
        assert stanza_error(await second.expect("iq")) == (
            "wait",
            "resource-constraint",
            "Resource limit reached; only 1 resources allowed",
        )


# -- minixmpp serve and its signals ---------------------------------------------------------------


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new))


def without_time(line: str) -> str:
    return line[20:].rstrip("\n")  # "YYYY-MM-DD HH:MM:SS " goes


async def add_user(path: Path, name: str, password: str = "pw") -> None:
    result = await asyncio.to_thread(
        run, "user", "add", f"{name}@localhost", password, "-c", str(path)
    )
    assert result.returncode == 0, result.stderr


async def test_sighup_reloads_what_can_change_and_names_what_needs_a_restart(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, modules='["ping", "version", "register"]')
    await add_user(path, "alice")
    async with server_process(path) as server:
        client, _ = await login(server.port, server.ca_file, "alice", "pw")
        assert await version_os(client) is not None
        rewrite(path, "c2s_ports = [0]", "c2s_ports = [5999]")
        rewrite(
            path,
            'log = { info = "*console" }',
            'log = { info = "*console", debug = "debug.log" }\n'
            'hide_os_type = true\nregistration_title = "Welcome"',
        )
        mark = len(server.lines)
        os.kill(server.pid, signal.SIGHUP)
        await server.line("configuration reloaded", mark)

        where = path.resolve()
        assert [without_time(line) for line in server.after(mark)] == [
            "INFO    minixmpp.server Received SIGHUP",
            f"INFO    minixmpp.server reloading the configuration from {where}",
            "WARNING minixmpp.server option 'c2s_ports' changed: takes effect after a restart",
            "WARNING minixmpp.server option 'registration_title' changed: takes effect after a"
            " restart",
            f"INFO    minixmpp.server configuration reloaded from {where}; options changed now:"
            " hide_os_type, log",
        ]
        # Still the same server: the client is still served, by modules with their new options.
        assert await version_os(client) is None
        # New connections come on the old port, and the new debug sink logs their wire.
        other, _ = await login(server.port, server.ca_file, "alice", "pw", "other")
        wire = (tmp_path / "debug.log").read_text()
        assert 'RECV b\'<iq type="set" id="bind1">' in wire
        await other.close()


async def test_sighup_reopens_the_log_files(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    # The file sink first: a line is in the file before it is on the console the test reads.
    rewrite(
        path, 'log = { info = "*console" }', 'log = { debug = "server.log", info = "*console" }'
    )
    log_file = tmp_path / "server.log"
    async with server_process(path) as server:
        assert "serving localhost" in log_file.read_text()
        log_file.rename(tmp_path / "server.log.1")  # what logrotate does
        mark = len(server.lines)
        os.kill(server.pid, signal.SIGHUP)
        await server.line("configuration reloaded", mark)
        rotated = (tmp_path / "server.log.1").read_text()
        assert "reloading the configuration" in rotated
        assert "configuration reloaded" not in rotated
        fresh = log_file.read_text()
        assert "configuration reloaded" in fresh and "serving" not in fresh


async def test_a_configuration_that_fails_is_refused_and_the_running_one_stays(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    good = path.read_text()
    await add_user(path, "alice")
    missing = tmp_path / "missing" / "server.log"
    cases = [
        ("[VirtualHost", f"{path.resolve()}: invalid TOML: "),
        ('c2s_timeout = "soon"', "option 'c2s_timeout': expected `int`, got `str`"),
        ("c2s_portz = [1]", "unknown option 'c2s_portz' (did you mean 'c2s_ports'?)"),
        ('["nope"]', "module 'nope' not found"),
        (f'log = {{ debug = "{missing}" }}', f"option 'log': cannot open {missing}: No such file"),
        ("", f"{path.resolve()}: file not found"),
    ]
    async with server_process(path) as server:
        for change, error in cases:
            if change.startswith("[VirtualHost"):
                path.write_text(good.replace('[VirtualHost."localhost"]', change))
            elif change.startswith("["):
                write_config(tmp_path, modules=change)
            elif change.startswith("log"):
                path.write_text(good.replace('log = { info = "*console" }', change))
            elif change:
                write_config(tmp_path, change)
            else:
                path.unlink()
            mark = len(server.lines)
            os.kill(server.pid, signal.SIGHUP)
            line = await server.line("configuration not reloaded", mark)
            assert line[20:].startswith(
                "ERROR   minixmpp.server configuration not reloaded; the running one stays: "
            )
            assert error in line, line
        assert not missing.parent.exists()
        client, _ = await login(server.port, server.ca_file, "alice", "pw")  # still serving
        path.write_text(good)
        mark = len(server.lines)
        os.kill(server.pid, signal.SIGHUP)
        line = await server.line("configuration reloaded", mark)
        assert line.endswith("; options changed now: none\n")
        assert await client.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost") is not None


def with_signals(folder: Path, when: str, *signals: str) -> Path:
    names = ", ".join(f'"{name}"' for name in signals)
    extra = f'plugin_paths = ["{PLUGINS}"]\nsignals_when_{when} = [{names}]'
    return write_config(folder, extra, modules='["ping", "signals"]')


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
async def test_a_signal_while_the_server_starts_is_not_lost(tmp_path: Path, name: str) -> None:
    # The handlers are in place before start-up, so a signal as it finishes (here: from a
    # server-started hook, just before "serving") has its effect, not the default one (death).
    path = with_signals(tmp_path, "started", name)
    async with server_process(path) as server:
        if name == "SIGTERM":
            assert await server.exit_code() == 0
            assert "INFO    minixmpp.server stopped\n" in server.log
        else:
            await server.line("configuration reloaded")
            client = await RawClient.connect(server.port)
            await client.open()  # serving on
            assert server.proc.returncode is None


async def test_signals_while_stopping_do_not_cut_the_clean_close_short(tmp_path: Path) -> None:
    # A second Ctrl-C (or a SIGTERM, or SIGHUP) while the server closes its streams: a
    # server-stopping hook sends them, after the first SIGINT and before any stream is closed.
    await add_user(write_config(tmp_path), "alice")  # in-process: it starts and stops a server
    path = with_signals(tmp_path, "stopping", "SIGTERM", "SIGINT", "SIGHUP")
    async with server_process(path) as server:
        client, _ = await login(server.port, server.ca_file, "alice", "pw")
        os.kill(server.pid, signal.SIGINT)
        assert await client.stream_error() == ("system-shutdown", "Received SIGINT")
        assert await server.exit_code() == 0
    said = [without_time(line) for line in server.lines if " minixmpp.server " in line]
    assert said[-5:] == [
        "INFO    minixmpp.server Received SIGINT",
        "INFO    minixmpp.server Received SIGTERM; already stopping",
        "INFO    minixmpp.server Received SIGINT; already stopping",
        "INFO    minixmpp.server Received SIGHUP; stopping, not reloading",
        "INFO    minixmpp.server stopped",
    ]
    assert not (tmp_path / "data" / "minixmpp.sock").exists()
