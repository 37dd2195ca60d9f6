"""One session's stream management (XEP-0198): its two counters, the queue of what the client
has not acknowledged yet, and the two filters that keep them.

Counters are unsigned 32-bit and wrap to zero (XEP-0198 §4): ``inbound`` is the client's
stanzas this server has handled (the ``h`` it reports), ``acked`` the last ``h`` the client
reported; ``acked + len(queue)`` is what this server has sent. The queue holds each stanza as
it went out (serialised: the element may be sent on to others, changed, and it keeps its
parser alive) with the time it was sent, so that a resent or stored copy can say when it was
first sent (XEP-0203 ``<delay/>``, as Prosody stamps its queued copies).

The outbound filter must be the session's last: it counts and queues what really goes out,
writes it itself and asks for an acknowledgement right behind it when one is due (Prosody's
rule: more than ``smacks_max_unacked_stanzas`` unacknowledged, none asked for yet, and not for
the same count twice), so that ``<r/>`` leaves in the same write. While the session is
``held`` (hibernating, or being resumed) stanzas are only queued. Once ``dead`` (the session is
ending) stanzas pass as if stream management were off.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from minixmpp.session import C2SSession
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from minixmpp.clock import Clock, Timer

NS_SM = "urn:xmpp:sm:3"
MOD = 1 << 32
STANZAS = frozenset({"message", "presence", "iq"})
KEY = "smacks"  # session.data: the SmState of a session that enabled stream management
CSI_KEY = "csi"  # mod_csi's Holder, whose ``inactive`` and ``set_active()`` are used here
_REQUEST = st.element(f"{{{NS_SM}}}r")

HEAD_TEXT = "Client acknowledged more stanzas than sent by server"  # Prosody's texts
TAIL_TEXT = "Client acknowledged less stanzas than already acknowledged"


class AckError(Exception):
    """An ``h`` the queue cannot take: more than was sent (``head``), or less than was already
    acknowledged (``tail``). Prosody's texts; ``head`` also carries XEP-0198 1.6's
    ``<handled-count-too-high/>``."""

    def __init__(self, kind: str, h: int, sent: int) -> None:
        super().__init__(HEAD_TEXT if kind == "head" else TAIL_TEXT)
        self.kind, self.h, self.sent = kind, h, sent

    @property
    def text(self) -> str:
        return str(self)

    @property
    def app(self) -> str | None:
        if self.kind != "head":
            return None
        return f"<handled-count-too-high xmlns='{NS_SM}' h='{self.h}' send-count='{self.sent}'/>"


def parse_h(value: str | int | None) -> int | None:
    """An ``h`` (xs:unsignedInt): decimal digits, below 2^32; None if it is not one."""
    if isinstance(value, int):
        return value if 0 <= value < MOD else None
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if number < MOD else None


def stamp(when: float) -> str:
    """XEP-0082 DateTime of a Unix time (seconds, UTC), as Clock.stamp() writes now."""
    moment = datetime.datetime.fromtimestamp(int(when), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SmState:
    """Stream management of one session (see the module docstring)."""

    __slots__ = (
        "acked", "awaiting_ack", "clock", "dead", "expired", "held", "id", "inbound",
        "last_requested", "limits", "on_overflow", "queue", "queued_bytes", "session", "timer",
    )  # fmt: skip

    def __init__(
        self,
        session: C2SSession,
        clock: Clock,
        limits: tuple[int, int, int, int],
        on_overflow: Callable[[SmState], None],
    ) -> None:
        self.session = session
        self.clock = clock
        # (smacks_max_unacked_stanzas, smacks_max_inactive_unacked_stanzas,
        #  smacks_max_queue_size, smacks_max_queue_bytes)
        self.limits = limits
        self.on_overflow = on_overflow
        self.id: str | None = None  # the SM-ID while the session may be resumed
        self.inbound = 0
        self.acked = 0
        self.queue: deque[tuple[bytes, float]] = deque()
        self.queued_bytes = 0
        self.held = False
        self.dead = False
        self.expired = False  # ended while resumable: its counter is remembered
        self.awaiting_ack = False
        self.last_requested = -1  # what ``sent`` was at the last <r/>
        self.timer: Timer | None = None  # hibernation's end

    @property
    def sent(self) -> int:
        return (self.acked + len(self.queue)) % MOD

    # -- the filters ------------------------------------------------------------------------

    def count_in(self, stanza: etree._Element) -> etree._Element:
        """Inbound filter: each stanza from the client is handled (the router has it next)."""
        if stanza.tag in STANZAS:
            self.inbound = (self.inbound + 1) % MOD
        return stanza

    def out(self, stanza: etree._Element) -> etree._Element | None:
        """Outbound filter: queue the stanza; write it (and an ack request) unless held."""
        if self.dead or stanza.tag not in STANZAS:
            return stanza
        data = st.tostring(stanza)
        self.queue.append((data, self.clock.time()))
        self.queued_bytes += len(data)
        if len(self.queue) > self.limits[2] or self.queued_bytes > self.limits[3]:
            self.dead = True  # from here on, as without stream management
            self.on_overflow(self)
            return None  # queued: it is handled with the rest when the session ends
        link = self.session.link
        if self.held or link is None:
            return None
        link.send_element(stanza)  # not written (closing): still queued, handled at the end
        if self.should_request():
            self.request_ack()
        return None

    # -- acknowledgements -------------------------------------------------------------------

    def should_request(self) -> bool:
        """Prosody's should_ack: unacknowledged stanzas beyond the limit (the higher one while
        the client says it is inactive, XEP-0352), no answer awaited, not the same count."""
        if self.held or self.dead or self.awaiting_ack:
            return False
        holder = self.session.data.get(CSI_KEY)
        limit = self.limits[1] if getattr(holder, "inactive", False) else self.limits[0]
        return len(self.queue) > limit and self.sent != self.last_requested

    def request_ack(self) -> None:
        link = self.session.link
        if link is None or self.held or self.dead:
            return
        self.awaiting_ack = True
        self.last_requested = self.sent
        link.send_element(_REQUEST)

    def check(self, h: int) -> AckError | None:
        """Whether the client may acknowledge up to ``h`` (32-bit, wrapping)."""
        if (h - self.acked) % MOD <= len(self.queue):
            return None
        behind = (self.acked - h) % MOD
        return AckError("tail" if behind < MOD // 2 else "head", h, self.sent)

    def ack(self, h: int) -> None:
        """The client has handled everything up to ``h``; raises AckError."""
        error = self.check(h)
        if error is not None:
            raise error
        for _ in range((h - self.acked) % MOD):
            self.queued_bytes -= len(self.queue.popleft()[0])
        self.acked = h

    # -- resumption and the end ---------------------------------------------------------------

    def resend(self) -> None:
        """Write what the client has not acknowledged, in order, each stamped with when it was
        first sent (the copies stay queued: the client acknowledges them as any other)."""
        link = self.session.link
        if link is None:
            return
        bare = f"{self.session.username}@{self.session.host}"
        for data, when in self.queue:
            stanza = st.from_stored(data)
            if stanza is not None:
                link.send_element(stamped(stanza, bare, when))

    def take(self) -> list[tuple[bytes, float]]:
        """Empty the queue (the session ends) and return what it held."""
        items = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        return items


def stamped(stanza: etree._Element, bare: str, when: float) -> etree._Element:
    """``stanza`` with a ``<delay/>`` from ``bare`` at ``when`` unless it is an IQ or already
    says when it was first sent (Prosody's rule for queued stanzas)."""
    if stanza.tag != "iq" and stanza.find(f"{{{st.NS_DELAY}}}delay") is None:
        st.add_delay(stanza, bare, stamp(when))
    return stanza
