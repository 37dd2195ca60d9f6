"""Stanza routing: stanza -> event names -> host bus; defaults for what nobody handles.

Theory of operation
-------------------
``process(origin, stanza)`` is the only place where exceptions become wire replies:
``StanzaError`` -> an error reply (never to an error or an IQ result; then the stream is closed
if the error says so), ``StreamError`` -> the stream is closed with it, anything else -> logged
with its traceback and answered with ``wait/internal-server-error``, its text never sent.

Before a client has bound a resource, stanzas fire ``stanza/iq/<ns>:<name>`` (IQ get/set),
``stanza/<name>`` (message, presence, other IQs) or ``stanza/<ns>:<name>`` (stream-level
elements such as SASL's) on the session's host. Once bound, the router does what Prosody's
core_process_stanza and core_post_stanza do: check IQ shape, stamp ``from`` with the full JID,
prepare ``to``, fire ``pre-<kind>/<to>`` on the sender's host, then ``<kind>/<to>`` on the
addressee's host (``to`` is full, bare or host; a stanza with no ``to`` is for the sender's own
account, "bare"). IQs have a built-in dispatcher (Prosody's mod_iq): ``iq/<to>`` first, then
delivery to a full JID, or ``iq-<type>/<to>/<ns>:<name>`` for a payload addressed to an account
or the host (``iq-<type>/self/…`` as well for the sender's own account).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lxml import etree

from minixmpp.errors import StanzaError, StreamError
from minixmpp.events import StanzaEvent, run_handlers
from minixmpp.jid import JID, InvalidJID
from minixmpp.xml import stanza as st

if TYPE_CHECKING:
    from minixmpp.host import Host
    from minixmpp.session import Session

log = logging.getLogger("minixmpp.router")

STANZA_KINDS = ("message", "presence", "iq")
IQ_TYPES = frozenset({"get", "set", "result", "error"})
PRESENCE_TYPES = frozenset(
    {
        None,
        "unavailable",
        "subscribe",
        "subscribed",
        "unsubscribe",
        "unsubscribed",
        "probe",
        "error",
    }
)
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_KINDS = ("full", "bare", "host")
PRE_EVENT = {(k, t): f"pre-{k}/{t}" for k in STANZA_KINDS for t in _KINDS}
POST_EVENT = {(k, t): f"{k}/{t}" for k in STANZA_KINDS for t in _KINDS}


def payload_name(stanza: etree._Element) -> str:
    """``<ns>:<localname>`` of the first child (the IQ payload), Prosody's event suffix."""
    child = stanza[0]
    tag = child.tag
    if isinstance(tag, str) and tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return f"{ns}:{local}"
    return f"jabber:client:{tag}"


