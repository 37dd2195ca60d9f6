"""Command line: ``minixmpp serve | testserver | check-config | user … | mod_invites … |
invite … | mod_invites_api …`` (argparse; no logic of its own).

Commands that change data talk to the running server over its admin socket when it runs, and
otherwise run the same command in-process on the database (see admin.py).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import logging
import re
import sys
from pathlib import Path
from typing import Any

from minixmpp import __version__, admin, datalock, logs
from minixmpp.config import Config, ConfigError
from minixmpp.config import load as load_config
from minixmpp.jid import JID, InvalidJID, nodeprep
from minixmpp.module import ModuleError
from minixmpp.storage import StorageError
from minixmpp.testing import cli as testserver

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

DEFAULT_CONFIG = "server.toml"

# An invite token is base64url, so one in 64 starts with "-"; argparse would read it as an
# option ("-cj05…" even as "-c j05…"). A word of exactly a token's shape is never one of our
# options, so it is always taken as a positional argument.
_TOKEN_SHAPE = re.compile(r"-[A-Za-z0-9_-]{23}")


class _Parser(argparse.ArgumentParser):
    def _parse_optional(self, arg_string: str) -> Any:
        if _TOKEN_SHAPE.fullmatch(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _parser() -> argparse.ArgumentParser:
    # -c may come before the command or after it. Each place has its own dest: a subparser
    # sets every dest it knows, so one shared dest would let the later default erase the
    # earlier value (which is how "minixmpp -c FILE serve" used to ignore FILE).
    common = _Parser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        dest="config_after",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: ./{DEFAULT_CONFIG})",
    )
    parser = _Parser(prog="minixmpp", description="A small, real XMPP server.")
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: ./{DEFAULT_CONFIG}); before or after the command",
    )
    parser.add_argument("--version", action="version", version=f"minixmpp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "serve", parents=[common], help="run the server (Ctrl-C or SIGTERM stops it)"
    )
    testserver.add_parser(commands)
    commands.add_parser(
        "check-config",
        parents=[common],
        help="check configuration, modules, certificates, data folder and ports without serving",
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
    _invite_parsers(commands, common)
    _api_key_parsers(commands, common)
    return parser


def _invite_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    expires = argparse.ArgumentParser(add_help=False)
    expires.add_argument(
        "--expires-after",
        metavar="DURATION",
        help="validity, e.g. 3600, 12h, '7 days', '1 week' (default: invite_expiry; resets 1 day)",
    )
    roles = argparse.ArgumentParser(add_help=False)
    roles.add_argument("--admin", action="store_true", help="the new account is an admin")
    roles.add_argument(
        "--role", action="append", default=[], metavar="ROLE", help="a role for the new account"
    )
    roles.add_argument(
        "--group", "-g", action="append", default=[], metavar="GROUP", help="a group to join"
    )

    prosodyctl = commands.add_parser(
        "mod_invites", help="invites as prosodyctl mod_invites does them"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = prosodyctl.add_parser(
        "generate",
        parents=[common, roles],
        help="create an account invite (or with --reset a password reset) and print its link",
    )
    generate.add_argument("host", metavar="HOST")
    generate.add_argument("--reset", metavar="USER", help="a password-reset invite for USER")

    invite = commands.add_parser("invite", help="manage invites").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    account = invite.add_parser(
        "create-account",
        parents=[common, roles, expires],
        help="invite to create an account (any name on HOST, or the name in JID)",
    )
    account.add_argument("target", metavar="HOST|JID")
    account.add_argument(
        "--reusable", action="store_true", help="can be used again until it expires"
    )
    account.add_argument("--max-uses", type=int, metavar="N", help="with --reusable: at most N")
    contact = invite.add_parser(
        "create-contact", parents=[common, expires], help="invite to become JID's contact"
    )
    contact.add_argument("jid", metavar="JID")
    contact.add_argument(
        "--allow-registration", action="store_true", help="the invitee may create an account"
    )
    reset = invite.add_parser(
        "create-reset", parents=[common, expires], help="invite to set a new password for JID"
    )
    reset.add_argument("jid", metavar="JID")
    listing = invite.add_parser("list", parents=[common], help="list the usable invites of HOST")
    listing.add_argument("host", metavar="HOST")
    for name, text in (("show", "show an invite"), ("delete", "revoke an invite")):
        sub = invite.add_parser(name, parents=[common], help=text)
        sub.add_argument("host", metavar="HOST")
        sub.add_argument("token", metavar="TOKEN")


def _api_key_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser(
        "mod_invites_api", help="API keys for creating invites over HTTP (mod_invites_api)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    create = keys.add_parser(
        "create", parents=[common], help="create an API key for HOST and print it (ID/TOKEN)"
    )
    create.add_argument("host", metavar="HOST")
    create.add_argument("name", metavar="NAME", nargs="?", help="what the key is for")
    create.add_argument(
        "--method",
        action="append",
        choices=["GET", "POST"],
        metavar="METHOD",
        help="a method the key may use, GET or POST (default: both)",
    )
    listing = keys.add_parser("list", parents=[common], help="list HOST's API keys (ID, name)")
    listing.add_argument("host", metavar="HOST")
    delete = keys.add_parser("delete", parents=[common], help="delete an API key")
    delete.add_argument("host", metavar="HOST")
    delete.add_argument("key_id", metavar="KEY_ID")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is not None and args.config_after is not None:
        return _fail("-c given both before and after the command; give it once", EXIT_CONFIG)
    if args.command == "testserver":
        return testserver.run(args)
    path = Path(args.config or args.config_after or DEFAULT_CONFIG)
    try:
        config = load_config(path.resolve())
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        if args.command == "serve":
            return _serve(config)
        if args.command == "check-config":
            return _check(config)
        if args.command in ("invite", "mod_invites"):
            return _run_invite(config, args)
        if args.command == "mod_invites_api":
            return _run_api_keys(config, args)
        return _run_admin(config, args)
    except (ConfigError, ModuleError) as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except (StorageError, datalock.DataFolderError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_FAILED


def _fail(message: str, code: int) -> int:
    print(f"minixmpp: {message}", file=sys.stderr)
    return code


def _serve(config: Config) -> int:
    from minixmpp.process import serve

    logs.configure(config)
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
        runner(serve(config, configure_logging=logs.configure))
    except datalock.DataFolderBusy as exc:
        return _fail(f"{exc}; stop it, or give this server its own data_path", EXIT_FAILED)
    except OSError as exc:
        return _fail(f"cannot serve: {exc}", EXIT_FAILED)
    finally:
        logs.shutdown()
    return EXIT_OK


def _check(config: Config) -> int:
    from minixmpp import preflight
    from minixmpp.loader import Loader, enabled_modules
    from minixmpp.server import check

    logging.basicConfig(level=logging.WARNING, format="minixmpp: warning: %(message)s")
    loader = Loader([config.resolve(p) for p in config.options.plugin_paths])
    check(config, loader)
    problems = []
    for host in config.hosts.values():
        modules = ", ".join(enabled_modules(host))
        where, problem = preflight.certificate(config, host)
        print(f"{host.name}: modules {modules}; certificate: {where}")
        problems += [problem] if problem else []
    for part in config.components.values():
        print(f"{part.name}: component, modules {', '.join(enabled_modules(part))}")
    problems += preflight.data_folder(config) + preflight.ports(config.options)
    for problem in problems:
        print(f"minixmpp: {problem.message}", file=sys.stderr)
    if any(problem.configuration for problem in problems):
        return EXIT_CONFIG
    if problems:
        return EXIT_FAILED
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
        result = asyncio.run(admin.run(config, f"user.{action}", request))
    except admin.AdminError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if action == "list":
        for name in result:
            print(name)
    else:
        verb = {"add": "created", "delete": "deleted", "passwd": "password changed for"}[action]
        print(f"{verb} {result}")
    return EXIT_OK


def _domain(jid: str) -> str:
    """The host of a user's JID (the admin command says what is wrong with the rest)."""
    try:
        return JID.parse(jid).domain
    except InvalidJID:
        raise admin.AdminError(f"invalid JID: {jid}") from None


