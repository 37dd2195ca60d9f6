"""Admin commands, run in the server whether the CLI is inside it or talks to it.

A running server listens on ``<data_path>/minixmpp.sock`` (mode 0600): one JSON request per
line, ``{"command": ..., "args": {...}}``, one JSON reply per line, ``{"ok": true, "result":
...}`` or ``{"ok": false, "error": "..."}``. The CLI uses it when the server runs, so that
account changes go through the live server (sessions are kicked, contacts told); otherwise it
starts the server without listeners and dispatches in-process, holding the data folder's lock
(datalock.py) so that no server starts meanwhile. Same code path either way (``run``).

Core commands are ``user.*``; modules add more as items of kind ``admin-command``
(``AdminCommand``). Command arguments and results are logged by name only, never by value.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from minixmpp import datalock
from minixmpp.accounts import BadPassword
from minixmpp.jid import JID, InvalidJID, nodeprep

if TYPE_CHECKING:
    from minixmpp.config import Config
    from minixmpp.host import Host
    from minixmpp.server import Server

log = logging.getLogger("minixmpp.admin")

SOCKET_NAME = "minixmpp.sock"
_MAX_REQUEST = 1024 * 1024
# sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, the final NUL included
_MAX_SOCKET_PATH = 100


class AdminError(Exception):
    """A command failed for a reason the operator should read (no such user, …)."""


@dataclass(frozen=True)
class AdminCommand:
    """A command a module offers: ``handler(host, args)`` returns a JSON-able result."""

    name: str
    handler: Callable[[Host, dict[str, Any]], Awaitable[Any]]


def socket_path(server_or_data: Server | Path) -> Path:
    data = server_or_data if isinstance(server_or_data, Path) else server_or_data.config.data_path
    return data / SOCKET_NAME


def fits_socket(path: Path) -> bool:
    """Whether a Unix socket can be bound at ``path``; the server does not listen otherwise."""
    return len(os.fsencode(path)) <= _MAX_SOCKET_PATH


def split_user(server: Server, jid_text: str) -> tuple[Host, str]:
    """A local account's host and prepared username, from ``user@host``."""
    try:
        jid = JID.parse(jid_text)
    except InvalidJID:
        raise AdminError(f"invalid JID: {jid_text}") from None
    if jid.node is None or jid.resource is not None:
        raise AdminError(f"expected a JID of the form user@host, got {jid_text}")
    host = server.hosts.get(jid.domain)
    if host is None:
        raise AdminError(f"{jid.domain} is not a VirtualHost of this server")
    try:
        username = nodeprep(jid_text.split("@", 1)[0], strict=True)
    except InvalidJID:
        raise AdminError(f"invalid username in {jid_text}") from None
    return host, username


def get_host(server: Server, name: str) -> Host:
    host = server.hosts.get(name.lower())
    if host is None:
        raise AdminError(f"{name} is not a VirtualHost of this server")
    return host


async def _user_add(server: Server, args: dict[str, Any]) -> Any:
    host, username = split_user(server, args["jid"])
    if not args.get("password"):
        raise AdminError("the password must not be empty")
    if not await host.users.create(username, args["password"], source="admin"):
        raise AdminError(f"user {username}@{host.name} already exists")
    return f"{username}@{host.name}"


async def _user_delete(server: Server, args: dict[str, Any]) -> Any:
    host, username = split_user(server, args["jid"])
    if not await host.users.delete(username, source="admin"):
        raise AdminError(f"user {username}@{host.name} does not exist")
    return f"{username}@{host.name}"


async def _user_passwd(server: Server, args: dict[str, Any]) -> Any:
    host, username = split_user(server, args["jid"])
    if not args.get("password"):
        raise AdminError("the password must not be empty")
    if not await host.users.set_password(username, args["password"], source="admin"):
        raise AdminError(f"user {username}@{host.name} does not exist")
    return f"{username}@{host.name}"


async def _user_list(server: Server, args: dict[str, Any]) -> Any:
    return await get_host(server, args["host"]).users.list()


async def _ping(server: Server, args: dict[str, Any]) -> Any:
    return "pong"


CORE_COMMANDS: dict[str, Callable[[Server, dict[str, Any]], Awaitable[Any]]] = {
    "user.add": _user_add,
    "user.delete": _user_delete,
    "user.passwd": _user_passwd,
    "user.list": _user_list,
    "ping": _ping,
}


async def dispatch(server: Server, command: str, args: dict[str, Any]) -> Any:
    """Run ``command``; AdminError for anything the operator did wrong."""
    try:
        return await _dispatch(server, command, args)
    except BadPassword as exc:
        raise AdminError(f"invalid password: {exc}") from None