class Router:
    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}

    async def process(self, origin: Session, stanza: etree._Element) -> None:
        """Handle one stanza or stream element from ``origin``. Never raises."""
        try:
            if origin.bound:
                await self._bound(origin, stanza)
            else:
                await self._unbound(origin, stanza)
        except StanzaError as error:
            self._reply_error(origin, stanza, error)
            if error.then is not None and origin.c2s:
                origin.close(error.then.condition, error.then.text, error.then.app)
        except StreamError as error:
            if origin.c2s:
                origin.close(error.condition, error.text, error.app)
            else:
                log.warning("stream error from the host origin: %s", error)
        except Exception:
            log.exception("error while handling a stanza from %s", origin.jid)
            self._reply_error(origin, stanza, StanzaError("internal-server-error"))

    @staticmethod
    def _reply_error(origin: Session, stanza: etree._Element, error: StanzaError) -> None:
        if stanza.tag not in STANZA_KINDS or st.is_error_or_result(stanza):
            if stanza.tag not in STANZA_KINDS:
                log.warning("stanza error %s raised for a stream element", error.condition)
            return
        origin.send(st.error_reply(stanza, error))

    # -- before resource binding --------------------------------------------------------

    async def _unbound(self, session: Session, stanza: etree._Element) -> None:
        host = self.hosts[session.host]
        tag = stanza.tag
        event = StanzaEvent(session, stanza)
        if tag in STANZA_KINDS:
            typ = stanza.get("type")
            _check_unbound_addresses(session.host, stanza)
            if tag == "iq":
                _check_iq(stanza)
                name = f"stanza/iq/{payload_name(stanza)}" if typ in ("get", "set") else "stanza/iq"
            else:
                name = f"stanza/{tag}"
            if await host.events.fire(name, event):
                return
            if st.is_error_or_result(stanza):
                return
            raise StanzaError("service-unavailable")
        qname = etree.QName(stanza)
        if qname.namespace is None:
            raise StreamError("unsupported-stanza-type")
        if not await host.events.fire(f"stanza/{qname.namespace}:{qname.localname}", event):
            raise StreamError("unsupported-stanza-type")

    # -- bound sessions -----------------------------------------------------------------

    async def _bound(self, origin: Session, stanza: etree._Element) -> None:
        tag = stanza.tag
        if tag not in STANZA_KINDS:
            await self._unbound(origin, stanza)  # stream elements (e.g. XEP-0198) after bind
            return
        attrib = stanza.attrib
        typ = attrib.get("type")
        if tag == "iq":
            _check_iq(stanza)
        elif typ == "error" and len(stanza) == 0:
            return  # an error without <error/>: discard (Prosody)
        c2s = origin.c2s
        if c2s:
            attrib["from"] = origin.jid.full
            if XML_LANG not in attrib:
                attrib[XML_LANG] = origin.lang  # the stream's default language (RFC 6120 §4.7.4)
        if tag == "presence" and typ not in PRESENCE_TYPES:
            raise StanzaError("bad-request", "Invalid presence type")
        to_text = attrib.get("to")
        to: JID | None
        if to_text is None:
            to = None
            kind = "bare"
        else:
            try:
                to = parse_address(to_text, "destination")
            except StanzaError:
                if typ in ("error", "result"):
                    return
                raise
            if to.full != to_text:
                attrib["to"] = to.full
            # a domain with a resource is the host too (Prosody: no node means "/host")
            kind = "host" if to.node is None else ("full" if to.resource else "bare")
            if c2s and kind == "bare" and to.bare == origin.jid.bare:
                # To the sender's own account: handled as if there were no 'to' (Prosody).
                del attrib["to"]
                to = None
        event = StanzaEvent(origin, stanza, to)
        if c2s:
            pre = self.hosts[origin.host].events.handlers(PRE_EVENT[tag, kind])
            if pre and await run_handlers(pre, event):
                return
        host = self.hosts.get(origin.host if to is None else to.domain)
        if host is None:
            if typ == "error" or (tag == "iq" and typ == "result"):
                return
            raise StanzaError("not-allowed", "Communication with remote domains is not enabled")
        if tag == "iq":
            await self._iq(host, event, kind)
            return
        post = host.events.handlers(POST_EVENT[tag, kind])
        if post and await run_handlers(post, event):
            return
        if typ != "error":
            raise StanzaError("service-unavailable")

    async def _iq(self, host: Host, event: StanzaEvent, kind: str) -> None:
        stanza = event.stanza
        if await host.events.fire(POST_EVENT["iq", kind], event):
            return
        typ = stanza.get("type")
        if kind == "full":
            assert event.to is not None
            target = host.sessions.get(event.to.full)
            if target is not None and target.send(stanza):
                return
            if typ in ("get", "set"):
                raise StanzaError("service-unavailable")
            return
        if typ in ("get", "set"):
            name = payload_name(stanza)
            if await host.events.fire(f"iq-{typ}/{kind}/{name}", event):
                return
            if (
                kind == "bare"
                and event.to is None
                and await host.events.fire(f"iq-{typ}/self/{name}", event)
            ):
                return
            raise StanzaError("service-unavailable")
        await host.events.fire(f"iq-{typ}/{kind}/{stanza.get('id')}", event)


def _check_iq(stanza: etree._Element) -> None:
    typ = stanza.get("type")
    if typ not in IQ_TYPES:
        raise StanzaError("bad-request", "Invalid IQ type")
    if stanza.get("id") is None:
        raise StanzaError("bad-request", "Missing required 'id' attribute")
    if typ in ("get", "set") and len(stanza) != 1:
        raise StanzaError("bad-request", "Incorrect number of children for IQ stanza")


def _check_unbound_addresses(host: str, stanza: etree._Element) -> None:
    """Before a resource is bound only the server itself answers: a 'to' must be its host
    (prepared in place: ``LOCALHOST`` answers as ``localhost``); a 'from' is ignored, but must
    be a JID (Prosody's checks and texts)."""
    to_text = stanza.get("to")
    if to_text is not None:
        to = parse_address(to_text, "destination")
        if to.full != host:
            raise StanzaError("service-unavailable")
        stanza.set("to", to.full)
    from_text = stanza.get("from")
    if from_text is not None:
        parse_address(from_text, "source")


def parse_address(text: str, role: str) -> JID:
    """A stanza's 'to' (``role`` "destination") or 'from' ("source"), prepared; Prosody's
    jid-malformed error if it is not a JID."""
    try:
        return JID.parse(text)
    except InvalidJID:
        raise StanzaError("jid-malformed", f"The {role} address is invalid: {text}") from None
