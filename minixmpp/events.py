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
    from minixmpp.sasl import Mechanism
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
        # Sees every event fired, before its handlers (the test harness's event log).
        self.tap: Callable[[str, Any], None] | None = None

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
        if self.tap is not None:
            self.tap(name, event)
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
    """A disco#info or #items query for a node of the host or of an account (XEP-0030): a
    handler that knows ``node`` fills ``query`` (the reply's) and returns True; unknown nodes
    get item-not-found. A handler may also raise StanzaError (e.g. forbidden). For the
    ``*-disco-items`` events (no node asked, ``node`` is ""), handlers add items and return
    None, so that every module adds its own. ``event.to`` is the account asked (None: the
    asker's own)."""

    event: StanzaEvent
    node: str
    query: etree._Element


HOST_DISCO_INFO_NODE: EventName[DiscoNode] = EventName("host-disco-info-node")
HOST_DISCO_ITEMS_NODE: EventName[DiscoNode] = EventName("host-disco-items-node")
HOST_DISCO_ITEMS: EventName[DiscoNode] = EventName("host-disco-items")
ACCOUNT_DISCO_INFO_NODE: EventName[DiscoNode] = EventName("account-disco-info-node")
ACCOUNT_DISCO_ITEMS_NODE: EventName[DiscoNode] = EventName("account-disco-items-node")
ACCOUNT_DISCO_ITEMS: EventName[DiscoNode] = EventName("account-disco-items")


@dataclass(slots=True)
class PrivateStorageChanged:
    """A user's private XML (XEP-0049, mod_private) under ``key`` (``name:namespace``) was
    stored (``element``) or deleted (``None``). ``session``: the client that did it, or None
    when a module did (so that a sync, e.g. XEP-0048 bookmarks to PEP, ignores its own)."""

    username: str
    key: str
    element: etree._Element | None
    session: Session | None = None


PRIVATE_STORAGE_CHANGED: EventName[PrivateStorageChanged] = EventName("private-storage-changed")


@dataclass(slots=True)
class VcardChanged:
    """A user set a vCard-temp (XEP-0054, mod_vcard): ``vcard`` as it was given, and
    ``avatar_hash`` the SHA-1 of the avatar now ("" for none). ``session``: the client that did
    it, or None when a module did."""

    username: str
    vcard: etree._Element
    avatar_hash: str
    session: Session | None = None


VCARD_CHANGED: EventName[VcardChanged] = EventName("vcard-changed")


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


# -- SASL2 (XEP-0388) and Bind 2 (XEP-0386): what other modules add inline ------------------
#
# mod_sasl2 offers <authentication xmlns='urn:xmpp:sasl:2'/> and fires SASL2_FEATURES for its
# <inline/>; on <authenticate/>, SASL2_AUTHENTICATE (a module may supply the mechanism: FAST);
# once the mechanism has succeeded, SASL2_SUCCESS, whose handlers act on their part of the
# request, highest priority first, and add their answers to <success/>:
#   110  stream resumption (XEP-0198 <resume/>: mod_smacks; sets ``resumed``)
#   100  Bind 2 (mod_sasl2_bind2: binds unless ``resumed``, then fires BIND2_ENABLE)
#    75  FAST tokens (mod_sasl2_fast)
# then it sends <success/> (with <authorization-identifier/>) and the new stream features, and
# runs ``after``. Bind 2 advertises inline features collected by BIND2_FEATURES and, once bound,
# fires BIND2_ENABLE so each enables its own (carbons, CSI, stream management: <enable/>).


@dataclass(slots=True)
class InlineFeatures:
    """SASL2's ``<inline/>`` being advertised (``advertise-sasl-features``): handlers append
    their feature elements to ``inline`` (Bind 2's ``<bind/>``, FAST's ``<fast/>``, stream
    management's ``<sm/>``)."""

    session: Session
    inline: etree._Element


