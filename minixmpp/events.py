"""The event bus and the catalogue of domain events (name constant beside its payload).

Handlers are ``async def``; higher priority runs first, equal priorities in hook order; the
first handler that returns something other than ``None`` stops propagation and its value is the
result of ``fire()``. A veto is an exception, not a flag.

Each domain event's name is an ``EventName[Payload]``: a string that also carries its payload
type, so ``module.hook(STREAM_FEATURES)`` hands the handler a ``StreamFeatures`` and
``module.fire(STREAM_FEATURES, …)`` takes one, checked by mypy. Stanza events are plain strings
(their names are built from the stanza) and always carry a ``StanzaEvent``: Prosody's names,
``stanza/<ns>:<name>`` and ``stanza/iq/<ns>:<name>`` on unauthenticated streams;
``pre-<kind>/<to>`` then ``<kind>/<to>`` (kind message, presence or iq; to full, bare, host or
self) once bound; ``iq-<type>/<to>/<ns>:<name>`` for IQ payloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from lxml import etree

    from minixmpp.jid import JID
    from minixmpp.session import Session
    from minixmpp.storage import Transaction

Handler = Callable[[Any], Awaitable[Any]]
P = TypeVar("P")


class EventName(str, Generic[P]):
    """An event's name, typed by its payload ``P`` (it compares and hashes as the string)."""

    __slots__ = ()


class EventBus:
    """Named events with prioritised async handlers. One bus per virtual host."""

    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[int, int, Handler]]] = {}
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        self._seq = 0

    def hook(self, name: str, handler: Handler, priority: int = 0) -> None:
        self._seq += 1
        entries = self._entries.setdefault(name, [])
        entries.append((-priority, self._seq, handler))
        entries.sort(key=lambda e: (e[0], e[1]))
        self._handlers[name] = tuple(h for _, _, h in entries)

    def unhook(self, name: str, handler: Handler) -> None:
        entries = [e for e in self._entries.get(name, ()) if e[2] is not handler]
        if entries:
            self._entries[name] = entries
            self._handlers[name] = tuple(h for _, _, h in entries)
        else:
            self._entries.pop(name, None)
            self._handlers.pop(name, None)

    def has(self, name: str) -> bool:
        return name in self._handlers

    def handlers(self, name: str) -> tuple[Handler, ...]:
        """The handlers of ``name`` in calling order (empty if none): lets hot paths skip the
        coroutine of ``fire()`` for events nobody listens to."""
        return self._handlers.get(name, ())

    async def fire(self, name: str, event: Any) -> Any:
        handlers = self._handlers.get(name)
        return await run_handlers(handlers, event) if handlers else None


async def run_handlers(handlers: tuple[Handler, ...], event: Any) -> Any:
    """Call ``handlers`` in order until one returns something other than None."""
    for handler in handlers:
        result = await handler(event)
        if result is not None:
            return result
    return None


# -- stanza events -------------------------------------------------------------------------


@dataclass(slots=True)
class StanzaEvent:
    """A stanza (or stream-level element) from ``session`` (a client's, or a host's own).

    ``to`` is the prepared addressee once the router has parsed it; ``None`` when the stanza is
    for the sender's own account (no ``to``, or its bare JID, which the router then removes as
    Prosody does) or before resource binding.
    """

    session: Session
    stanza: etree._Element
    to: JID | None = None


# A resource sent its initial presence: stored messages may be delivered now
OFFLINE_BROADCAST: EventName[StanzaEvent] = EventName("message/offline/broadcast")


@dataclass(slots=True)
class DiscoNode:
    """A disco#info or #items query for a node of the host (XEP-0030): a handler that knows
    ``node`` fills ``query`` (the reply's) and returns True; unknown nodes get item-not-found."""

    event: StanzaEvent
    node: str
    query: etree._Element


HOST_DISCO_INFO_NODE: EventName[DiscoNode] = EventName("host-disco-info-node")
HOST_DISCO_ITEMS_NODE: EventName[DiscoNode] = EventName("host-disco-items-node")


# -- stream and session lifecycle -----------------------------------------------------------


@dataclass(slots=True)
class StreamFeatures:
    """Fired when ``<stream:features/>`` is built; handlers append children to ``features``."""

    session: Session
    features: etree._Element


