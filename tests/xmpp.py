"""Test clients: a raw-socket XMPP client for exact-wire checks, and slixmpp helpers.

Every wait is bounded (``TIMEOUT``). The raw client reads the server's output with minixmpp's
own sans-I/O stream parser, so assertions see whole elements; ``raw`` keeps every received byte.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import itertools
import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from scramp import ScramClient

from minixmpp.testing import XmppServer
from minixmpp.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParser

TIMEOUT = 10.0
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"

HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='{to}' version='1.0'>"
)


class Closed(Exception):
    """The server closed the stream or the connection."""


OPEN_CLIENTS: list[RawClient] = []  # closed after each test by the conftest fixture


_markers = itertools.count(1)


def require_loopback_aliases() -> None:
    """Tests of per-address rules connect from 127.0.0.2 too: Linux routes all of 127/8 to
    the loopback interface. Elsewhere this fails saying so (it is not skipped)."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
    except OSError as exc:
        pytest.fail(f"this test needs 127.0.0.2 on the loopback interface ({exc})", pytrace=False)


class RawClient:
    """A hand-driven XMPP client over a real socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        OPEN_CLIENTS.append(self)
        self.reader = reader
        self.writer = writer
        self.parser = StreamParser(16 * 1024 * 1024)
        self.events: list[Any] = []
        self.raw = b""
        self.header: StreamOpened | None = None
        self.stream_closed = False
        self.eof = False

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        server_hostname: str = "localhost",
        source: str | None = None,
    ) -> RawClient:
        """``source``: the local address to connect from (e.g. ``127.0.0.2``)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=tls,
                server_hostname=server_hostname if tls else None,
                local_addr=(source, 0) if source else None,
            ),
            TIMEOUT,
        )
        return cls(reader, writer)

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def _fill(self, timeout: float) -> None:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            self.eof = True
            raise Closed("connection closed by the server")
        self.raw += data
        for event in self.parser.feed(data):
            if isinstance(event, StreamOpened):
                self.header = event
            elif isinstance(event, StreamClosed):
                self.stream_closed = True
            self.events.append(event)

    async def next(self, timeout: float = TIMEOUT) -> etree._Element:
        """The next top-level element; Closed if the stream ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, StanzaReceived):
                    return event.element
                if isinstance(event, StreamClosed):
                    raise Closed("stream closed by the server")
            if self.eof:
                raise Closed("connection closed by the server")
            await self._fill(max(0.01, deadline - loop.time()))

    async def expect(self, tag: str, timeout: float = TIMEOUT) -> etree._Element:
        """Skip elements until one with ``tag`` arrives (AssertionError on closing)."""
        skipped = []
        while True:
            try:
                el = await self.next(timeout)
            except (TimeoutError, Closed) as exc:
                raise AssertionError(
                    f"no <{tag}> (got {[e.tag for e in skipped]}): {exc!r}"
                ) from exc
            if el.tag == tag:
                return el
            skipped.append(el)

    async def expect_where(
        self, tag: str, timeout: float = TIMEOUT, **attributes: str | None
    ) -> etree._Element:
        """Skip elements until a ``tag`` whose attributes have the given values (None: absent).
        Use ``from_`` for ``from``."""
        wanted = {key.rstrip("_"): value for key, value in attributes.items()}
        while True:
            el = await self.expect(tag, timeout)
            if all(el.get(key) == value for key, value in wanted.items()):
                return el

    async def settled(self) -> list[etree._Element]:
        """Everything the server has sent this client by now, without waiting a fixed time:
        every test server of this loop is idle first (all clients' input handled), then an IQ
        round trip (its answer comes after everything sent before it) marks the end."""
        for server in XmppServer.running():
            await server.idle()
        got: list[etree._Element] = []
        if self.eof or self.stream_closed:
            with contextlib.suppress(Closed, TimeoutError, AssertionError):
                while True:  # until the end of the connection
                    got.append(await self.next())
            return got
        marker = f"settled-{next(_markers)}"
        await self.send(f"<iq type='get' id='{marker}'><ping xmlns='urn:xmpp:ping'/></iq>")
        while True:
            el = await self.next()
            if el.tag == "iq" and el.get("id") == marker:
                return got
            got.append(el)

    async def drain(self) -> list[etree._Element]:
        """Everything the server has sent this client by now (see ``settled``)."""
        return await self.settled()

    async def nothing(self) -> None:
        """Assert that the server has sent this client nothing more (see ``settled``)."""
        got = await self.settled()
        if got:
            raise AssertionError(f"unexpected elements {[etree.tostring(e) for e in got]!r}")

    async def stream_error(self, timeout: float = TIMEOUT) -> tuple[str, str | None]:
        """Read until a stream error; return (condition, text). Also checks the close."""
        el = await self.expect(f"{{{NS_STREAM}}}error", timeout)
        condition = next(etree.QName(c).localname for c in el if etree.QName(c).localname != "text")
        text = el.findtext(f"{{{NS_STREAMS}}}text")
        await self.closed(timeout)
        return condition, text

    async def closed(self, timeout: float = TIMEOUT) -> None:
        """Wait until the server has closed the stream and the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof:
            try:
                await self._fill(max(0.01, deadline - loop.time()))
            except Closed:
                break
            except (ConnectionError, ssl.SSLError):
                self.eof = True
        assert self.eof

    async def open(self, to: str = "localhost", header: str | None = None) -> etree._Element:
        """Send a stream header; return the server's <stream:features/>."""
        self.parser.reset()
        self.events.clear()
        await self.send(header if header is not None else HEADER.format(to=to))
        return await self.expect(f"{{{NS_STREAM}}}features")

    async def starttls(
        self, ca_file: Path, *, maximum: ssl.TLSVersion | None = None, host: str = "localhost"
    ) -> etree._Element:
        await self.send(f"<starttls xmlns='{NS_TLS}'/>")
        await self.expect(f"{{{NS_TLS}}}proceed")
        ctx = client_context(ca_file, maximum=maximum)
        await asyncio.wait_for(self.writer.start_tls(ctx, server_hostname=host), TIMEOUT)
        return await self.open(host)

    @property
    def ssl_object(self) -> ssl.SSLObject:
        obj = self.writer.get_extra_info("ssl_object")
        assert obj is not None
        return obj  # type: ignore[no-any-return]

    async def scram(
        self,
        username: str,
        password: str,
        mechanism: str = "SCRAM-SHA-1",
        channel_binding: tuple[str, bytes] | None = None,
    ) -> etree._Element:
        """Run a SCRAM exchange; return the final <success/> or <failure/>."""
        client = ScramClient([mechanism], username, password, channel_binding=channel_binding)
        first = base64.b64encode(client.get_client_first().encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
        reply = await self.next()
        if reply.tag != f"{{{NS_SASL}}}challenge":
            return reply
        client.set_server_first(base64.b64decode(reply.text or "").decode())
        final = base64.b64encode(client.get_client_final().encode()).decode()
        await self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        reply = await self.next()
        if reply.tag == f"{{{NS_SASL}}}success":
            client.set_server_final(base64.b64decode(reply.text or "").decode())
        return reply

    async def plain(self, username: str, password: str, authzid: str = "") -> etree._Element:
        payload = base64.b64encode(f"{authzid}\0{username}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        return await self.next()

    async def bind(self, resource: str | None = None) -> str:
        inner = f"<resource>{resource}</resource>" if resource else ""
        await self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        reply = await self.expect("iq")
        assert reply.get("type") == "result", etree.tostring(reply)
        return reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""

    async def iq(
        self, body: str, *, type: str = "get", id: str = "q1", to: str | None = None
    ) -> etree._Element:
        to_attr = f" to='{to}'" if to else ""
        await self.send(f"<iq type='{type}' id='{id}'{to_attr}>{body}</iq>")
        while True:
            reply = await self.expect("iq")
            if reply.get("id") == id:
                return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def until_pong(client: RawClient, id: str = "rt") -> list[etree._Element]:
    """What arrives before the answer to a ping: everything the server did before it."""
    await client.send(f"<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = []
    while True:
        el = await client.next()
        if el.tag == "iq" and el.get("id") == id:
            return got
        got.append(el)


async def wait_until(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Check ``predicate`` every 10 ms until it holds (AssertionError naming ``what`` after
    ``timeout`` seconds): for server state a test can read but not await, e.g. a session that
    hibernates once the server has noticed its connection is gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def client_context(ca_file: Path, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


async def login(
    port: int,
    ca_file: Path,
    username: str,
    password: str,
    resource: str | None = None,
    *,
    presence: bool = False,
) -> tuple[RawClient, str]:
    """STARTTLS + SCRAM-SHA-1 + bind (+ initial presence); returns (client, full JID)."""
    client = await RawClient.connect(port)
    await client.open()
    await client.starttls(ca_file)
    result = await client.scram(username, password)
    assert result.tag == f"{{{NS_SASL}}}success", etree.tostring(result)
    await client.open()
    jid = await client.bind(resource)
    if presence:
        await client.send("<presence/>")
        await client.expect("presence")
    return client, jid


def stanza_error(el: etree._Element) -> tuple[str | None, str | None, str | None]:
    """(type, condition, text) of a stanza's <error/>."""
    error = el.find("error")
    assert error is not None, etree.tostring(el)
    condition = next(
        (etree.QName(c).localname for c in error if etree.QName(c).localname != "text"), None
    )
    return error.get("type"), condition, error.findtext(f"{{{NS_STANZAS}}}text")


def same_xml(
    actual: etree._Element | str, expected: etree._Element | str, ignore: Iterable[str] = ("id",)
) -> None:
    """Assert two elements match: tags, attributes (minus ``ignore``), text and children in order.

    Expected text may come from a Prosody transcript (single quotes, no namespace on stanzas).
    """
    a = _as_element(actual)
    e = _as_element(expected)
    _compare(a, e, frozenset(ignore), "")


def _as_element(value: etree._Element | str) -> etree._Element:
    if isinstance(value, str):
        wrapped = "<w xmlns:stream='http://etherx.jabber.org/streams'>" + value + "</w>"
        return etree.fromstring(wrapped)[0]
    return value


def _compare(a: etree._Element, e: etree._Element, ignore: frozenset[str], path: str) -> None:
    here = f"{path}/{etree.QName(e).localname}"
    assert a.tag == e.tag, f"{here}: tag {a.tag!r} != {e.tag!r}"
    attrs_a = {k: v for k, v in a.attrib.items() if k not in ignore}
    attrs_e = {k: v for k, v in e.attrib.items() if k not in ignore}
    assert attrs_a == attrs_e, f"{here}: attributes {attrs_a} != {attrs_e}"
    assert (a.text or "").strip() == (e.text or "").strip(), (
        f"{here}: text {a.text!r} != {e.text!r}"
    )
    assert len(a) == len(e), f"{here}: children {[c.tag for c in a]} != {[c.tag for c in e]}"
    for ca, ce in zip(a, e, strict=True):
        _compare(ca, ce, ignore, here)


# -- slixmpp ----------------------------------------------------------------------------------


SLIX_CLIENTS: list[SlixClient] = []  # disconnected after each test (conftest)


def register_preauth_stanza() -> None:
    """Teach slixmpp ``<preauth xmlns='urn:xmpp:pars:0' token='…'/>`` (XEP-0379), on IQs
    (XEP-0401 preauth) and on presence (subscription with a token)."""
    from slixmpp import Iq, Presence
    from slixmpp.xmlstream import ElementBase, register_stanza_plugin

    class Preauth(ElementBase):  # type: ignore[misc]
        name = "preauth"
        namespace = "urn:xmpp:pars:0"
        plugin_attrib = "preauth"
        interfaces = {"token"}

    register_stanza_plugin(Iq, Preauth)
    register_stanza_plugin(Presence, Preauth)


class SlixClient:
    """A slixmpp ClientXMPP connected to a test server, with bounded waits."""

    def __init__(self, client: Any, watch: Iterable[str] = ()) -> None:
        self.client = client
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        client.add_event_handler("message", self.messages.put_nowait)
        self._events: dict[str, asyncio.Queue[Any]] = {}
        self._disconnected = asyncio.Event()
        self.features_seen: list[list[str]] = []  # the tags of each <stream:features/>
        client.add_event_handler("disconnected", lambda _e: self._disconnected.set())
        for name in watch:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self._events[name] = queue
            client.add_event_handler(name, queue.put_nowait)

    @property
    def jid(self) -> str:
        return str(self.client.boundjid.full)

    @property
    def roster(self) -> Any:
        """The client's own view of its roster (kept up to date by roster pushes)."""
        return self.client.client_roster

    async def next_message(self, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_event(self, name: str, timeout: float = TIMEOUT) -> Any:
        """The next occurrence of a slixmpp event named in ``slix_login(watch=...)``."""
        return await asyncio.wait_for(self._events[name].get(), timeout)

    async def event_from(self, name: str, sender: str, timeout: float = TIMEOUT) -> Any:
        """The next ``name`` event whose stanza comes from ``sender`` (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next_event(name, max(0.01, deadline - loop.time()))
            if event["from"] == sender:
                return event

    def pending_events(self, name: str) -> list[Any]:
        queue, found = self._events[name], []
        while not queue.empty():
            found.append(queue.get_nowait())
        return found

    async def disconnected(self, timeout: float = TIMEOUT) -> None:
        """Wait until the server has ended this client's stream."""
        await asyncio.wait_for(self._disconnected.wait(), timeout)

    async def settle(self) -> None:
        """A ping round trip: the server has handled, and this client has received and
        processed, everything sent to it before."""
        assert await self.client.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT) is not None

    async def disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(wait=1.0), 5)
        self.client.abort()


async def slix_login(
    port: int,
    ca_file: Path,
    jid: str,
    password: str,
    *,
    direct_tls: bool = False,
    mechanism: str | None = None,
    tls_maximum: ssl.TLSVersion | None = None,
    plugins: Iterable[str] = ("xep_0030", "xep_0199"),
    presence: bool = True,
    roster: bool = False,
    roster_db: Any = None,
    watch: Iterable[str] = (),
    register: bool = False,
    preauth: str | None = None,
) -> SlixClient:
    """Log a slixmpp client in; raises AssertionError if it fails to start a session.

    ``roster``: fetch the roster before the initial presence, as an IM client does (with the
    cached version of ``roster_db``, a slixmpp roster store, if given); subscription requests
    are then left for the test to answer. ``watch``: slixmpp events to queue (``next_event``).
    ``register``: create the account in-band (XEP-0077) first.
    """
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, password, sasl_mech=mechanism)
    for plugin in plugins:
        client.register_plugin(plugin)
    if register:  # XEP-0077 before logging in, as slixmpp's register_account example does
        for plugin in ("xep_0004", "xep_0066", "xep_0077"):
            client.register_plugin(plugin)

        async def create_account(_form: Any) -> None:
            if preauth is not None:  # XEP-0401 / XEP-0445: the invite first
                token = client.Iq()
                token["type"], token["to"] = "set", client.boundjid.domain
                token["preauth"]["token"] = preauth
                # slixmpp holds back IQs before the session unless they carry bind, session
                # or register; a preauth IQ must go now (as in Conversations), so let it pass.
                client._always_send_everything = True
                try:
                    answer = token.send(timeout=TIMEOUT)
                finally:
                    client._always_send_everything = False
                try:
                    await answer
                except Exception as exc:
                    settle(f"preauth failed: {exc!r}")
                    return
            iq = client.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = client.boundjid.user
            iq["register"]["password"] = password
            try:
                await iq.send(timeout=TIMEOUT)
            except Exception as exc:  # IqError/IqTimeout: the login then fails and says so
                settle(f"registration failed: {exc!r}")

        client.add_event_handler("register", create_account)
    if roster:
        client.auto_authorize = None  # neither accept nor refuse requests by itself
        client.auto_subscribe = False
        if roster_db is not None:
            client.roster.set_backend(roster_db)
    client.enable_plaintext = False
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.ca_certs = ca_file
    if tls_maximum is not None:
        client.ssl_context.maximum_version = tls_maximum
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def settle(result: str) -> None:
        if not outcome.done():
            outcome.set_result(result)

    async def started(_event: Any) -> None:
        if roster:
            await client.get_roster(timeout=TIMEOUT)
        if presence:
            client.send_presence()
        settle("session_start")

    client.add_event_handler("session_start", started)
    client.add_event_handler("failed_all_auth", lambda _e: settle("failed_all_auth"))
    client.add_event_handler("connection_failed", lambda _e: settle("connection_failed"))
    wrapper = SlixClient(client, watch)

    def record_features(stanza: Any) -> Any:
        if stanza.name == "features":
            wrapper.features_seen.append([child.tag for child in stanza.xml])
        return stanza

    client.add_filter("in", record_features)
    client.connect("127.0.0.1", port)
    try:
        result = await asyncio.wait_for(outcome, TIMEOUT)
    except TimeoutError:
        result = "timeout"
    if result != "session_start":
        await wrapper.disconnect()
        raise AssertionError(f"slixmpp login of {jid} failed: {result}")
    SLIX_CLIENTS.append(wrapper)
    return wrapper


async def receives(client: RawClient, *expected: str) -> None:
    """The client receives exactly these stanzas, in this order, and then nothing."""
    for want in expected:
        got = await client.next()
        if got.tag == "iq" and got.get("type") == "set" and " id=" not in want.split(">")[0]:
            assert got.get("id"), "a roster push needs an id"
            del got.attrib["id"]
        delay = got.find("{urn:xmpp:delay}delay")
        if delay is not None:  # presence held by the server says since when (XEP-0203)
            stamp = datetime.datetime.strptime(delay.get("stamp", ""), "%Y-%m-%dT%H:%M:%SZ")
            age = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - stamp
            assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=1)
        same_xml(got, want, ignore=("stamp",))
    await client.nothing()