def _invite_target(text: str, *, user: bool) -> JID:
    """The HOST (or, with ``user``, HOST or user@HOST) of an invite command; never a resource."""
    try:
        jid = JID.parse(text)
    except InvalidJID:
        raise admin.AdminError(f"invalid {'JID' if user else 'host'}: {text}") from None
    if jid.resource is not None or (jid.node is not None and not user):
        expected = "a host or a JID of the form user@host" if user else "a host"
        raise admin.AdminError(f"expected {expected}, got {text}")
    return jid


def _username(text: str) -> None:
    try:
        nodeprep(text, strict=True)
    except InvalidJID:
        raise admin.AdminError(f"invalid username: {text}") from None


def _run_invite(config: Config, args: argparse.Namespace) -> int:
    action = args.action
    request: dict[str, Any]
    target: JID | None = None
    if action in ("generate", "create-account"):
        text = args.host if action == "generate" else args.target
        roles = (["prosody:admin"] if args.admin else []) + args.role
        reset = action == "generate" and args.reset is not None
        if reset and roles:
            return _fail("--reset cannot be combined with --admin or --role", EXIT_CONFIG)
        if action == "create-account" and args.max_uses is not None and not args.reusable:
            return _fail("--max-uses needs --reusable", EXIT_CONFIG)
        try:
            target = _invite_target(text, user=action == "create-account")
            if reset:
                _username(args.reset)
        except admin.AdminError as exc:
            return _fail(str(exc), EXIT_FAILED)
        host = target.domain
        if reset:
            if args.group:
                print("minixmpp: --group is ignored for a password reset", file=sys.stderr)
            request = {"host": host, "kind": "reset", "jid": f"{args.reset}@{host}"}
        else:
            request = {"host": host, "kind": "account", "jid": text, "roles": roles}
            request["groups"] = args.group
            if action == "create-account":
                request.update(reusable=args.reusable, max_uses=args.max_uses)
    elif action in ("create-contact", "create-reset"):
        try:
            host = _domain(args.jid)
        except admin.AdminError as exc:
            return _fail(str(exc), EXIT_FAILED)
        request = {"host": host, "kind": action.removeprefix("create-"), "jid": args.jid}
        if action == "create-contact":
            request["allow_registration"] = args.allow_registration
    elif action == "list":
        request = {"host": args.host}
    else:
        request = {"host": args.host, "token": args.token}
    if getattr(args, "expires_after", None) is not None:
        request["expires_after"] = args.expires_after
    command = {"list": "invite.list", "show": "invite.show", "delete": "invite.delete"}.get(
        action, "invite.create"
    )
    try:
        result = asyncio.run(admin.run(config, command, request))
    except admin.AdminError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if command == "invite.create":
        print(result["link"])
        if result["kind"] == "password-reset":
            until = _when(result["expires"])
            print(f"Password reset link for {result['jid']} valid until {until}")
    elif command == "invite.list":
        print(f"{'Token':<26}{'Expires':<22}Description")
        for invite in result:
            print(f"{invite['token']:<26}{_when(invite['expires']):<22}{invite['description']}")
    elif command == "invite.show":
        for key in ("token", "kind", "jid", "description", "uri", "landing_page", "expires"):
            if key in result:
                value = _when(result[key]) if key == "expires" else result[key]
                print(f"{key}: {value}")
    else:
        print(f"deleted invite {result}")
    return EXIT_OK


def _run_api_keys(config: Config, args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"host": args.host}
    if args.action == "create":
        request.update(name=args.name, methods=args.method)
    elif args.action == "delete":
        request["id"] = args.key_id
    try:
        result = asyncio.run(admin.run(config, f"invites_api.{args.action}", request))
    except admin.AdminError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if args.action == "create":
        print(result["key"])
    elif args.action == "list":
        for key in result:
            print(f"{key['id']}\t{key['name'] or '<unknown>'}")  # as prosodyctl prints them
    else:
        print(f"deleted API key {result}")
    return EXIT_OK


def _when(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
