"""What the log tells an operator about clients (issue 10): each failed login, failed TLS
handshake and stream error once, at info, with the address, the username when known and the
reason, never a password or a SASL payload; no traceback for anything a client does; repeated
lines rate-limited; log sinks that cannot be opened refused with one line."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minixmpp.logs import Formatter, RateLimit
from minixmpp.testing import TestServer, running_server
from tests.core.test_cli import run, write_config
from tests.process import server_process
from tests.xmpp import HEADER, NS_SASL, NS_TLS, TIMEOUT, RawClient, login


class Watch(logging.Handler):
    """Every ``minixmpp`` record, and a bounded wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiters: list[tuple[Callable[[logging.LogRecord], bool], asyncio.Future[None]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for wanted, future in self._waiters:
            if wanted(record) and not future.done():
                future.set_result(None)

    async def wait(self, text: str) -> logging.LogRecord:
        """The first record whose message contains ``text``, waiting for it."""

        def wanted(record: logging.LogRecord) -> bool:
            return text in record.getMessage()

        if not any(wanted(r) for r in self.records):
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((wanted, future))
            try:
                await asyncio.wait_for(future, TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"nothing logged with {text!r}: {self.messages()}") from None
        return next(r for r in self.records if wanted(r))

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    def text(self) -> str:
        """Everything, formatted as the log sinks write it (with each connection's prefix)."""
        formatter = Formatter()
        return "\n".join(formatter.format(r) for r in self.records)


@pytest.fixture
def watch() -> Iterator[Watch]:
    logger = logging.getLogger("minixmpp")
    handler, level = Watch(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def tls_client(server: TestServer) -> RawClient:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.starttls(server.ca_file)
    return client


# -- failed logins ----------------------------------------------------------------------------


SCRAM_FAILED = "The response provided by the client doesn't match the one we calculated."
PLAIN_FAILED = "Unable to authorize you with the authentication credentials you've sent."


@pytest.mark.parametrize(
    ("mechanism", "username", "reason"),
    [
        ("SCRAM-SHA-1", "alice", f"not-authorized ({SCRAM_FAILED})"),
        ("SCRAM-SHA-256", "nobody", f"not-authorized ({SCRAM_FAILED})"),  # no such account
        ("PLAIN", "alice", f"not-authorized ({PLAIN_FAILED})"),
    ],
)
async def test_a_failed_login_is_logged_once_with_address_and_username(
    server: TestServer, watch: Watch, mechanism: str, username: str, reason: str
) -> None:
    client = await tls_client(server)
    password = "Wrong-Password-9417"
    if mechanism == "PLAIN":
        payload = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        assert (await client.next()).tag == f"{{{NS_SASL}}}failure"
    else:
        payload = "n=" + username  # inside the client-first message
        assert (await client.scram(username, password, mechanism)).tag.endswith("failure")
    record = await watch.wait("authentication failed")
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"authentication failed from 127.0.0.1 as {username}@localhost ({mechanism}): {reason}"
    )
    assert getattr(record, "session", "").startswith("c2s")  # the connection's prefix
    assert len([m for m in watch.messages(logging.INFO) if "authentication failed" in m]) == 1
    logged = watch.text()  # the wire log (debug) included
    assert password not in logged and payload not in logged


async def test_a_mechanism_we_do_not_offer_is_quoted(server: TestServer, watch: Watch) -> None:
    client = await tls_client(server)
    await client.send(f"<auth xmlns='{NS_SASL}' mechanism='X-&#10;FAKE'>AAAA</auth>")
    assert (await client.next()).tag == f"{{{NS_SASL}}}failure"
    record = await watch.wait("authentication failed")
    assert record.getMessage() == (
        "authentication failed from 127.0.0.1 ('X-\\nFAKE'): invalid-mechanism"
    )  # one line: the client's newline cannot start a forged one


# -- failed TLS handshakes --------------------------------------------------------------------


async def test_a_failed_starttls_handshake_is_logged(server: TestServer, watch: Watch) -> None:
    client = await RawClient.connect(server.c2s_port)
    await client.open()
    await client.send(f"<starttls xmlns='{NS_TLS}'/>")
    await client.expect(f"{{{NS_TLS}}}proceed")
    await client.send(b"\x16\x03\x01\xff\xffnot a ClientHello")
    await client.closed()
    record = await watch.wait("TLS handshake failed")
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "TLS handshake failed from 127.0.0.1 (STARTTLS):"
        " [SSL: PACKET_LENGTH_TOO_LONG] packet length too long"
    )


async def test_a_client_that_does_not_trust_the_certificate_is_logged(
    server: TestServer, watch: Watch
) -> None:
    # What a user whose client does not trust certs/ca.pem meets: not a password problem.
    untrusting = ssl.create_default_context()  # the system's CAs only

    def handshake() -> None:  # a blocking socket: OpenSSL sends its alert before it raises
        with socket.create_connection(("127.0.0.1", server.direct_tls_port), TIMEOUT) as sock:
            untrusting.wrap_socket(sock, server_hostname="localhost").close()

    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(handshake)
    record = await watch.wait("TLS handshake failed")
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "TLS handshake failed from 127.0.0.1 (direct TLS):"
        " [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"
    )


