"""Benchmark: what a login costs the server with SASL2 + Bind 2 and with FAST, beside SASL.

    python bench/logins.py                        # 200 clients per phase, 3 runs, medians
    python bench/logins.py --clients 50 --repeat 1   # a quick look

The server runs as its own process (``minixmpp serve``, with sasl2, sasl2_bind2 and
sasl2_fast); the clients run in this process, on one asyncio loop, ``--concurrency`` logins in
flight. Each phase logs every one of N accounts in once, over STARTTLS, and holds the
connections until all are bound (then closes them, outside the measurement), after a warm-up
of 20 logins:

* ``scram``: SASL SCRAM-SHA-1, the stream restart, RFC 6120 bind (the legacy login);
* ``sasl2``: SASL2 SCRAM-SHA-1 with Bind 2 inline (one round trip less, no restart);
* ``sasl2_token``: the same asking for a FAST token (the token is kept for the next phase);
* ``fast_first``: SASL2 HT-SHA-256-NONE with that token and Bind 2: one round trip, no PBKDF2
  on either side; the server moves the token from the client's "new" slot to its "current"
  one (a write);
* ``fast``: the same again, as every later reconnection is (the server only reads).

Figures per phase: server CPU per login (user + system of the server process, from
/proc/<pid>/stat, divided by N), logins/s (N / wall time) and the client's CPU per login (this
process). As in bench/run.py the accounts share one salt and the clients compute SCRAM's salted
password once; ``client_pbkdf2_ms`` is what one computation costs a client that does not cache
it (every SCRAM login of a real client with no stored keys; none with FAST).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    ITERATIONS,
    PASSWORD,
    cpu_seconds,
    free_port,
    serve_minixmpp,
    wait_for_port,
)

HOST = "localhost"
HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    f" xmlns:stream='http://etherx.jabber.org/streams' to='{HOST}' version='1.0'>"
)
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL2 = "urn:xmpp:sasl:2"
PHASES = ("scram", "sasl2", "sasl2_token", "fast_first", "fast")
TIMEOUT = 60.0
_salted: dict[bytes, bytes] = {}


class Conn:
    """A lean client connection: byte markers, no XML parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buf = reader, writer, b""

    def send(self, data: str) -> None:
        self.writer.write(data.encode())

    async def until(self, marker: bytes) -> bytes:
        """What arrived up to and including ``marker``."""
        while (i := self.buf.find(marker)) < 0:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise ConnectionError(f"closed by the server; had {self.buf[-300:]!r}")
            self.buf += data
        end = i + len(marker)
        chunk, self.buf = self.buf[:end], self.buf[end:]
        return chunk

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(b"</stream:stream>")
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)


async def secure(port: int, context: ssl.SSLContext) -> tuple[Conn, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Conn(reader, writer)
    conn.send(HEADER)
    await conn.until(b"</stream:features>")
    conn.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    await conn.until(b"<proceed")
    conn.buf = b""
    await writer.start_tls(context, server_hostname=HOST)
    conn.send(HEADER)
    return conn, await conn.until(b"</stream:features>")


def text_of(element: bytes, tag: bytes) -> bytes:
    found = re.search(rb"<" + tag + rb"[^>]*>([^<]*)</" + tag + rb">", element)
    if found is None:
        raise RuntimeError(f"no <{tag.decode()}> in {element[:500]!r}")
    return found.group(1)


def scram_final(first_bare: str, server_first: str) -> str:
    fields = dict(p.split("=", 1) for p in server_first.split(","))
    salt = base64.b64decode(fields["s"])
    if salt not in _salted:
        _salted[salt] = hashlib.pbkdf2_hmac("sha1", PASSWORD.encode(), salt, int(fields["i"]))
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    client_key = hmac.digest(_salted[salt], b"Client Key", "sha1")
    signature = hmac.digest(hashlib.sha1(client_key).digest(), auth_message, "sha1")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}"


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


