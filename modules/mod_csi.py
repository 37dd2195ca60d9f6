"""Client State Indication (XEP-0352), as Prosody's mod_csi and mod_csi_simple do it.

A logged-in client may say it is ``<inactive/>`` (a phone in a pocket) and ``<active/>`` again.
While it is inactive, what is not urgent is held back, stamped with a ``<delay/>`` (XEP-0203)
of when it would have gone: presence updates (available, unavailable, errors), headlines, and
messages with nothing a person reads now (chat states, receipts, markers). What is urgent goes
out at once, after everything held: IQs, stream-level elements, subscription requests, message
errors, carbons of what the user sent, and messages with a body, a subject, an encrypted
payload, an invitation or a call (Jingle Message Initiation), or an element of
``csi_important_payloads``.

Unlike Prosody, which holds the bytes, held presence is folded: a newer presence from the same
sender replaces the one waiting, and so does a newer chat state from the same sender, so a busy
roster costs an inactive client one presence per contact.

All that is held goes out when the client says ``<active/>``, when an urgent stanza comes, when
the client sends anything (its radio is on), and when ``csi_queue_size`` stanzas wait. After
such a flush the session stays active for ``csi_resume_inactive_delay`` seconds, so that the
replies and updates that follow go out without churn. What is still held when the stream ends
is dropped, as the bytes Prosody holds are: it is never a message with a body. A client logging
in with Bind 2 (XEP-0386) may start inactive, saying so in its bind request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from minixmpp.clock import Clock, Timer
from minixmpp.config import PositiveInt
from minixmpp.events import (
    BIND2_ENABLE,
    BIND2_FEATURES,
    RESOURCE_UNBIND,
    STREAM_FEATURES,
    Bind2Features,
    Bind2Request,
    ResourceUnbind,
    StanzaEvent,
    StreamFeatures,
)
from minixmpp.module import Module
from minixmpp.router import PRE_EVENT
from minixmpp.session import Session
from minixmpp.xml import stanza as st

NS_CSI = "urn:xmpp:csi:0"
NS_CARBONS = "urn:xmpp:carbons:2"
CHATSTATE = "{http://jabber.org/protocol/chatstates}"
KEY = "csi"  # session.data: the Holder of a session that has once been inactive
RECEIVED_MESSAGE = (
    "{urn:xmpp:carbons:2}received/{urn:xmpp:forward:0}forwarded/{jabber:client}message"
)
MUC_INVITE = "{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}invite"
JINGLE_MESSAGE = ("{urn:xmpp:jingle-message:0}", "{urn:xmpp:jingle-message:1}")


@dataclass
class Options:
    csi_queue_size: PositiveInt = 256  # stanzas held before all of them go out
    csi_resume_inactive_delay: float = 5.0  # seconds a flushed session stays active
    # more payloads that make a message urgent, as ElementPath: "{urn:xmpp:jingle:1}jingle"
    csi_important_payloads: list[str] = field(default_factory=list)


def important(stanza: etree._Element, payloads: list[str] = []) -> bool:  # noqa: B006
    """Whether an inactive client must get ``stanza`` now (Prosody's is_important, in order)."""
    tag = stanza.tag
    if tag == "presence":
        return stanza.get("type") not in (None, "unavailable", "error")  # subscriptions
    if tag != "message":
        return True  # IQs, and stream-level elements (XEP-0198 acks, stream errors)
    kind = stanza.get("type")
    if kind == "headline":
        return False
    if kind == "error":
        return True  # a delivery failure
    if stanza.find(f"{{{NS_CARBONS}}}sent") is not None:
        return True  # the user wrote it on another device: this one should show it now
    message = stanza.find(RECEIVED_MESSAGE)
    if message is not None:
        return _urgent_message(message, "{jabber:client}", payloads)
    return _urgent_message(stanza, "", payloads)


def _urgent_message(message: etree._Element, ns: str, payloads: list[str]) -> bool:
    if message.find(f"{ns}body") is not None or message.find(f"{ns}subject") is not None:
        return True  # a subject: the last step of joining a room
    if message.find("{urn:xmpp:eme:0}encryption") is not None:
        return True  # what it holds cannot be known
    if message.find("{jabber:x:conference}x") is not None:
        return True
    if (
        message.find(
            "{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}invite"
        )
        is not None
    ):
        return True
    if any(child.tag.startswith(JINGLE_MESSAGE) for child in message if isinstance(child.tag, str)):
        return True
    return any(message.find(path) is not None for path in payloads)


def fold_key(stanza: etree._Element) -> tuple[str, str] | None:
    """What makes a held stanza obsolete: a newer presence update from the same sender, or a
    newer chat state from the same sender (a message of only a chat state and a thread)."""
    if stanza.tag == "presence":
        if stanza.get("type") in (None, "unavailable"):
            return ("presence", stanza.get("from") or "")
        return None
    if stanza.tag == "message" and stanza.get("type") != "headline":
        payload = [c.tag for c in stanza if c.tag not in ("thread", "{urn:xmpp:delay}delay")]
        if payload and all(isinstance(t, str) and t.startswith(CHATSTATE) for t in payload):
            return ("chatstate", stanza.get("from") or "")
    return None


class Holder:
    """An outbound filter that holds what is not urgent while its session is inactive."""

    def __init__(self, session: Session, opts: Options, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.opts = opts
        self.inactive = False
        self.held: list[etree._Element] = []
        self._flushing = False
        self._grace: Timer | None = None  # after a flush: active for a while

    @property
    def holding(self) -> bool:
        return self.inactive and self._grace is None and not self._flushing

    def __call__(self, stanza: etree._Element) -> etree._Element | None:
        if not self.holding:
            return stanza
        if important(stanza, self.opts.csi_important_payloads):
            self.flush(grace=True)
            return stanza  # after everything held
        if stanza.tag in ("message", "presence"):
            stanza = st.keep(stanza)  # a copy: the same element may be on its way to others
            bare = f"{self.session.username}@{self.session.host}"
            st.add_delay(stanza, bare, self.clock.stamp())
        key = fold_key(stanza)
        if key is not None:
            self.held = [h for h in self.held if fold_key(h) != key]
        self.held.append(stanza)
        if len(self.held) >= self.opts.csi_queue_size:
            self.flush(grace=True)
        return None  # held

    def flush(self, *, grace: bool) -> None:
        """Send everything held, through the session's filters (XEP-0198 counts it then)."""
        held, self.held = self.held, []
        self._flushing = True
        try:
            for stanza in held:
                self.session.send(stanza)
        finally:
            self._flushing = False
        if grace and self.inactive and self._grace is None:
            self._grace = self.clock.call_later(self.opts.csi_resume_inactive_delay, self._resume)

    def _resume(self) -> None:
        self._grace = None

    def set_active(self) -> None:
        self.inactive = False
        self.stop_grace()
        self.flush(grace=False)

    def stop_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None


def load(module: Module) -> None:
    opts = module.options(Options)

    @module.hook(STREAM_FEATURES)
    async def features(event: StreamFeatures) -> None:
        if event.session.authenticated:
            st.sub(event.features, f"{{{NS_CSI}}}csi")

    def go_inactive(session: Session) -> None:
        holder = session.data.get(KEY)
        if holder is None:
            holder = session.data[KEY] = Holder(session, opts, module.clock)
            # before the other filters: they see a held stanza only when it goes out
            session.filters.add(holder, priority=1000)
        holder.inactive = True
        holder.stop_grace()

    @module.hook(f"stanza/{NS_CSI}:inactive")
    async def inactive(event: StanzaEvent) -> bool | None:
        if not event.session.authenticated:
            return None  # unsupported-stanza-type, as for any unknown element
        go_inactive(event.session)
        return True

    @module.hook(BIND2_FEATURES)
    async def inline(event: Bind2Features) -> None:
        event.features.append(NS_CSI)

    @module.hook(BIND2_ENABLE)
    async def state_at_bind(event: Bind2Request) -> None:
        """Bind 2 (XEP-0386): ``<inactive xmlns='urn:xmpp:csi:0'/>`` in the bind request starts
        the session inactive (``<active/>`` is how every session starts), once the SASL2
        ``<success/>`` and the features are out (they would end the inactivity at once)."""
        if event.request.find(f"{{{NS_CSI}}}inactive") is None:
            return
        session = event.session

        async def start_inactive() -> None:
            go_inactive(session)

        event.success.after.append(start_inactive)

    @module.hook(f"stanza/{NS_CSI}:active")
    async def active(event: StanzaEvent) -> bool | None:
        session = event.session
        if not session.authenticated:
            return None
        holder = session.data.get(KEY)
        if holder is not None:
            holder.set_active()
        return True

    async def client_activity(event: StanzaEvent) -> None:
        holder = event.session.data.get(KEY)
        if holder is not None and holder.holding and holder.held:
            holder.flush(grace=True)

    for name in PRE_EVENT.values():
        module.hook(name, priority=1000)(client_activity)

    @module.hook(RESOURCE_UNBIND)
    async def unbind(event: ResourceUnbind) -> None:
        holder = event.session.data.get(KEY)
        if holder is not None:  # the connection is gone: what is held goes nowhere
            holder.stop_grace()
            holder.held.clear()


def unload(module: Module) -> None:
    for session in module.all_sessions():
        holder = session.data.pop(KEY, None)
        if holder is not None:
            holder.set_active()
            session.filters.remove(holder)