@dataclass(slots=True)
class SessionEvent:
    """``authentication-success``/``-failure``, ``resource-bind``: something about a session."""

    session: Session


@dataclass(slots=True)
class ResourceUnbind:
    """A bound session is going away; ``error`` says why when it was not a clean close."""

    session: Session
    error: str | None = None


@dataclass(slots=True)
class ConnectionLost:
    """A bound session's connection dropped without a stream close. A handler that returns
    True keeps the session bound without a connection (XEP-0198 hibernation): it must later
    ``attach()`` a new connection to it or ``end()`` it."""

    session: Session
    error: str | None = None


# No input from a bound client for c2s_idle_timeout (Prosody's name): True keeps the stream
# another period, False drops the connection without a stream error, None closes the stream
# (connection-timeout). XEP-0198 asks the client for an ack here.
C2S_READ_TIMEOUT: EventName[SessionEvent] = EventName("c2s-read-timeout")
STREAM_FEATURES: EventName[StreamFeatures] = EventName("stream-features")
AUTHENTICATION_SUCCESS: EventName[SessionEvent] = EventName("authentication-success")
AUTHENTICATION_FAILURE: EventName[SessionEvent] = EventName("authentication-failure")
RESOURCE_BIND: EventName[SessionEvent] = EventName("resource-bind")
RESOURCE_UNBIND: EventName[ResourceUnbind] = EventName("resource-unbind")
CONNECTION_LOST: EventName[ConnectionLost] = EventName("connection-lost")


# -- accounts --------------------------------------------------------------------------------


@dataclass(slots=True)
class UserEvent:
    """An account was created, deleted or had its password changed (by any path)."""

    username: str
    host: str
    source: str = "core"
    session: Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)


USER_CREATED: EventName[UserEvent] = EventName("user-created")
# before the account and its data go: read what you need
USER_DELETING: EventName[UserEvent] = EventName("user-deleting")
USER_DELETED: EventName[UserEvent] = EventName("user-deleted")
USER_PASSWORD_CHANGED: EventName[UserEvent] = EventName("user-password-changed")


@dataclass(slots=True)
class Registration:
    """An account about to be registered. Handlers of ``user-registering`` run from the highest
    priority down; one that refuses raises ``StanzaError`` (its type, condition and text go to
    the client) and no later handler runs. ``allow_reset`` names an existing account whose
    password this registration may overwrite (a password-reset invite)."""

    username: str
    password: str = field(repr=False)  # never logged
    host: str = ""
    additional: dict[str, str] = field(default_factory=dict)
    ip: str = ""
    session: Session | None = None
    allow_reset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Run inside the transaction that creates the account or resets its password (e.g. using
    # up an invite): one that raises StanzaError undoes it all, so both happen or neither does.
    in_transaction: list[Callable[[Transaction], Awaitable[None]]] = field(default_factory=list)


# In-band registration (mod_register), Prosody's names.
# A handler refuses by raising StanzaError.
USER_REGISTERING: EventName[Registration] = EventName("user-registering")
USER_REGISTERED: EventName[UserEvent] = EventName("user-registered")  # source: "register"
USER_DEREGISTERED: EventName[UserEvent] = EventName("user-deregistered")  # removed itself
# An existing account's password was reset by registering it again
USER_PASSWORD_RESET: EventName[Registration] = EventName("user-password-reset")


# -- server lifecycle -----------------------------------------------------------------------


@dataclass(slots=True)
class ServerEvent:
    host: str


SERVER_STARTED: EventName[ServerEvent] = EventName("server-started")
SERVER_STOPPING: EventName[ServerEvent] = EventName("server-stopping")


@dataclass(slots=True)
class ConfigReloaded:
    """The configuration was reloaded (SIGHUP). ``changed``: the options whose new values are
    in force on ``host`` from now on. A module whose options may change live hooks this and
    reads them again (``module.options(Options)``); the options of a module that does not
    keep their values until a restart."""

    host: str
    changed: frozenset[str] = frozenset()


CONFIG_RELOADED: EventName[ConfigReloaded] = EventName("config-reloaded")  # Prosody's name