async def legacy(conn: Conn, user: str) -> None:
    first_bare = f"n={user},r={b64(os.urandom(12))}"
    conn.send(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-1'>{b64('n,,' + first_bare)}</auth>")
    challenge = await conn.until(b"</challenge>")
    server_first = base64.b64decode(text_of(challenge, b"challenge")).decode()
    conn.send(f"<response xmlns='{SASL}'>{b64(scram_final(first_bare, server_first))}</response>")
    if b"<success" not in await conn.until(b"</success>"):
        raise RuntimeError(f"SASL failed for {user}")
    conn.send(HEADER)
    await conn.until(b"</stream:features>")
    conn.send(
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>bench</resource></bind></iq>"
    )
    await conn.until(b"</iq>")


def agent(user: str) -> str:
    ua = uuid.uuid5(uuid.NAMESPACE_URL, f"xmpp:{user}@{HOST}")  # one installation per user
    bind = "<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind>"
    return f"<user-agent id='{ua}'><software>bench</software></user-agent>{bind}"


async def sasl2(conn: Conn, user: str, token_request: bool, tokens: dict[str, str]) -> None:
    first_bare = f"n={user},r={b64(os.urandom(12))}"
    request = (
        "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>"
        if token_request
        else ""
    )
    conn.send(
        f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-1'><initial-response>"
        f"{b64('n,,' + first_bare)}</initial-response>{agent(user)}{request}</authenticate>"
    )
    challenge = await conn.until(b"</challenge>")
    server_first = base64.b64decode(text_of(challenge, b"challenge")).decode()
    conn.send(f"<response xmlns='{SASL2}'>{b64(scram_final(first_bare, server_first))}</response>")
    success = await conn.until(b"</success>")
    if b"<bound" not in success:
        raise RuntimeError(f"SASL2 failed for {user}: {success[:300]!r}")
    if token_request:
        found = re.search(rb"token=['\"]([^'\"]+)['\"]", success)
        if found is None:
            raise RuntimeError(f"no FAST token for {user}")
        tokens[user] = found.group(1).decode()
    await conn.until(b"</stream:features>")


async def fast(conn: Conn, user: str, token: str) -> None:
    proof = hmac.digest(token.encode(), b"Initiator", "sha256")
    message = b64(user.encode() + b"\0" + proof)
    conn.send(
        f"<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>"
        f"{message}</initial-response>{agent(user)}"
        "<fast xmlns='urn:xmpp:fast:0'/></authenticate>"
    )
    success = await conn.until(b"</success>")
    if b"<bound" not in success:
        raise RuntimeError(f"FAST failed for {user}: {success[:300]!r}")
    await conn.until(b"</stream:features>")


async def phase(
    name: str,
    port: int,
    pid: int,
    ca: Path,
    users: list[str],
    concurrency: int,
    tokens: dict[str, str],
) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(ca))
    steps: dict[str, Callable[[Conn, str], Awaitable[None]]] = {
        "scram": legacy,
        "sasl2": lambda c, u: sasl2(c, u, False, tokens),
        "sasl2_token": lambda c, u: sasl2(c, u, True, tokens),
        "fast_first": lambda c, u: fast(c, u, tokens[u]),
        "fast": lambda c, u: fast(c, u, tokens[u]),
    }
    step = steps[name]
    held: list[Conn] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(user: str) -> None:
        async with gate:
            conn, features = await secure(port, context)
            if b">SCRAM-SHA-1<" not in features:
                raise RuntimeError(f"no SCRAM-SHA-1 offered: {features[-300:]!r}")
            await step(conn, user)
            held.append(conn)

    server_cpu, client_cpu, started = cpu_seconds(pid), time.process_time(), time.monotonic()
    await asyncio.gather(*(one(user) for user in users))
    wall = time.monotonic() - started
    server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    await asyncio.gather(*(conn.close() for conn in held))
    await asyncio.sleep(1.0)  # the server ends the sessions before the next phase is measured
    n = len(users)
    return {
        f"{name}_server_ms": round(server_cpu / n * 1000, 3),
        f"{name}_logins_per_s": round(n / wall, 1),
        f"{name}_client_ms": round(client_cpu / n * 1000, 3),
    }


def start(folder: Path, port: int, users: list[str]) -> subprocess.Popen[bytes]:
    modules = ["disco", "ping", "sasl2", "sasl2_bind2", "sasl2_fast"]
    return serve_minixmpp(folder, port, users, modules, ["c2s_idle_timeout = 0", "c2s_timeout = 0"])


def run_once(clients: int, concurrency: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-logins-"))
    port = free_port()
    users = [f"u{i}" for i in range(clients)]
    proc = start(folder, port, users)
    try:
        wait_for_port(port, proc)
        ca = folder / "certs" / "ca.pem"
        tokens: dict[str, str] = {}
        result: dict[str, float] = {}

        async def phases() -> None:
            # warm-up, not measured: the server's first handshakes and code paths
            await phase("scram", port, proc.pid, ca, users[:20], concurrency, tokens)
            for name in PHASES:
                result.update(await phase(name, port, proc.pid, ca, users, concurrency, tokens))

        asyncio.run(phases())
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def pbkdf2_ms() -> float:
    started = time.process_time()
    for _ in range(10):
        hashlib.pbkdf2_hmac("sha1", PASSWORD.encode(), os.urandom(16), ITERATIONS)
    return round((time.process_time() - started) / 10 * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="logins per phase")
    parser.add_argument("--concurrency", type=int, default=50, help="logins in flight")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    args = parser.parse_args()
    runs = [run_once(args.clients, args.concurrency) for _ in range(args.repeat)]
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    report = {"clients": args.clients, "runs": args.repeat, **medians}
    report["client_pbkdf2_ms"] = pbkdf2_ms()
    print(json.dumps(report, indent=2))
    print()
    print("| login | server CPU per login | logins/s | client CPU per login |")
    print("|---|---|---|---|")
    for name in PHASES:
        print(
            f"| {name} | {medians[f'{name}_server_ms']:.2f} ms | "
            f"{medians[f'{name}_logins_per_s']:.0f} | {medians[f'{name}_client_ms']:.2f} ms |"
        )
    print(
        f"(a client without cached SCRAM keys adds {report['client_pbkdf2_ms']:.1f} ms of "
        f"PBKDF2 ({ITERATIONS} iterations) to each SCRAM login; FAST has none)"
    )


if __name__ == "__main__":
    main()
