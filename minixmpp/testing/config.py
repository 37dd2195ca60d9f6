"""The configuration a test server starts with: loopback, port 0 for every listener, its data
and certificates in one folder, fast password hashing; and the protocol profiles.

A profile makes the server answer as another server does where servers differ on the wire,
so that a client's suite can test against each: ``prosody-0.12`` (the default: Prosody 0.12's
modules, as recorded in ../shared/transcripts), ``prosody-13``, ``ejabberd`` (26.x's
mod_invites) and ``xep`` (the current XEP texts). Each is a set of options of our modules;
options given to the server win over the profile's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODULES = ("disco", "ping", "version", "time")
# Modules that load mod_http: with one of them, the HTTP listeners are on port 0 too (mod_http's
# defaults, 5280 and 5281, would clash between servers).
HTTP_MODULES = frozenset({
    "websocket", "invites_page", "invites_register_web", "invites_api", "invites_register_api",
    "register_apps", "bosh",
})  # fmt: skip

# Where the servers differ (protocol.md §3-5): the condition of a refused invite token
# (XEP-0445 says item-not-found; Prosody answers forbidden), the ad-hoc invite forms (Prosody's
# one-step result form, XEP-0401 0.6's two-step create-account), and the landing page's status
# for an unknown token (Prosody: 200 with its "Invite expired" page; ejabberd: 404).
PROFILES: dict[str, dict[str, Any]] = {
    "prosody-0.12": {
        "invite_error_condition": "forbidden",
        "invites_adhoc_form": "prosody",
        "invites_page_expired_status": 200,
    },
    "prosody-13": {
        "invite_error_condition": "forbidden",
        "invites_adhoc_form": "prosody",
        "invites_page_expired_status": 200,
    },
    "ejabberd": {
        "invite_error_condition": "item-not-found",
        "invites_adhoc_form": "xep0401",
        "invites_page_expired_status": 404,
    },
    "xep": {
        "invite_error_condition": "item-not-found",
        "invites_adhoc_form": "xep0401",
        "invites_page_expired_status": 404,  # the XEPs say nothing; Snikket's and ejabberd's
    },
}
DEFAULT_PROFILE = "prosody-0.12"


def profile_options(profile: str, modules: Sequence[str]) -> dict[str, Any]:
    """The options ``profile`` sets, for the modules that read them."""
    try:
        options = PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown profile {profile!r}; profiles: {', '.join(sorted(PROFILES))}"
        ) from None
    reader = {
        "invite_error_condition": "invites_register",
        "invites_adhoc_form": "invites_adhoc",
        "invites_page_expired_status": "invites_page",
    }
    return {key: value for key, value in options.items() if reader.get(key, "") in modules}


def make_config(
    folder: Path,
    *,
    hosts: Sequence[str] = ("localhost",),
    modules: Sequence[str] = DEFAULT_MODULES,
    options: Mapping[str, Any] | None = None,
    host_options: Mapping[str, Mapping[str, Any]] | None = None,
    profile: str | None = None,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The configuration (as ``server.toml``'s data) of a server for tests in ``folder``.
    ``components``: ``{"pubsub.localhost": {"component_module": "pubsub", …}}``, as
    ``[Component."…"]`` tables."""
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "interfaces": ["127.0.0.1"],
        "c2s_ports": [0],
        "c2s_direct_tls_ports": [0],
        "data_path": str(folder / "data"),
        "certificates": str(folder / "certs"),
        "default_iteration_count": 4096,
        "modules_enabled": list(modules),
        "log": {"warning": "*console"},
    }
    if any(m in HTTP_MODULES or m.startswith("http") for m in modules):
        data.update({"http_ports": [0], "https_ports": [0]})
    if profile is not None:
        data.update(profile_options(profile, modules))
    data.update(options or {})
    data["VirtualHost"] = {h: dict((host_options or {}).get(h, {})) for h in hosts}
    if components:
        data["Component"] = {name: dict(table) for name, table in components.items()}
    return data
