"""What a client connection needs from its transport, and what modules may attach to it: the
interfaces between connection.py and the transports (net.py's TCP one, mod_websocket's) and
modules (mod_limits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from minixmpp.connection import Connection


class Transport(Protocol):
    """What a connection needs from its transport (the asyncio.Transport subset, plus
    ``writelines`` of output units: joined on TCP, one text frame each on WebSocket)."""

    def writelines(self, chunks: list[bytes]) -> None: ...
    def close(self, *, linger: bool = True) -> None:
        """Close after the buffered output; ``linger``: give the client a moment to read it
        and close its side, discarding its input meanwhile (net.py); ``False`` on a closing
        transport ends that wait."""
        ...

    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    async def wait_drained(self) -> None: ...


class InputThrottle(Protocol):
    """Meters a connection's input (mod_limits)."""

    def take(self, size: int, *, whole: bool = False) -> int:
        """How many of ``size`` bytes just received may be handled now (``whole``: all or
        none, for a WebSocket frame, which cannot be split). When fewer, the connection holds
        the rest, in order, and stops reading until the throttle calls ``release_input()``."""
        ...


@dataclass(frozen=True)
class ConnectionSetup:
    """What a module does to each client connection when it is made, before any input:
    ``module.provides("connection-setup", ConnectionSetup(name, setup))``. Connections have no
    host yet, so each name runs once, whichever hosts provide it (Prosody's filter hooks)."""

    name: str
    setup: Callable[[Connection], None]


class StreamProtocol(Protocol):
    """The callbacks a Transport makes (the asyncio.Protocol ones)."""

    def connection_made(self, transport: Any) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def connection_failed(self, exc: Exception | None) -> None:
        """The connection ended before ``connection_made`` (a direct-TLS handshake failed or
        timed out): whatever the protocol took on at accept can be given back."""
        ...

    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
