"""Stream management on one host: enabling, resumption, hibernation and its end.

``Smacks`` is what ``load()`` returns. The stream elements, and the inline forms of a SASL2 login
(XEP-0198 §7: the SASL2 and Bind 2 events mod_smacks hooks), use the same two methods, and
other modules can call them too:

- ``enable(session, resume)`` -> ``<enabled/>`` or ``<failed/>``, to send (or to put in Bind 2's
  ``<bound/>``); from then on the session's stanzas are counted.
- ``await resume(session, previd, h)`` -> a ``Resumption``: ``element`` is ``<resumed/>`` (to send,
  or to put in SASL2's ``<success/>``) or ``<failed/>``. When resumed, ``session`` is the old
  session, now on the caller's connection (the newcomer has ended), and nothing of its queue
  goes out until ``await finish()``, to be called once ``<resumed/>`` (or the ``<success/>``
  holding it) is out: it resends what the client had not acknowledged, in order, then asks
  for an acknowledgement.

A resumable session whose connection drops hibernates for ``smacks_hibernation_time``: it stays
bound (its presence stands) and what it is sent is queued. It ends when that time is over, when
its user has more than ``smacks_max_hibernated_sessions`` hibernating (the oldest first), or
beyond ``smacks_max_queue_size`` stanzas or ``smacks_max_queue_bytes``; then its counter is
remembered (up to ``smacks_max_old_sessions`` per user, in the ``smacks_h`` store, as Prosody
does, so also across a restart) for a late ``<resume/>``'s ``<failed h='…'/>``, and what it
never acknowledged is stored or bounced (_unacked.py). A session that ends any other way (a
clean close, a stream error) is not remembered, and its queue goes the same way.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from minixmpp.errors import NS_STANZAS
from minixmpp.session import C2SSession, Session
from minixmpp.xml import stanza as st

from ._state import CSI_KEY, KEY, NS_SM, SmState, parse_h
from ._unacked import dispose

if TYPE_CHECKING:
    from minixmpp.module import Module
    from minixmpp.storage import MapStore

    from . import Options

OVERFLOW = "Too many unacked stanzas remaining, session can't be resumed"  # Prosody's text


def failed(condition: str, h: int | None = None, text: str | None = None) -> etree._Element:
    """``<failed/>`` with a stanza error condition (and ``h`` where XEP-0198 says)."""
    element = st.element(f"{{{NS_SM}}}failed", {"h": None if h is None else str(h)})
    st.sub(element, f"{{{NS_STANZAS}}}{condition}")
    if text is not None:
        st.sub(element, f"{{{NS_STANZAS}}}text", text=text)
    return element


@dataclass
class Resumption:
    """The outcome of ``Smacks.resume()`` (see the module docstring)."""

    element: etree._Element
    session: Session | None = None
    _state: SmState | None = field(default=None, repr=False)

    @property
    def resumed(self) -> bool:
        return self._state is not None

    async def finish(self) -> None:
        """Once ``<resumed/>`` is out: the client is active again (XEP-0352: a new connection
        starts active), what it had not acknowledged goes out again, and an ``<r/>``."""
        state = self._state
        if state is None or not state.held:
            return
        holder = state.session.data.get(CSI_KEY)
        if holder is not None:
            holder.set_active()  # what it held joins the queue (still held here)
        state.held = False
        state.resend()
        state.awaiting_ack = False
        state.request_ack()


class Smacks:
    """Stream management on one host (see the module docstring)."""

    def __init__(self, module: Module, opts: Options) -> None:
        self._module = module
        self._opts = opts
        self._resumable: dict[tuple[str, str], SmState] = {}  # by (username, SM-ID)
        self._sleeping: dict[str, list[SmState]] = {}  # hibernating, by user, oldest first
        self._old: MapStore = module.open_store("smacks_h", "map")
        self._limits = (
            opts.smacks_max_unacked_stanzas,
            opts.smacks_max_inactive_unacked_stanzas,
            opts.smacks_max_queue_size,
            opts.smacks_max_queue_bytes,
        )

    def in_memory(self) -> tuple[dict[tuple[str, str], SmState], dict[str, list[SmState]]]:
        """What this keeps in memory (forgotten when the test harness resets the server: its
        sessions have ended by then, and the ``smacks_h`` store is replaced)."""
        return self._resumable, self._sleeping

    # -- the API ------------------------------------------------------------------------------

    def enable(self, session: Session, resume: bool = False) -> etree._Element:
        """Enable stream management on a bound session (``resume``: make it resumable);
        returns ``<enabled/>`` or ``<failed/>`` (Prosody's conditions)."""
        if session.data.get(KEY) is not None:
            return failed("unexpected-request")  # already enabled
        if not session.authenticated or not isinstance(session, C2SSession):
            return failed("service-unavailable")
        if not session.bound:
            return failed("unexpected-request")  # a resource must be bound first
        state = SmState(session, self._module.clock, self._limits, self._overflow)
        session.data[KEY] = state
        session.filters.add(state.out, priority=-1000)  # the last: it writes what it queues
        session.filters.add_incoming(state.count_in)
        attrs: dict[str, str | None] = {}
        lifetime = self._opts.smacks_hibernation_time
        if resume and lifetime > 0 and session.username is not None:
            state.id = secrets.token_urlsafe(12)
            self._resumable[session.username, state.id] = state
            attrs = {"id": state.id, "resume": "true", "max": str(math.ceil(lifetime))}
        self._module.log.debug("%s enabled stream management", session.jid)
        return st.element(f"{{{NS_SM}}}enabled", attrs)

    async def resume(self, session: Session, previd: str | None, h: str | int | None) -> Resumption:
        """Resume the session ``previd`` of the same account on ``session``'s connection,
        the client having handled ``h`` of its stanzas (see the module docstring)."""
        if session.bound:
            return Resumption(failed("unexpected-request"))
        username = session.username
        if not session.authenticated or username is None:
            return Resumption(failed("item-not-found"))
        handled = parse_h(h)
        if handled is None or not previd:
            return Resumption(failed("bad-request"))
        state = self._resumable.get((username, previd))
        if (
            state is None
            or state.dead
            or state.session is session
            or state.session.state not in ("bound", "hibernating")
            or not isinstance(session, C2SSession)
        ):
            return Resumption(failed("item-not-found", await self._recall(username, previd)))
        error = state.check(handled)
        if error is not None:
            self._module.log.info("%s: resumption refused: %s", state.session.jid, error.text)
            if state.session.link is None:  # a stale session whose client lost count
                self.expire(state, "Resumed with a wrong count")
            return Resumption(failed("undefined-condition", state.inbound, error.text))
        self._wake(state)
        state.held = True  # nothing of the queue before <resumed/>, and finish()
        old = state.session
        old.take_over(session)
        state.ack(handled)
        state.awaiting_ack = False  # not from before the resumption
        self._module.log.info("%s resumed from %s", old.jid, old.ip)
        resumed = st.element(f"{{{NS_SM}}}resumed", {"h": str(state.inbound), "previd": previd})
        return Resumption(resumed, old, state)

    # -- hibernation and the end ---------------------------------------------------------

    def hibernate(self, session: Session) -> bool:
        """The connection of ``session`` dropped: keep it if it is resumable (and not resumed
        on a new connection already, in the moment before this is called)."""
        state: SmState | None = session.data.get(KEY)
        if (
            state is None
            or state.id is None
            or state.dead
            or session.username is None
            or session.state != "hibernating"
        ):
            return False
        state.held = True
        sleeping = self._sleeping.setdefault(session.username, [])
        sleeping.append(state)
        while len(sleeping) > self._opts.smacks_max_hibernated_sessions:
            self.expire(sleeping[0], "Too many hibernating sessions")
        lifetime = self._opts.smacks_hibernation_time
        state.timer = self._module.add_timer(
            lifetime, lambda: self.expire(state, "Hibernating too long")
        )
        self._module.log.debug("%s hibernates (at most %s s)", session.jid, lifetime)
        return True

    def expire(self, state: SmState, reason: str) -> None:
        """End a resumable session now; its counter is remembered."""
        self._forget(state)
        if state.session.state not in ("bound", "hibernating"):
            return  # ending already
        state.expired = True
        state.session.end(reason)  # unbinding (presence, then ended()) follows

    def _overflow(self, state: SmState) -> None:
        """More unacknowledged stanzas than ``smacks_max_queue_size`` (or bytes than
        ``smacks_max_queue_bytes``): the session ends (a connected one with Prosody's stream
        error), none of them lost."""
        session = state.session
        self._module.log.info("%s: %s", session.jid, OVERFLOW)
        if session.link is not None:
            self._forget(state)
            session.close("resource-constraint", OVERFLOW)
        else:
            self.expire(state, OVERFLOW)

    async def ended(self, session: Session) -> None:
        """The session is unbound: remember its counter if it expired, and store or bounce
        what it never acknowledged."""
        state: SmState | None = session.data.get(KEY)
        if state is None:
            return
        self._forget(state)
        state.dead = True
        if state.expired and state.id is not None and session.username is not None:
            await self._remember(session.username, state.id, state.inbound)
        state.id = None
        items = state.take()
        if items:
            await dispose(self._module, session, items)

    async def shutdown(self) -> None:
        """The server stops: every resumable session is remembered (a client that comes back
        after the restart learns what was handled), hibernating ones end now."""
        for state in list(self._resumable.values()):
            state.expired = True
            if state.session.link is None:
                self.expire(state, "Server shutting down")
            # connected ones are closed by the server next (system-shutdown), then ended()

    def _wake(self, state: SmState) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        username = state.session.username
        sleeping = self._sleeping.get(username or "")
        if sleeping is not None and state in sleeping:
            sleeping.remove(state)
            if not sleeping:
                del self._sleeping[username or ""]

    def _forget(self, state: SmState) -> None:
        self._wake(state)
        key = (state.session.username or "", state.id or "")
        if self._resumable.get(key) is state:
            del self._resumable[key]

    # -- counters of sessions that expired (Prosody's smacks_h store) ---------------------------

    async def _remember(self, username: str, previd: str, h: int) -> None:
        keep = self._opts.smacks_max_old_sessions
        if keep == 0:
            return
        now = self._module.clock.time()
        await self._old.set(username, previd, {"h": h, "t": now})
        old = await self._old.items(username)
        if len(old) > keep:
            oldest = sorted(old, key=lambda key: _time_of(old[key]))
            for key in oldest[: len(old) - keep]:
                await self._old.set(username, key, None)

    async def _recall(self, username: str, previd: str) -> int | None:
        """The counter of an expired session (once: it is forgotten as it is told)."""
        found = await self._old.get(username, previd)
        if not isinstance(found, dict) or parse_h(found.get("h")) is None:
            return None
        await self._old.set(username, previd, None)
        return int(found["h"])


def _time_of(record: object) -> float:
    when = record.get("t") if isinstance(record, dict) else None
    return float(when) if isinstance(when, int | float) else 0.0
