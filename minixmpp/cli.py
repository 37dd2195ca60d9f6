"""Command line: ``minixmpp serve | check-config | user …`` (argparse; no logic of its own).

Commands that change data talk to the running server over its admin socket when it runs, and
otherwise run the same command in-process on the database (see admin.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

from minixmpp import __version__, admin
from minixmpp.config import Config, ConfigError
from minixmpp.config import load as load_config
from minixmpp.module import ModuleError
from minixmpp.storage import StorageError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

DEFAULT_CONFIG = "server.toml"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: ./{DEFAULT_CONFIG})",
    )
    parser = argparse.ArgumentParser(
        prog="minixmpp", description="A small, real XMPP server.", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"minixmpp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "serve", parents=[common], help="run the server (Ctrl-C or SIGTERM stops it)"
    )
    commands.add_parser(
        "check-config",
        parents=[common],
        help="check the configuration and modules without serving",
    )

    user = commands.add_parser("user", help="manage accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", parents=[common], help="create an account")
    add.add_argument("jid", metavar="JID", help="user@host")
    add.add_argument("password", metavar="PASSWORD", nargs="?", help="asked for when omitted")
    delete = user.add_parser("delete", parents=[common], help="delete an account and its data")
    delete.add_argument("jid", metavar="JID")
    passwd = user.add_parser("passwd", parents=[common], help="set an account's password")
    passwd.add_argument("jid", metavar="JID")
    passwd.add_argument("password", metavar="PASSWORD", nargs="?", help="asked for when omitted")
    listing = user.add_parser("list", parents=[common], help="list the accounts of a host")
    listing.add_argument("host", metavar="HOST")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(args.config or DEFAULT_CONFIG)
    try:
        config = load_config(path.resolve())
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        if args.command == "serve":
            return _serve(config)
        if args.command == "check-config":
            return _check(config)
        return _run_admin(config, args)
    except (ConfigError, ModuleError) as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except StorageError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_FAILED


def _fail(message: str, code: int) -> int:
    print(f"minixmpp: {message}", file=sys.stderr)
    return code


def setup_logging(config: Config) -> None:
    sinks = (
        {"info": config.options.log} if isinstance(config.options.log, str) else config.options.log
    )
    root = logging.getLogger("minixmpp")
    root.handlers.clear()
    root.propagate = False
    levels = []
    for level_name, sink in sinks.items():
        level = (
            logging.WARNING
            if level_name in ("warn", "warning")
            else getattr(logging, level_name.upper())
        )
        handler: logging.Handler
        if sink in ("*console", "*stderr"):
            handler = logging.StreamHandler(sys.stderr)
        elif sink == "*stdout":
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.FileHandler(config.resolve(sink))
        handler.setLevel(level)
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
        levels.append(level)
    root.setLevel(min(levels) if levels else logging.INFO)


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        session = getattr(record, "session", None)
        if session:
            record.msg = f"{session} {record.msg}"
            record.__dict__.pop("session")
        return super().format(record)


def _serve(config: Config) -> int:
    from minixmpp.server import serve

    setup_logging(config)
    runner: Any = asyncio.run
    if config.options.network_backend == "uvloop":
        try:
            import uvloop
        except ImportError:
            return _fail(
                "network_backend = \"uvloop\" needs: pip install 'minixmpp[uvloop]'", EXIT_CONFIG
            )
        runner = uvloop.run
    try:
        runner(serve(config))
    except OSError as exc:
        return _fail(f"cannot serve: {exc}", EXIT_FAILED)
    return EXIT_OK


def _check(config: Config) -> int:
    from minixmpp.module import Loader, enabled_modules
    from minixmpp.server import check
    from minixmpp.tls import find_certificate

    logging.basicConfig(level=logging.WARNING, format="minixmpp: warning: %(message)s")
    loader = Loader([config.resolve(p) for p in config.options.plugin_paths])
    check(config, loader)
    for host in config.hosts.values():
        modules = ", ".join(enabled_modules(host))
        cert = find_certificate(config, host)
        where = cert.certificate if cert else "a test certificate will be generated"
        print(f"{host.name}: modules {modules}; certificate: {where}")
    print(f"{config.path}: OK")
    return EXIT_OK


def _password(given: str | None, confirm: bool = True) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Retype password: ") != first:
        raise admin.AdminError("passwords do not match")
    return first


def _run_admin(config: Config, args: argparse.Namespace) -> int:
    action = args.action
    try:
        if action in ("add", "passwd"):
            request = {"jid": args.jid, "password": _password(args.password)}
        elif action == "delete":
            request = {"jid": args.jid}
        else:
            request = {"host": args.host}
        result = asyncio.run(run_command(config, f"user.{action}", request))
    except admin.AdminError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if action == "list":
        for name in result:
            print(name)
    else:
        verb = {"add": "created", "delete": "deleted", "passwd": "password changed for"}[action]
        print(f"{verb} {result}")
    return EXIT_OK


async def run_command(config: Config, command: str, args: dict[str, Any]) -> Any:
    """Run an admin command in the running server, or in-process when none runs."""
    try:
        return await admin.call(admin.socket_path(config.data_path), command, args)
    except (ConnectionRefusedError, FileNotFoundError):
        pass
    from minixmpp.server import Server

    logging.basicConfig(level=logging.WARNING, format="minixmpp: %(message)s")
    server = Server(config)
    await server.start(listen=False, admin_socket=False)
    try:
        return await admin.dispatch(server, command, args)
    finally:
        await server.stop()
