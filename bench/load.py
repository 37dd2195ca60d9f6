"""Load worker: logs in XMPP clients (STARTTLS + SCRAM-SHA-1 + bind + presence, or with
``full``: + roster get + presence + a ping awaited), holds them, and runs message ping-pong
between pairs. Driven by bench/run.py over stdin/stdout, one JSON
command per line; it answers one JSON line per command.

With ``websocket`` set to a path in its setup, the clients speak XMPP over WebSocket (RFC 7395)
instead: an HTTP Upgrade on a plain TCP socket (``Sec-WebSocket-Protocol: xmpp``), then
``<open/>`` in the framing namespace, SCRAM-SHA-1, a new ``<open/>`` after the SASL success,
bind and presence; no STARTTLS (the server must count loopback WebSocket as secure). Each
stanza declares ``xmlns='jabber:client'``. Client frames are masked (RFC 6455 §5.3); the
server's text frames are decoded into the byte stream that the markers are looked for in.

The clients are deliberately lean so that the machine's CPU goes to the server under test: one
selectors loop, non-blocking sockets, TLS in ``ssl.SSLSocket``, byte markers instead of an XML
parser, and each client's side of the protocol written as a generator that yields the marker it
waits for next. All accounts share one password and salt, so the SCRAM salted password is
computed once (a SCRAM client may cache it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import selectors
import socket
import ssl
import sys
import time
from collections.abc import Callable, Generator

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    " xmlns:stream='http://etherx.jabber.org/streams' to='{host}' version='1.0'>"
)
WS_OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{host}' version='1.0'/>"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
WS_NS = " xmlns='jabber:client'"  # every top-level stanza over WebSocket (RFC 7395 §3.3)
STARTTLS = object()  # yielded by a script: upgrade the connection to TLS now
TIMEOUT = 120.0
Script = Generator[object, bytes, None]
Opening = Generator[object, bytes, bytes]  # a script's start: it returns the stream features
_salted: dict[tuple[bytes, int], bytes] = {}


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self.script: Script = iter(())  # type: ignore[assignment]
        self.buf = b""
        self.out = bytearray()
        self.waiting_for: object = None
        self.handshaking = False
        self.done = False
        self.closed = False
        self.sm_handled = 0  # stanzas received since stream management was enabled (its h)

    def send(self, data: str) -> None:
        self.out += data.encode()

    def received(self, data: bytes) -> None:
        self.buf = data if self.done else self.buf + data  # a finished client only drains

    def describe(self) -> str:
        """What the client waits for and the end of what it has (for error messages)."""
        return f"waiting for {self.waiting_for!r}, has {self.buf[-300:]!r}"

    def start(self) -> None:
        self._advance(None)

    def _advance(self, value: bytes | None) -> None:
        try:
            self.waiting_for = self.script.send(value)  # type: ignore[arg-type]
        except StopIteration:
            self.done = True
            self.waiting_for = None

    def process(self) -> None:
        """Run the script as far as the received bytes allow."""
        while not self.done and not self.handshaking:
            marker = self.waiting_for
            if marker is STARTTLS:
                return
            assert isinstance(marker, bytes)
            i = self.buf.find(marker)
            if i < 0:
                return
            end = i + len(marker)
            chunk, self.buf = self.buf[:end], self.buf[end:]
            self._advance(chunk)


class WebSocketClient(Client):
    """RFC 6455 on a plain socket. Until ``upgrade()`` the bytes go and come as they are (the
    HTTP handshake); then ``send`` writes one masked text frame per call, and the payloads of
    the server's frames are appended to ``buf``. Pings are answered; a close frame from the
    server before the script is done is an error."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.framed = False
        self.raw = b""  # an incomplete frame
        self.close_frame: bytes | None = None

    def upgrade(self) -> None:
        """The handshake is over: what follows it is frames."""
        self.framed = True
        rest, self.buf = self.buf, b""
        if rest:
            self.received(rest)

    def send(self, data: str) -> None:
        if self.framed:
            self.out += frame(data.encode())
        else:
            self.out += data.encode()

    def received(self, data: bytes) -> None:
        if not self.framed:
            self.buf += data
            return
        raw = self.raw + data if self.raw else data
        n, pos = len(raw), 0
        payloads: list[bytes] = []
        while n - pos >= 2:
            b0, b1 = raw[pos], raw[pos + 1]
            if b1 & 0x80:
                raise ConnectionError("the server sent a masked frame (RFC 6455 §5.1)")
            size, head = b1, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, head = int.from_bytes(raw[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, head = int.from_bytes(raw[pos + 2 : pos + 10], "big"), 10
            end = pos + head + size
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode <= 2:  # continuation, text (binary: taken as it is; the server errs)
                payloads.append(raw[pos + head : end])
            elif opcode == 8:  # close
                self.close_frame = raw[pos + head : end]
                if not self.done:
                    self.buf += b"".join(payloads)  # the stream error, if any
                    code = int.from_bytes(self.close_frame[:2], "big") if size >= 2 else None
                    reason = self.close_frame[2:].decode(errors="replace")
                    raise ConnectionError(
                        f"server closed the WebSocket ({code} {reason!r}), client {self.describe()}"
                    )
            elif opcode == 9:  # ping: pong with the same payload
                self.out += frame(raw[pos + head : end], 0x8A)
            pos = end
        self.raw = raw[pos:]
        if payloads:
            data = payloads[0] if len(payloads) == 1 else b"".join(payloads)
            self.buf = data if self.done else self.buf + data

    def describe(self) -> str:
        return super().describe() + (f", {len(self.raw)} bytes of a frame" if self.raw else "")


_randbytes = random.Random().randbytes  # masking keys: aiohttp's client uses random too


def frame(payload: bytes, first: int = 0x81) -> bytes:
    """A masked client frame: FIN + text (``first``), the payload XORed with a random key."""
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
    key = _randbytes(4)
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + masked


class Loop:
    def __init__(self, host: str, port: int, websocket: str | None = None) -> None:
        self.host, self.port = host, port
        self.websocket = websocket  # the path of the WebSocket endpoint, or None for TCP
        self.sel = selectors.DefaultSelector()
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def connect(self, make_script: Callable[[Client], Script]) -> Client:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.connect((self.host, self.port))
        raw.setblocking(False)
        client = WebSocketClient(raw) if self.websocket else Client(raw)
        client.script = make_script(client)
        self.sel.register(raw, selectors.EVENT_READ, client)
        client.start()
        self.pump(client)
        return client

    def pump(self, c: Client) -> None:
        """Send pending output, handle STARTTLS, process input; keep the registration right."""
        while True:
            if c.out and not c.handshaking:
                try:
                    sent = c.sock.send(c.out)
                    del c.out[:sent]
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            if c.waiting_for is STARTTLS and not c.handshaking and not c.out:
                self.sel.unregister(c.sock)
                c.sock = self.ctx.wrap_socket(
                    c.sock, server_hostname=self.host, do_handshake_on_connect=False
                )
                c.handshaking = True
                self.sel.register(c.sock, selectors.EVENT_READ, c)
            if c.handshaking:
                try:
                    c.sock.do_handshake()  # type: ignore[attr-defined]
                except ssl.SSLWantReadError:
                    self._want(c, selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    self._want(c, selectors.EVENT_WRITE)
                    return
                c.handshaking = False
                c.buf = b""
                c._advance(b"")
            before = (c.waiting_for, len(c.out))
            c.process()
            if (c.waiting_for, len(c.out)) == before or c.done:
                break
        self._want(c, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0))

    def _want(self, c: Client, events: int) -> None:
        key = self.sel.get_key(c.sock)
        if key.events != events:
            self.sel.modify(c.sock, events, c)

    def readable(self, c: Client) -> None:
        if c.handshaking:
            self.pump(c)
            return
        while True:
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not data:
                if c.done:  # its script had finished: a closed stream is expected
                    self.sel.unregister(c.sock)
                    c.sock.close()
                    c.closed = True
                    return
                raise ConnectionError(f"server closed the connection, client {c.describe()}")
            c.received(data)
            if not isinstance(c.sock, ssl.SSLSocket) or not c.sock.pending():
                break
        self.pump(c)

    def run(self, clients: list[Client], finished: object) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not finished():  # type: ignore[operator]
            if time.monotonic() > deadline:
                stuck = [c for c in clients if not c.done]
                raise TimeoutError(
                    f"load phase took over {TIMEOUT:.0f} s: {len(stuck)} of {len(clients)}"
                    f" clients unfinished; the first is {stuck[0].describe() if stuck else '-'}"
                )
            for key, mask in self.sel.select(1.0):
                client: Client = key.data
                if mask & selectors.EVENT_WRITE:
                    self.pump(client)
                if mask & selectors.EVENT_READ:
                    self.readable(client)


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    key = (salt, iterations)
    if key not in _salted:
        _salted[key] = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    return _salted[key]


def secure_stream(c: Client, host: str) -> Opening:
    """Open a stream, STARTTLS, open it again; done once the new stream's features are in."""
    header = HEADER.format(host=host)
    c.send(header)
    yield b"</stream:features>"
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    yield b"<proceed"
    c.buf = b""
    yield STARTTLS
    c.send(header)
    features = yield b"</stream:features>"
    return features


def websocket_stream(c: Client, host: str, port: int, path: str) -> Opening:
    """The HTTP Upgrade with the xmpp subprotocol, then ``<open/>``; done once the features
    are in."""
    assert isinstance(c, WebSocketClient)
    key = base64.b64encode(os.urandom(16))
    c.send(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    )
    response = yield b"\r\n\r\n"
    head = response.lower()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).lower()
    if (
        not head.startswith(b"http/1.1 101 ")
        or b"\r\nsec-websocket-accept: " + accept + b"\r\n" not in head
        or not re.search(rb"\r\nsec-websocket-protocol: *xmpp *\r\n", head)
    ):
        raise RuntimeError(f"WebSocket handshake refused: {response[:500]!r}")
    c.upgrade()
    c.send(WS_OPEN.format(host=host))
    features = yield b"</stream:features>"
    return features


def login_script(
    c: Client,
    host: str,
    user: str,
    password: str,
    result: dict[str, str],
    full: bool,
    websocket: tuple[int, str] | None = None,
    resource: str | None = "bench",
) -> Script:
    """STARTTLS (or with ``websocket``, (port, path): the WebSocket handshake), SCRAM-SHA-1,
    bind (``resource=None``: the server chooses one), presence."""
    if websocket:
        header, ns = WS_OPEN.format(host=host), WS_NS
        features = yield from websocket_stream(c, host, *websocket)
    else:
        header, ns = HEADER.format(host=host), ""
        features = yield from secure_stream(c, host)
    if b">SCRAM-SHA-1<" not in features:  # e.g. a WebSocket the server does not deem secure
        raise RuntimeError(f"no SCRAM-SHA-1 offered to {user}: {features[-500:]!r}")
    nonce = base64.b64encode(os.urandom(12)).decode()
    first_bare = f"n={user},r={nonce}"
    c.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
        + base64.b64encode(("n,," + first_bare).encode()).decode()
        + "</auth>"
    )
    challenge = yield b"</challenge>"
    found = re.search(rb">([^<]+)</challenge>", challenge)
    assert found is not None, challenge
    server_first = base64.b64decode(found.group(1)).decode()
    fields = dict(p.split("=", 1) for p in server_first.split(","))
    salted = salted_password(password, base64.b64decode(fields["s"]), int(fields["i"]))
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    client_key = hmac.digest(salted, b"Client Key", "sha1")
    signature = hmac.digest(hashlib.sha1(client_key).digest(), auth_message, "sha1")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    c.send(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        + base64.b64encode(final.encode()).decode()
        + "</response>"
    )
    reply = yield b">"
    if b"success" not in reply:
        raise RuntimeError(f"login failed for {user}: {reply + c.buf!r}")
    c.send(header)
    yield b"</stream:features>"
    inner = f"<resource>{resource}</resource>" if resource else ""
    c.send(
        f"<iq type='set' id='b'{ns}><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        f"{inner}</bind></iq>"
    )
    bound = yield b"</iq>"
    jid = re.search(rb"<jid>([^<]+)</jid>", bound)
    assert jid is not None, bound
    result["jid"] = jid.group(1).decode()
    if full:
        # As an IM client does: roster, initial presence; the ping's answer comes once the
        # server has done everything the presence caused (probes, broadcasts: one session's
        # stanzas are handled in order).
        c.send(f"<iq type='get' id='roster'{ns}><query xmlns='jabber:iq:roster'/></iq>")
        c.send(f"<presence{ns}/>")
        c.send(f"<iq type='get' id='logindone'{ns}><ping xmlns='urn:xmpp:ping'/></iq>")
        yield b"logindone"
        return
    c.send(f"<presence{ns}/>")
    yield b"<presence"
    echo = yield b">"  # the echo: <presence …/> or <presence …>…</presence>
    if not echo.endswith(b"/>"):
        yield b"</presence>"


