"""server.toml: Prosody's model in TOML, typed, with errors naming file and key."""

from pathlib import Path

import pytest

from minixmpp.config import ConfigError, from_dict, load
from minixmpp.loader import Loader
from minixmpp.module import ModuleError
from minixmpp.server import check


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_defaults_and_host_override(tmp_path: Path) -> None:
    cfg = load(
        config(
            tmp_path,
            """
c2s_require_encryption = true
modules_enabled = ["ping"]
[VirtualHost."a.test"]
[VirtualHost."b.test"]
c2s_require_encryption = false
modules_enabled = ["ping", "disco"]
""",
        )
    )
    assert cfg.options.c2s_ports == [5222]
    assert cfg.options.c2s_direct_tls_ports == [5223]
    assert cfg.options.interfaces == ["127.0.0.1", "::1"]
    assert cfg.options.c2s_stanza_size_limit == 256 * 1024
    assert cfg.hosts["a.test"].options.c2s_require_encryption is True
    assert cfg.hosts["b.test"].options.c2s_require_encryption is False
    assert cfg.hosts["b.test"].options.modules_enabled == ["ping", "disco"]
    assert cfg.data_path == tmp_path / "data"  # relative to the config file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('c2s_ports = "5222"\n[VirtualHost."a.test"]', "option 'c2s_ports': expected `array`"),
        (
            'c2s_ports = [5222, "x"]\n[VirtualHost."a.test"]',
            "option 'c2s_ports[1]': expected `int`",
        ),
        (
            '[VirtualHost."a.test"]\nc2s_require_encryption = "yes"',
            "VirtualHost \"a.test\": option 'c2s_require_encryption': expected `bool`",
        ),
        ('[VirtualHost."a.test"]\nc2s_ports = [1]', "option 'c2s_ports' can only be set globally"),
        ("c2s_ports = [5222]", "no VirtualHost defined"),
        ('[VirtualHost."bad host"]', "not a valid domain name"),
        ('[VirtualHost."A.test"]', "prepared form"),
        ("c2s_ports = [", "invalid TOML"),
        ('c2s_ports = [70000]\n[VirtualHost."a.test"]', "70000 is not a port number"),
        ('log = { verbose = "*console" }\n[VirtualHost."a.test"]', "unknown level 'verbose'"),
        ('default_iteration_count = 10\n[VirtualHost."a.test"]', "at least 4096"),
        ('admins = ["a@b@c"]\n[VirtualHost."a.test"]', "'a@b@c' is not a valid JID"),
        ('[VirtualHost."a.test"]\nadmins = ["x@a.test/desk"]', "not a bare user@host JID"),
        ('admins = ["a.test"]\n[VirtualHost."a.test"]', "'a.test' is not a bare user@host"),
        (
            'c2s_max_unauthed_per_ip = -1\n[VirtualHost."a.test"]',
            "option 'c2s_max_unauthed_per_ip': must not be negative",
        ),
        (
            'c2s_max_unauthed = -5\n[VirtualHost."a.test"]',
            "option 'c2s_max_unauthed': must not be negative",
        ),
        (
            'unlimited_ips = ["10.0.0.0/8", "localhost"]\n[VirtualHost."a.test"]',
            "option 'unlimited_ips': 'localhost' is not an IP address or range",
        ),
    ],
)
def test_bad_core_values(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(config(tmp_path, text))
    assert str(tmp_path / "server.toml") in str(info.value)
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.toml")


def test_unknown_keys_stop_start_up(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, 'c2s_portz = [1]\n[VirtualHost."a.test"]'))
    with pytest.raises(
        ConfigError, match=r"unknown option 'c2s_portz' \(did you mean 'c2s_ports'\?\)"
    ):
        check(cfg, Loader([]))
    cfg = load(config(tmp_path, '[VirtualHost."a.test"]\nfoo = 1'))
    with pytest.raises(ConfigError, match=r"VirtualHost \"a\.test\": unknown option 'foo'"):
        check(cfg, Loader([]))


def test_module_options_are_declared_and_typed(tmp_path: Path) -> None:
    ok = load(
        config(
            tmp_path, 'modules_enabled = ["version"]\nhide_os_type = true\n[VirtualHost."a.test"]'
        )
    )
    check(ok, Loader([]))
    bad = load(
        config(tmp_path, 'modules_enabled = ["version"]\n[VirtualHost."a.test"]\nhide_os_type = 1')
    )
    with pytest.raises(
        ConfigError,
        match=r"module version on VirtualHost \"a\.test\": option 'hide_os_type': expected `bool`",
    ):
        check(bad, Loader([]))


def test_missing_module_stops_start_up(tmp_path: Path) -> None:
    cfg = load(config(tmp_path, 'modules_enabled = ["nonexistent"]\n[VirtualHost."a.test"]'))
    with pytest.raises(ModuleError, match="module 'nonexistent' not found"):
        check(cfg, Loader([]))


def test_from_dict_rejects_non_table_vhost(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        from_dict({"VirtualHost": {"a.test": 3}}, tmp_path / "x.toml")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("offline_max_messages", -1, ">= 0"),
        ("offline_max_bytes", -1, ">= 0"),
        ("subscription_max_pending", -1, ">= 0"),
        ("subscription_max_request_size", -1, ">= 0"),
        ("roster_max_items", -1, ">= 0"),
        ("roster_max_groups", -1, ">= 0"),
        ("roster_max_group_length", 0, ">= 1"),
    ],
)
def test_limits_cannot_be_negative(tmp_path: Path, option: str, value: int, expected: str) -> None:
    # Checked with the types, so check-config finds them too, naming the module and the key.
    cfg = load(config(tmp_path, f'[VirtualHost."a.test"]\n{option} = {value}'))
    with pytest.raises(ConfigError, match=rf"option '{option}': expected `int` {expected}"):
        check(cfg, Loader([]))
