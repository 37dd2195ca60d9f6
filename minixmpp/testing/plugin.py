"""The pytest plugin (registered as the ``pytest11`` entry point ``minixmpp``): a real XMPP
server per pytest process (so per pytest-xdist worker), reset between tests.

Fixtures
    ``xmpp_server``         the server, reset to its start state before each test. Its
                            methods block in a synchronous test and are awaited in an async
                            one (``await xmpp_server.create_user("alice")``).
    ``xmpp_server_factory`` ``xmpp_server_factory(modules=[...], ...)``: more servers (the
                            arguments of ``XmppServer``), stopped after the test.
    ``xmpp_user``           a new account on ``xmpp_server`` (``.jid``, ``.password``).
    ``xmpp_invite``         an account invite on ``xmpp_server`` (``.uri``, ``.token``).

Marker
    ``@pytest.mark.xmpp_server(modules=[...], options={...}, profile="xep", ...)``: the
    test's ``xmpp_server`` is started with these arguments (one server per distinct set of
    arguments per process, reset between the tests that share it).

On a failing test, the transcript of its streams is written to
``<--xmpp-transcripts or pytest's basetemp/xmpp-transcripts>/<test>.txt`` and shown in the
report.

The server runs in a thread of its own (``ThreadedXmppServer``): any event loop the tests use,
or none, can talk to it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from minixmpp.testing.config import DEFAULT_MODULES
from minixmpp.testing.server import XmppServer
from minixmpp.testing.threaded import ThreadedXmppServer

PLUGIN_MODULES = (
    *DEFAULT_MODULES, "register", "invites", "invites_register", "adhoc", "invites_adhoc",
)  # fmt: skip
_SERVERS = pytest.StashKey[dict[str, ThreadedXmppServer]]()
_USED = pytest.StashKey[ThreadedXmppServer]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minixmpp", "minixmpp test server")
    group.addoption(
        "--xmpp-transcripts",
        metavar="DIR",
        help="where the stream transcripts of failing tests go"
        " (default: pytest's basetemp/xmpp-transcripts)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xmpp_server(**kwargs): start this test's xmpp_server with these XmppServer arguments",
    )
    config.stash[_SERVERS] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in config.stash.get(_SERVERS, {}).values():
        server.stop()


def _arguments(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("xmpp_server")
    arguments: dict[str, Any] = {"modules": list(PLUGIN_MODULES)}
    if marker is not None:
        if marker.args:
            raise TypeError("xmpp_server takes keyword arguments only")
        arguments.update(marker.kwargs)
    return arguments


class PluginServer(ThreadedXmppServer):
    """The fixture's server: coroutine methods are awaitable inside a running event loop
    (an async test) and blocking outside one (a synchronous test)."""

    def _await(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._block(coro)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return asyncio.wrap_future(future)


@pytest.fixture
def xmpp_server(request: pytest.FixtureRequest) -> Iterator[PluginServer]:
    arguments = _arguments(request)
    key = json.dumps(arguments, sort_keys=True, default=str)
    servers = request.config.stash[_SERVERS]
    server = servers.get(key)
    if server is None:
        server = servers[key] = PluginServer(XmppServer(**arguments))
        server.start()
    else:
        server._block(server.aio.reset())
    request.node.stash[_USED] = server
    assert isinstance(server, PluginServer)
    yield server


@pytest.fixture
def xmpp_server_factory() -> Iterator[Callable[..., PluginServer]]:
    started: list[PluginServer] = []

    def start(**arguments: Any) -> PluginServer:
        server = PluginServer(XmppServer(**arguments))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def xmpp_user(xmpp_server: PluginServer) -> Any:
    return xmpp_server._block(xmpp_server.aio.new_user())


@pytest.fixture
def xmpp_invite(xmpp_server: PluginServer) -> Any:
    return xmpp_server._block(xmpp_server.aio.create_invite())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    server = item.stash.get(_USED, None)
    if server is not None and report.failed and report.when == "call":
        transcript = server._run(lambda: server.aio.traffic.transcript())
        if transcript:
            path = _transcript_path(item)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(transcript, encoding="utf-8")
            lines = transcript.splitlines()
            shown = "\n".join(lines[-200:])
            more = f"(the last 200 of {len(lines)} lines)\n" if len(lines) > 200 else ""
            report.sections.append(("xmpp transcript", f"written to {path}\n{more}{shown}"))
    return report


def _transcript_path(item: pytest.Item) -> Path:
    folder = item.config.getoption("--xmpp-transcripts")
    if folder:
        base = Path(folder)
    else:
        factory = item.config._tmp_path_factory  # type: ignore[attr-defined]
        base = factory.getbasetemp() / "xmpp-transcripts"
    name = re.sub(r"[^\w.-]+", "_", item.nodeid).strip("_")[:200]
    return base / f"{name}.txt"