def register_script(c: Client, host: str, user: str, password: str) -> Script:
    """XEP-0077: STARTTLS, then a legacy registration set; the stream is then closed."""
    yield from secure_stream(c, host)
    c.send(
        "<iq type='set' id='regdone'><query xmlns='jabber:iq:register'>"
        f"<username>{user}</username><password>{password}</password></query></iq>"
    )
    reply = yield b"regdone"
    reply += yield b">"
    if b"error" in reply[reply.rfind(b"<iq") :]:
        raise RuntimeError(f"registration of {user} failed: {reply + c.buf!r}")
    c.send("</stream:stream>")


SM = "urn:xmpp:sm:3"


def enable_sm_script(c: Client) -> Script:
    """XEP-0198: enable stream management (not resumable); the count starts at zero."""
    c.send(f"<enable xmlns='{SM}'/>")
    yield b"<enabled"
    yield b">"
    c.sm_handled = 0


def pingpong_script(c: Client, peer: str, rounds: int, starts: bool, sm: bool = False) -> Script:
    """``sm``: with stream management on, the client sends an <r/> after every 5th message and
    answers each of the server's <r/> (seen in what came with a message) with its <a/>; it
    acknowledges once unasked at the start, for an <r/> that came after the last message of
    an earlier run."""
    ns = WS_NS if isinstance(c, WebSocketClient) else ""
    message = f"<message to='{peer}' type='chat'{ns}><body>ping</body></message>"
    sent = 0

    def send() -> None:
        nonlocal sent
        c.send(message)
        sent += 1
        if sm and sent % 5 == 0:
            c.send(f"<r xmlns='{SM}'/>")

    def received(chunk: bytes) -> None:
        c.sm_handled += 1
        if sm and b"<r xmlns" in chunk:
            c.send(f"<a xmlns='{SM}' h='{c.sm_handled % 2**32}'/>")

    if sm:
        c.send(f"<a xmlns='{SM}' h='{c.sm_handled % 2**32}'/>")
    for _ in range(rounds):
        if starts:
            send()
            received((yield b"</message>"))
        else:
            received((yield b"</message>"))
            send()