# -- stream errors ----------------------------------------------------------------------------


async def test_a_stream_error_is_logged_once_with_address_and_username(
    tmp_path: Path, watch: Watch
) -> None:
    async with running_server(tmp_path, options={"c2s_stanza_size_limit": 10000}) as server:
        await server.create_user("alice", "alice-secret")
        stranger = await RawClient.connect(server.c2s_port)
        await stranger.send(HEADER.format(to="localhost") + "<a><b></a>")
        assert await stranger.stream_error() == ("not-well-formed", None)
        alice, _ = await login(server.c2s_port, server.ca_file, "alice", "alice-secret")
        await alice.send(f"<message to='bob@localhost'><body>{'x' * 20_000}</body></message>")
        assert (await alice.stream_error())[0] == "policy-violation"
    said = [  # what the connections said above debug
        r.getMessage()
        for r in watch.records
        if r.name == "minixmpp.session" and r.levelno >= logging.INFO
    ]
    assert said == [
        "stream error to 127.0.0.1: not-well-formed",
        "stream error to 127.0.0.1 (alice@localhost): policy-violation (XML stanza is too big)",
    ]


# -- no tracebacks for what clients do ----------------------------------------------------------


async def test_a_client_that_leaves_during_plain_costs_no_traceback(
    tmp_path: Path, watch: Watch
) -> None:
    # PLAIN hashes the password in a thread; the client leaves meanwhile. The hash is made
    # slow enough that the client has surely left when it is done.
    options = {"default_iteration_count": 200_000}
    async with running_server(tmp_path, options=options) as server:
        await server.create_user("alice", "alice-secret")
        client = await RawClient.connect(server.c2s_port)
        await client.open()
        await client.starttls(server.ca_file)
        payload = base64.b64encode(b"\0alice\0alice-secret").decode()
        await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        client.writer.transport.abort()
        await watch.wait("client gone before authentication completed")
    assert not [r for r in watch.records if r.exc_info or r.levelno >= logging.WARNING]


# -- the rate limit ---------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


@pytest.fixture
def limited() -> Iterator[tuple[logging.Logger, Lines, RateLimit, list[float]]]:
    now = [1000.0]
    handler = Lines()
    limit = RateLimit(handler, burst=3, window=60, max_keys=4, clock=lambda: now[0])
    handler.addFilter(limit)
    logger = logging.getLogger("minixmpp.test-rate-limit")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, handler, limit, now
    finally:
        logger.removeHandler(handler)