@dataclass(slots=True)
class Bind2Features:
    """Bind 2's inline features being advertised (``advertise-bind-features``): handlers
    append the disco feature they can enable at bind time (``urn:xmpp:carbons:2``,
    ``urn:xmpp:sm:3``) to ``features``; each becomes ``<feature var='…'/>``."""

    session: Session
    features: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UserAgent:
    """A SASL2 ``<user-agent/>``: ``id`` names the client installation (a UUID); it is never
    shown to anyone, only hashed (Bind 2's resource, FAST's token slots). ``software`` and
    ``device`` are the client's own words."""

    id: str | None
    software: str | None = None
    device: str | None = None


@dataclass(slots=True)
class Sasl2Authenticate:
    """An ``<authenticate/>`` (XEP-0388) arrived, before its mechanism is chosen. A handler
    that owns the mechanism asked for (FAST's token mechanisms, when the request holds
    ``<fast/>``) sets ``mechanism``; one that refuses the attempt raises
    ``minixmpp.sasl.SaslFailure``, which the client gets as a ``<failure/>``."""

    session: Session
    request: etree._Element
    user_agent: UserAgent | None
    mechanism: Mechanism | None = None


@dataclass(slots=True)
class Sasl2Success:
    """A SASL2 mechanism succeeded and ``success``, the ``<success/>`` to send, is being built
    (see the priorities above): ``session`` is authenticated, and whatever it is sent meanwhile
    waits until ``<success/>`` and the new stream features are out. ``request`` is the
    client's ``<authenticate/>``. A stream-resumption handler that resumes a session sets
    ``resumed`` and puts the resumed session in ``session`` (``<success/>``, the features and
    the authorization identifier are then its own); its stanzas are the handler's to hold
    back until ``after``. ``after``: what to run once ``<success/>`` and the features are out
    (e.g. stream management's first acknowledgement, the resend of unacknowledged stanzas)."""

    session: Session
    request: etree._Element
    success: etree._Element
    mechanism: Mechanism
    user_agent: UserAgent | None
    resumed: bool = False
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(slots=True)
class Bind2Request:
    """Bind 2 has bound ``session``'s resource: handlers enable, for this session, what the
    client asked for inside ``request`` (its ``<bind/>``: ``<enable xmlns='urn:xmpp:carbons:2'
    />``, ``<inactive xmlns='urn:xmpp:csi:0'/>``, ``<enable xmlns='urn:xmpp:sm:3'/>``) and
    append their answers, if they have one, to ``bound`` (e.g. stream management's
    ``<enabled/>``). ``success`` is the whole SASL2 ``<success/>`` event (its ``after`` list)."""

    session: Session
    request: etree._Element
    bound: etree._Element
    success: Sasl2Success


# Prosody's names (mod_sasl2, mod_sasl2_bind2), but sasl2-authenticate: Prosody's modules hook
# the <authenticate/> element itself, at priorities, and swap the session's SASL handler.
SASL2_FEATURES: EventName[InlineFeatures] = EventName("advertise-sasl-features")
SASL2_AUTHENTICATE: EventName[Sasl2Authenticate] = EventName("sasl2-authenticate")
SASL2_SUCCESS: EventName[Sasl2Success] = EventName("sasl2/c2s/success")
BIND2_FEATURES: EventName[Bind2Features] = EventName("advertise-bind-features")
BIND2_ENABLE: EventName[Bind2Request] = EventName("enable-bind-features")


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
# The test harness returns the server to its start state (Prosody's mod_debug_reset names):
# every session is gone and the stores are about to be restored; a module that keeps state in
# memory (throttles, ad-hoc sessions) forgets it here. server-reset follows once it is done.
SERVER_RESETTING: EventName[ServerEvent] = EventName("server-resetting")
SERVER_RESET: EventName[ServerEvent] = EventName("server-reset")


@dataclass(slots=True)
class ConfigReloaded:
    """The configuration was reloaded (SIGHUP). ``changed``: the options whose new values are
    in force on ``host`` from now on. A module whose options may change live hooks this and
    reads them again (``module.options(Options)``); the options of a module that does not
    keep their values until a restart."""

    host: str
    changed: frozenset[str] = frozenset()


CONFIG_RELOADED: EventName[ConfigReloaded] = EventName("config-reloaded")  # Prosody's name