class Worker:
    def __init__(
        self,
        host: str,
        port: int,
        users: list[str],
        password: str,
        concurrency: int,
        websocket: str | None = None,
    ):
        self.loop = Loop(host, port, websocket)
        self.host, self.users, self.password, self.concurrency = host, users, password, concurrency
        self.websocket = (port, websocket) if websocket else None
        self.clients: list[Client] = []
        self.jids: list[str] = []

    def register_all(self) -> dict[str, float]:
        """Register every user (new accounts), ``concurrency`` at a time."""
        if self.websocket:
            raise ValueError("registration is benchmarked over TCP only")
        start = time.perf_counter()
        pending = list(reversed(self.users))
        in_flight: list[Client] = []
        clients: list[Client] = []

        def finished() -> bool:
            in_flight[:] = [c for c in in_flight if not c.done]
            while pending and len(in_flight) < self.concurrency:
                user = pending.pop()
                client = self.loop.connect(
                    lambda c, u=user: register_script(c, self.host, u, self.password)
                )
                in_flight.append(client)
                clients.append(client)
            return not pending and not in_flight

        self.loop.run(clients, finished)
        for c in clients:
            if not c.closed:
                self.loop.sel.unregister(c.sock)
                c.sock.close()
        return {"seconds": time.perf_counter() - start, "registrations": len(self.users)}

    def login_all(self, full: bool = False) -> dict[str, float]:
        start, cpu = time.perf_counter(), time.process_time()
        pending = list(reversed(self.users))
        results: list[dict[str, str]] = []
        in_flight: list[Client] = []

        def refill() -> None:
            in_flight[:] = [c for c in in_flight if not c.done]
            while pending and len(in_flight) < self.concurrency:
                user, result = pending.pop(), {}
                results.append(result)
                client = self.loop.connect(
                    lambda c, u=user, r=result: login_script(
                        c, self.host, u, self.password, r, full, self.websocket
                    )
                )
                in_flight.append(client)
                self.clients.append(client)

        def finished() -> bool:
            refill()
            return not pending and not in_flight

        self.loop.run(self.clients, finished)
        self.jids = [r["jid"] for r in results]
        return {
            "seconds": time.perf_counter() - start,
            "cpu": time.process_time() - cpu,  # this worker's own
            "logins": len(self.users),
        }

    def enable_sm(self) -> dict[str, float]:
        """Every logged-in client enables stream management (XEP-0198)."""
        start = time.perf_counter()
        for c in self.clients:
            c.script = enable_sm_script(c)
            c.done = False
            c.start()
            self.loop.pump(c)
        self.loop.run(self.clients, lambda: all(c.done for c in self.clients))
        return {"seconds": time.perf_counter() - start}

    def pingpong(self, rounds: int, sm: bool = False) -> dict[str, float]:
        pairs = 0
        for i in range(0, len(self.clients) - 1, 2):
            a, b = self.clients[i], self.clients[i + 1]
            b.script = pingpong_script(b, self.jids[i], rounds, starts=False, sm=sm)
            a.script = pingpong_script(a, self.jids[i + 1], rounds, starts=True, sm=sm)
            for c in (b, a):
                c.done = False
                c.buf = b""
                c.start()
                self.loop.pump(c)
            pairs += 1
        start, cpu = time.perf_counter(), time.process_time()
        self.loop.run(self.clients, lambda: all(c.done for c in self.clients[: 2 * pairs]))
        return {
            "seconds": time.perf_counter() - start,
            "cpu": time.process_time() - cpu,
            "messages": 2 * rounds * pairs,
        }

    def close_all(self) -> dict[str, float]:
        for c in self.clients:
            with contextlib.suppress(OSError):
                c.sock.close()
        self.clients.clear()
        return {}


def main() -> None:
    worker: Worker | None = None
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "setup":
                worker = Worker(
                    cmd["host"],
                    cmd["port"],
                    cmd["users"],
                    cmd["password"],
                    cmd["concurrency"],
                    cmd.get("websocket"),
                )
                result: dict[str, float] = {}
            elif cmd["op"] == "login":
                assert worker is not None
                result = worker.login_all(cmd.get("full", False))
            elif cmd["op"] == "register":
                assert worker is not None
                result = worker.register_all()
            elif cmd["op"] == "pingpong":
                assert worker is not None
                result = worker.pingpong(cmd["rounds"], cmd.get("sm", False))
            elif cmd["op"] == "enable_sm":
                assert worker is not None
                result = worker.enable_sm()
            elif cmd["op"] == "close":
                assert worker is not None
                result = worker.close_all()
            else:
                raise ValueError(cmd["op"])
            reply = {"ok": True, **result}
        except Exception as exc:  # reported to the orchestrator, which stops the run
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if cmd["op"] == "close":
            break


if __name__ == "__main__":
    main()