def test_the_first_identical_lines_pass_then_a_count_of_the_rest(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, _, now = limited
    for _ in range(10):
        logger.info("authentication failed from %s", "192.0.2.1")
    logger.info("authentication failed from %s", "192.0.2.2")  # not identical: its own count
    logger.warning("authentication failed from %s", "192.0.2.1")  # another level, too
    assert handler.lines == [
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.1"),
        ("INFO", "authentication failed from 192.0.2.2"),
        ("WARNING", "authentication failed from 192.0.2.1"),
    ]
    now[0] += 59.9
    logger.info("authentication failed from %s", "192.0.2.1")  # same window: held back
    assert len(handler.lines) == 5
    now[0] += 0.1  # the window is over: the next line, whatever it is, comes after the count
    logger.info("something else")
    assert handler.lines[5:] == [
        ("INFO", "8 similar messages suppressed: authentication failed from 192.0.2.1"),
        ("INFO", "something else"),
    ]
    logger.info("authentication failed from %s", "192.0.2.1")  # a new window
    assert handler.lines[-1] == ("INFO", "authentication failed from 192.0.2.1")


def test_debug_lines_are_never_held_back(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, _, _ = limited
    handler.setLevel(logging.DEBUG)
    for _ in range(5):
        logger.debug("RECV <presence/>")
    assert handler.lines == [("DEBUG", "RECV <presence/>")] * 5


def test_the_count_is_written_when_the_sink_closes_and_when_too_many_lines_are_tracked(
    limited: tuple[logging.Logger, Lines, RateLimit, list[float]],
) -> None:
    logger, handler, limit, _ = limited
    for _ in range(5):
        logger.error("disk full")
    for n in range(4):  # max_keys=4: the oldest window ("disk full") is closed early
        logger.info("line %d", n)
    assert handler.lines[-2:] == [
        ("ERROR", "2 similar messages suppressed: disk full"),
        ("INFO", "line 3"),
    ]
    for _ in range(4):
        logger.info("line 0")
    limit.flush()  # reload or shutdown
    assert handler.lines[-1] == ("INFO", "2 similar messages suppressed: line 0")
    limit.flush()
    assert handler.lines[-1] == ("INFO", "2 similar messages suppressed: line 0")  # once


async def test_a_flood_of_failed_logins_is_rate_limited_in_the_server_log(tmp_path: Path) -> None:
    path = write_config(tmp_path, "c2s_max_auth_failures = 100")
    async with server_process(path) as server:
        client = await RawClient.connect(server.port)
        await client.open()
        await client.starttls(server.ca_file)
        for _ in range(15):
            assert (await client.scram("alice", "guess")).tag.endswith("failure")
        server.proc.terminate()
        assert await server.exit_code() == 0
    failed = "authentication failed from 127.0.0.1 as alice@localhost (SCRAM-SHA-1): not-authorized"
    lines = [line[20:].rstrip("\n") for line in server.lines if "authentication failed" in line]
    assert len(lines) == 11 and lines[:10] == [lines[0]] * 10, lines
    assert lines[0].startswith(f"INFO    minixmpp.mod.saslauth c2s1 {failed}")
    assert lines[10] == (
        f"INFO    minixmpp.mod.saslauth 5 similar messages suppressed: {failed} ({SCRAM_FAILED})"
    )


# -- sinks -------------------------------------------------------------------------------------


def test_a_log_file_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    missing = tmp_path / "no-such-folder" / "server.log"
    path.write_text(path.read_text().replace('"*console"', f'"{missing}"'))
    result = run("serve", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"minixmpp: {path}: option 'log': cannot open {missing}: No such file or directory\n"
    )


async def test_a_client_that_resets_before_tls_starts_costs_no_traceback(
    server: TestServer, watch: Watch
) -> None:
    # Connected and reset (RST) before the server took the connection from its queue: what a
    # port scanner does to the direct TLS port.
    sock = socket.create_connection(("127.0.0.1", server.direct_tls_port), TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    record = await watch.wait("TLS handshake failed")
    assert record.getMessage() == (
        "TLS handshake failed from 127.0.0.1 (direct TLS): connection closed before the handshake"
    )
    assert not [r for r in watch.records if r.exc_info or r.levelno >= logging.WARNING]
