"""The module loader: plugin_paths, dependencies, options, failures, and unloading."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from minixmpp.config import ConfigError
from minixmpp.module import ModuleError
from minixmpp.testing import running_server
from tests.xmpp import login, stanza_error

PLUGINS = {
    "echo": '''
        """Test plugin: answers <echo xmlns='urn:test:echo'/> on the host; has options."""
        from dataclasses import dataclass, field
        from minixmpp.module import Module
        from minixmpp.xml import stanza as st

        @dataclass
        class Options:
            echo_prefix: str = "echo:"
            echo_tags: list[str] = field(default_factory=list)

        def load(module: Module):
            opts = module.options(Options)
            helper = module.depends("helper")
            module.add_feature("urn:test:echo")
            module.add_item("test-item", "from-echo")

            @module.hook("iq-get/host/urn:test:echo:echo")
            async def echo(event):
                reply = st.reply(event.stanza)
                st.sub(reply, "{urn:test:echo}echo", text=opts.echo_prefix + helper.word())
                event.session.send(reply)
                return True

            ticks = []
            module.every(0.01, lambda: ticks.append(1))
            return {"ticks": ticks}
    ''',
    "helper": """
        def load(module):
            class Api:
                @staticmethod
                def word():
                    return "hello"
            return Api()
    """,
    "boom_import": "raise RuntimeError('broken at import')\n",
    "boom_load": "def load(module):\n    raise ValueError('cannot start: missing thing')\n",
    "cycle_a": "def load(module):\n    module.depends('cycle_b')\n",
    "cycle_b": "def load(module):\n    module.depends('cycle_a')\n",
    "noload": "x = 1\n",
    "crash": """
        def load(module):
            @module.hook("iq-get/host/urn:test:crash:crash")
            async def crash(event):
                raise RuntimeError("secret internal detail")
    """,
    "ping": "def load(module):\n    return 'plugin-ping'\n",  # shadows the built-in
}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, code in PLUGINS.items():
        (folder / f"mod_{name}.py").write_text(textwrap.dedent(code))
    return folder


async def test_plugin_with_dependency_and_options(tmp_path: Path, plugins: Path) -> None:
    async with running_server(
        tmp_path,
        modules=["echo", "disco"],
        options={"plugin_paths": [str(plugins)], "echo_prefix": ">"},
    ) as srv:
        host = srv.server.hosts["localhost"]
        assert {"echo", "helper", "disco"} <= set(host.modules)
        await srv.create_user("alice", "pw")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await client.iq("<echo xmlns='urn:test:echo'/>", to="localhost")
        assert reply.findtext("{urn:test:echo}echo") == ">hello"
        disco = await client.iq(
            "<query xmlns='http://jabber.org/protocol/disco#info'/>", to="localhost"
        )
        assert "urn:test:echo" in [f.get("var") for f in disco.iter("{*}feature")]

        api = host.modules["echo"].api
        srv.server.loader.unload(host, "echo")
        ticks = len(api["ticks"])
        assert "echo" not in host.modules
        assert "from-echo" not in host.items.get("test-item", [])
        assert "urn:test:echo" not in host.items.get("feature", [])
        assert not host.events.has("iq-get/host/urn:test:echo:echo")
        reply = await client.iq("<echo xmlns='urn:test:echo'/>", to="localhost", id="q2")
        assert stanza_error(reply)[:2] == ("cancel", "service-unavailable")
        import asyncio

        await asyncio.sleep(0.05)
        assert len(api["ticks"]) == ticks  # the timer went with the module
        await client.close()


async def test_plugin_paths_come_before_built_ins(tmp_path: Path, plugins: Path) -> None:
    async with running_server(
        tmp_path, modules=["ping"], options={"plugin_paths": [str(plugins)]}
    ) as srv:
        assert srv.server.hosts["localhost"].modules["ping"].api == "plugin-ping"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("boom_import", "module 'boom_import' failed to import: RuntimeError: broken at import"),
        (
            "boom_load",
            "module 'boom_load' failed to load on localhost: ValueError: cannot start",
        ),
        ("cycle_a", "circular dependency"),
        ("noload", "has no load(module) function"),
        ("missing", "module 'missing' not found"),
    ],
)
async def test_a_broken_module_stops_start_up(
    tmp_path: Path, plugins: Path, name: str, message: str
) -> None:
    with pytest.raises(ModuleError) as info:
        async with running_server(
            tmp_path, modules=[name], options={"plugin_paths": [str(plugins)]}
        ):
            pass
    assert message in str(info.value)


async def test_bad_module_option_stops_start_up(tmp_path: Path, plugins: Path) -> None:
    with pytest.raises(ConfigError, match="option 'echo_tags': expected `array`, got `str`"):
        async with running_server(
            tmp_path, modules=["echo"], options={"plugin_paths": [str(plugins)], "echo_tags": "x"}
        ):
            pass


async def test_internal_errors_never_reach_the_wire(tmp_path: Path, plugins: Path) -> None:
    async with running_server(
        tmp_path, modules=["crash", "version"], options={"plugin_paths": [str(plugins)]}
    ) as srv:
        await srv.create_user("alice", "pw")
        client, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        reply = await client.iq("<crash xmlns='urn:test:crash'/>", to="localhost")
        assert stanza_error(reply) == ("wait", "internal-server-error", None)
        assert b"secret" not in client.raw
        # the session and the server carry on
        version = await client.iq("<query xmlns='jabber:iq:version'/>", to="localhost", id="v")
        assert version.get("type") == "result"
        await client.close()


async def test_options_of_modules_loaded_as_dependencies_are_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = {
        "allow_registration": True,
        "registration_throttle_max": 5,  # mod_register_limits, loaded by mod_register
        "registration_throttle_period": 60,
        "adhoc_session_timeout": 60,  # mod_adhoc, loaded by mod_admin_adhoc
        "hide_os_type": True,  # mod_version: neither enabled nor loaded
    }
    with caplog.at_level(logging.WARNING, logger="minixmpp"):
        async with running_server(tmp_path, modules=["register", "admin_adhoc"], options=options):
            pass
    warned = [r.getMessage() for r in caplog.records if "is set but module" in r.getMessage()]
    assert warned == [
        "option 'hide_os_type' is set but module version, which reads it, is not enabled"
    ]
