"""``minixmpp testserver``: an ephemeral server for test suites in any language.

It needs no configuration file: it starts on loopback port 0 with a temporary database and a
generated CA, makes the accounts and invites asked for, prints one JSON line (addresses, CA
file, accounts, invites, the control API's URL and token; ``--env`` adds ``KEY=value`` lines
after it) and serves until SIGINT/SIGTERM or ``POST /stop`` on the control API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from minixmpp.testing.config import DEFAULT_MODULES, PROFILES

EXTRA_MODULES = ("register", "invites", "invites_register", "adhoc", "invites_adhoc")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "testserver",
        help="run a throwaway server for a test suite; print its addresses as JSON",
        description="Start an ephemeral server (loopback, free ports, temporary data), print"
        " one JSON line describing it, serve until stopped (SIGINT, SIGTERM or POST /stop).",
    )
    parser.add_argument(
        "--user", action="append", default=[], metavar="NAME:PASSWORD",
        help="an account to make (repeatable; NAME alone: password 'password')",
    )  # fmt: skip
    parser.add_argument(
        "--invite", action="append", default=[], metavar="TOKEN",
        help="an account invite to make with this token ('-' for a random one; repeatable)",
    )  # fmt: skip
    parser.add_argument("--host", default="localhost", help="the XMPP domain (default localhost)")
    parser.add_argument(
        "--module", action="append", default=[], metavar="NAME",
        help="a module to load besides the defaults (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=JSON",
        help="a server option, its value as JSON (e.g. c2s_require_encryption=false)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default=None,
        help="whose wire behaviour to copy where servers differ (default prosody-0.12)",
    )  # fmt: skip
    parser.add_argument("--plaintext", action="store_true", help="allow logins without TLS")
    parser.add_argument("--admin", metavar="NAME", help="an admin account (password 'password')")
    parser.add_argument(
        "--open-registration", action="store_true", help="in-band registration for anyone"
    )
    parser.add_argument(
        "--anonymous-host", metavar="HOST",
        help="one more host where clients log in with SASL ANONYMOUS (XEP-0175)",
    )  # fmt: skip
    parser.add_argument(
        "--any-password-host", metavar="HOST",
        help="one more host where any password is right (PLAIN; accounts made at login)",
    )  # fmt: skip
    parser.add_argument(
        "--control-port", type=int, default=0, metavar="PORT",
        help="the control API's port on 127.0.0.1 (default: a free one)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true", help="print the JSON line only (the default)"
    )
    parser.add_argument(
        "--env", action="store_true",
        help="also print KEY=value lines: CI_ACCOUNT1=…, CI_ACCOUNT1_PASSWORD=… (slixmpp's"
        " integration tests), MINIXMPP_C2S_PORT, MINIXMPP_CA_FILE, MINIXMPP_CONTROL_URL…",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        options = dict(_option(text) for text in args.option)
        users = dict(_user(text) for text in args.user)
    except ValueError as exc:
        print(f"minixmpp: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, options, users))
    return 0


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option {text!r}: KEY=JSON")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value  # a bare word is a string


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not name:
        raise ValueError(f"--user {text!r}: NAME:PASSWORD")
    return name, password if sep else "password"


async def _serve(args: argparse.Namespace, options: dict[str, Any], users: dict[str, str]) -> None:
    from minixmpp.testing.control import ControlApi
    from minixmpp.testing.server import XmppServer

    modules = [*DEFAULT_MODULES, *EXTRA_MODULES, *args.module]
    server = XmppServer(
        hosts=[args.host], modules=list(dict.fromkeys(modules)), options=options,
        profile=args.profile, plaintext=args.plaintext, users=users, admin=args.admin,
        open_registration=args.open_registration, anonymous_host=args.anonymous_host,
        any_password_host=args.any_password_host,
    )  # fmt: skip
    await server.start()
    try:
        invites = []
        for token in args.invite:
            chosen = None if token == "-" else token  # noqa: S105 (the "random" marker)
            invite = await server.create_invite(token=chosen)
            invites.append(
                {"token": invite.token, "uri": invite.uri, "landing_url": invite.landing_page}
            )
        control = ControlApi(server, lambda: describe(server))
        await control.start(args.control_port)
        try:
            info = {**describe(server), "invites": invites, "control_url": control.url,
                    "control_token": control.token, "pid": os.getpid()}  # fmt: skip
            print(json.dumps(info), flush=True)
            if args.env:
                for key, value in environment(info).items():
                    print(f"{key}={value}", flush=True)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, control.stopped.set)
            await control.stopped.wait()
        finally:
            await control.close()
    finally:
        await server.stop()


def describe(server: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": server.host,
        "hosts": server.hosts,
        "c2s": "{}:{}".format(*server.c2s_address),
        "c2s_port": server.c2s_port,
        "direct_tls_port": server.direct_tls_port,
        "ca_file": str(server.ca_file),
        "accounts": [{"jid": a.jid, "password": a.password} for a in server.accounts.values()],
    }
    if server.http_port:
        info.update({"http_url": server.http_url, "https_url": server.https_url})
        if "websocket" in server.server.hosts[server.host].modules:
            info["websocket_url"] = server.websocket_url
    return info


def environment(info: dict[str, Any]) -> dict[str, str]:
    env = {
        "MINIXMPP_HOST": info["host"],
        "MINIXMPP_C2S_PORT": str(info["c2s_port"]),
        "MINIXMPP_DIRECT_TLS_PORT": str(info["direct_tls_port"]),
        "MINIXMPP_CA_FILE": info["ca_file"],
        "MINIXMPP_CONTROL_URL": info["control_url"],
        "MINIXMPP_CONTROL_TOKEN": info["control_token"],
    }
    for number, account in enumerate(info["accounts"], 1):
        env[f"CI_ACCOUNT{number}"] = account["jid"]
        env[f"CI_ACCOUNT{number}_PASSWORD"] = account["password"]
    return env