async def _dispatch(server: Server, command: str, args: dict[str, Any]) -> Any:
    core = CORE_COMMANDS.get(command)
    if core is not None:
        return await core(server, args)
    host = get_host(server, str(args.get("host", "")))
    for item in host.items.get("admin-command", ()):
        if item.name == command:
            return await item.handler(host, args)
    provider = server.loader.provider_of_admin_command(command)
    if provider is not None:
        raise AdminError(
            f"{command} needs module {provider}, which is not enabled on {host.name}:"
            f' add "{provider}" to its modules_enabled'
        )
    raise AdminError(f"unknown command {command!r} for {host.name}")


class AdminSocket:
    """The running server's end of the CLI channel."""

    def __init__(self, server: Server, listener: asyncio.AbstractServer, path: Path) -> None:
        self._server = server
        self._listener = listener
        self.path = path

    @classmethod
    async def start(cls, server: Server) -> AdminSocket | None:
        path = socket_path(server)
        if not fits_socket(path):
            log.warning(
                "admin socket path too long for a Unix socket, CLI will work offline: %s", path
            )
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of a server that did not stop cleanly
        old_umask = os.umask(0o177)
        try:
            listener = await asyncio.start_unix_server(
                lambda r, w: _serve_client(server, r, w), path=path, limit=_MAX_REQUEST
            )
        finally:
            os.umask(old_umask)
        return cls(server, listener, path)

    async def close(self) -> None:
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def _serve_client(
    server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while line := await reader.readline():
            reply: dict[str, Any]
            try:
                request = msgspec.json.decode(line)
                command = request["command"]
                log.info("admin command %s", command)
                result = await dispatch(server, command, dict(request.get("args", {})))
                reply = {"ok": True, "result": result}
            except AdminError as exc:
                reply = {"ok": False, "error": str(exc)}
            except (msgspec.DecodeError, KeyError, TypeError):
                reply = {"ok": False, "error": "malformed admin request"}
            except Exception:
                log.exception("admin command failed")
                reply = {"ok": False, "error": "internal error; see the server log"}
            writer.write(msgspec.json.encode(reply) + b"\n")
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def call(path: Path, command: str, args: dict[str, Any], timeout: float = 30.0) -> Any:
    """Run a command in the server listening on ``path``.

    Raises ConnectionRefusedError or FileNotFoundError when no server listens there (as when the
    path is too long for a Unix socket: the server then runs without one), AdminError when the
    command failed.
    """
    if not fits_socket(path):
        raise FileNotFoundError(f"no admin socket: {path} is too long for a Unix socket")
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:
        writer.write(msgspec.json.encode({"command": command, "args": args}) + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not line:
        raise AdminError("the server closed the admin connection")
    reply = msgspec.json.decode(line)
    if not reply.get("ok"):
        raise AdminError(reply.get("error", "failed"))
    return reply.get("result")


# What connecting to the admin socket raises when no server listens on it.
_NO_SERVER = (FileNotFoundError, ConnectionRefusedError, NotADirectoryError)
# How long a command waits for a server that holds the data folder but does not answer on its
# admin socket yet (it is starting, or stopping), or for another command running in-process.
COMMAND_WAIT = 30.0


async def run(
    config: Config, command: str, args: dict[str, Any], *, wait: float = COMMAND_WAIT
) -> Any:
    """Run an admin command in the running server, or in-process when none runs.

    In-process, the command holds the data folder's lock (datalock.py), so no server starts
    beside it; when a server holds the lock, the command goes through its admin socket as soon
    as it answers. A server without an admin socket (the path is too long for one) is the
    exception: the command then runs in-process beside it, as the server's log says it will.
    """
    path = socket_path(config.data_path)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return await call(path, command, args)
        except TimeoutError:
            raise AdminError(f"the server did not answer on its admin socket {path}") from None
        except _NO_SERVER:
            pass
        except OSError as exc:
            raise AdminError(_socket_problem(path, exc)) from None
        try:
            return await _in_process(config, command, args, lock=True)
        except datalock.DataFolderBusy as busy:
            server = busy.holder is not None and busy.holder.role == datalock.SERVER
            if server and not fits_socket(path):
                return await _in_process(config, command, args, lock=False)
            if loop.time() >= deadline:
                if server:
                    raise AdminError(
                        f"{busy}, which does not answer on its admin socket {path}"
                    ) from None
                raise AdminError(str(busy)) from None
        await asyncio.sleep(0.05)


def _socket_problem(path: Path, exc: OSError) -> str:
    problem = f"cannot use the running server's admin socket {path}: {exc.strerror}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        problem += " (run the command as the user the server runs as)"
    return problem


async def _in_process(config: Config, command: str, args: dict[str, Any], *, lock: bool) -> Any:
    from minixmpp.server import Server

    logging.basicConfig(level=logging.WARNING, format="minixmpp: %(message)s")
    server = Server(config)
    await server.start(listen=False, admin_socket=False, lock=lock)
    try:
        return await dispatch(server, command, args)
    finally:
        await server.stop()
