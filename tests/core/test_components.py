"""Components (Prosody's ``Component "name" "module"``): hosts with no accounts and no client
streams, served by their ``component_module``."""

from __future__ import annotations

from pathlib import Path

import pytest

from minixmpp.config import ConfigError, load
from minixmpp.loader import Loader, enabled_modules
from minixmpp.reload import plan
from minixmpp.server import check
from minixmpp.testing import running_server
from tests.xmpp import RawClient, login, stanza_error

NS_ITEMS = "http://jabber.org/protocol/disco#items"


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_a_component_loads_its_module_and_only_its_own_modules(tmp_path: Path) -> None:
    cfg = load(
        config(
            tmp_path,
            """
modules_enabled = ["ping", "version"]
pubsub_max_items = 10
[VirtualHost."a.test"]
[Component."pubsub.a.test"]
component_module = "pubsub"
modules_enabled = ["time"]
""",
        )
    )
    part = cfg.components["pubsub.a.test"]
    assert part.component_module == "pubsub"
    assert "component_module" not in part.raw
    assert part.raw["pubsub_max_items"] == 10  # global options reach components
    assert enabled_modules(part) == ["pubsub", "time"]  # no c2s, no global modules_enabled
    assert "pubsub.a.test" not in cfg.hosts
    check(cfg, Loader([]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[VirtualHost."a.test"]\n[Component."p.a.test"]', "'component_module'"),
        (
            '[VirtualHost."a.test"]\n[Component."a.test"]\ncomponent_module = "pubsub"',
            'Component "a.test": already a VirtualHost',
        ),
        ('[VirtualHost."a.test"]\n[Component."p a"]\ncomponent_module = "pubsub"', "domain"),
        ('Component = 1\n[VirtualHost."a.test"]', "Component must be a table of tables"),
        (
            '[VirtualHost."a.test"]\n[Component."p.a.test"]\ncomponent_module = "pubsub"\n'
            "c2s_ports = [1]",
            "can only be set globally",
        ),
    ],
)
def test_bad_components(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(config(tmp_path, text))


def test_unknown_options_and_modules_of_a_component(tmp_path: Path) -> None:
    cfg = load(
        config(
            tmp_path,
            '[VirtualHost."a.test"]\n[Component."p.a.test"]\ncomponent_module = "pubsub"\nfoo = 1',
        )
    )
    with pytest.raises(ConfigError, match=r"Component \"p\.a\.test\": unknown option 'foo'"):
        check(cfg, Loader([]))
    cfg = load(
        config(
            tmp_path,
            '[VirtualHost."a.test"]\n[Component."p.a.test"]\ncomponent_module = "pubsub"\n'
            'pubsub_max_items = "x"',
        )
    )
    with pytest.raises(ConfigError, match=r"module pubsub on Component \"p\.a\.test\""):
        check(cfg, Loader([]))


def test_a_reload_keeps_a_component_as_it_runs(tmp_path: Path) -> None:
    text = '[VirtualHost."a.test"]\n[Component."p.a.test"]\ncomponent_module = "pubsub"\n'
    running = load(config(tmp_path, text))
    changed = load(config(tmp_path, text + "pubsub_max_items = 5\n"))
    result = plan(running, changed, {})
    assert result.components_changed == ["p.a.test"]
    assert result.config.components == running.components
    assert plan(running, running, {}).components_changed == []


async def test_a_component_is_reachable_but_takes_no_clients(tmp_path: Path) -> None:
    async with running_server(
        tmp_path,
        modules=["disco"],
        components={"pubsub.localhost": {"component_module": "pubsub"}},
    ) as srv:
        await srv.create_user("alice", "pw")
        assert "pubsub.localhost" in srv.server.components
        assert "pubsub.localhost" not in srv.server.hosts
        # no client may open a stream to it
        raw = await RawClient.connect(srv.c2s_port)
        await raw.send(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
            "streams' to='pubsub.localhost' version='1.0'>"
        )
        assert (await raw.stream_error())[0] == "host-unknown"
        # the host lists it; stanzas reach it, and what it does not serve is refused
        alice, _ = await login(srv.c2s_port, srv.ca_file, "alice", "pw")
        items = await alice.iq(f"<query xmlns='{NS_ITEMS}'/>", to="localhost")
        assert [i.get("jid") for i in items.iter(f"{{{NS_ITEMS}}}item")] == ["pubsub.localhost"]
        ping = await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="pubsub.localhost", id="p")
        assert ping.get("from") == "pubsub.localhost"
        assert stanza_error(ping)[1] == "service-unavailable"
        await alice.send("<message to='pubsub.localhost' id='m'><body>hi</body></message>")
        bounce = await alice.expect("message")
        assert bounce.get("type") == "error"
        assert stanza_error(bounce)[1] == "service-unavailable"
