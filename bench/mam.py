"""Benchmark: Message Archive Management (XEP-0313) with a large archive.

    python bench/mam.py                     # 100 000 messages, then every page of 50
    python bench/mam.py --messages 2000     # a quick run
    python bench/mam.py --prosody           # Prosody 0.12's mod_mam too (archives in SQLite)

The server runs as its own process (``minixmpp serve``, with ``mam`` and its defaults: a
week's expiry, so ``<count/>`` is in every page). alice sends N chat messages to bob's
resource (pipelined in batches, each closed by a ping round trip), so both archives grow by
N; bob's client reads and discards them. Then alice pages through her whole archive, oldest
first, 50 a page (RSM ``<after/>``), waiting for each ``<fin/>``. Server CPU (user + system)
comes from /proc: per archived message (routed once, archived twice) and per page of 50.
``--prosody`` runs the same against Prosody 0.12 afterwards: mod_mam with its archives in
SQLite (``storage = { archive = "sql" }``, as minixmpp's), its defaults otherwise (a week's
expiry, ``mam_include_total``), the item limit raised above N as for minixmpp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    PASSWORD,
    cpu_seconds,
    free_port,
    rss_bytes,
    serve_minixmpp,
    start_prosody,
    wait_for_port,
)
from tests.xmpp import login

NS = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"


def start(folder: Path, port: int, messages: int, prosody: bool) -> subprocess.Popen[bytes]:
    if prosody:
        sql = f'{{ driver = "SQLite3", database = "{folder}/data/prosody.sqlite" }}'
        options = (
            f'storage = {{ archive = "sql" }}; sql = {sql};'
            f" storage_archive_item_limit = {messages + 100}"
        )
        return start_prosody(folder, ["alice", "bob"], port, modules=["mam"], options=options)
    options = [
        "c2s_idle_timeout = 0",
        f"storage_archive_item_limit = {messages + 100}",
        f"archive_max_bytes = {1 << 40}",
    ]
    return serve_minixmpp(folder, port, ["alice", "bob"], ["disco", "ping", "mam"], options)


async def discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(1 << 16):
            pass


async def run(port: int, ca: Path, pid: int, messages: int, batch: int) -> dict[str, float]:
    alice, _ = await login(port, ca, "alice", PASSWORD, "a", presence=True)
    bob, bob_jid = await login(port, ca, "bob", PASSWORD, "b", presence=True)
    drain = asyncio.create_task(discard(bob.reader))
    body = "x" * 60
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    for start in range(0, messages, batch):
        chunk = "".join(
            f"<message to='{bob_jid}' type='chat' id='m{i}'><body>{body} {i}</body></message>"
            for i in range(start, min(start + batch, messages))
        )
        await alice.send(chunk)
        await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost", id=f"p{start}")
    archive_cpu, archive_wall = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    drain.cancel()

    pages, after, seen = 0, "", 0
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    while True:
        rsm = f"<set xmlns='{RSM}'><max>50</max>" + (f"<after>{after}</after>" if after else "")
        await alice.send(
            f"<iq type='set' id='q{pages}'><query xmlns='{NS}'>{rsm}</set></query></iq>"
        )
        while True:
            el = await alice.next()
            if el.tag == "iq":
                break
            seen += 1
        pages += 1
        fin = el.find(f"{{{NS}}}fin")
        assert fin is not None, "no <fin/>"
        after = fin.findtext(f"{{{RSM}}}set/{{{RSM}}}last") or ""
        if fin.get("complete") == "true":
            break
    query_cpu, query_wall = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    assert seen == messages, f"paged through {seen} of {messages} messages"
    return {
        "messages": messages,
        "archive_s": round(archive_wall, 1),
        "cpu_us_per_message": round(archive_cpu / messages * 1e6, 1),
        "pages": pages,
        "cpu_ms_per_page": round(query_cpu / pages * 1e3, 2),
        "wall_ms_per_page": round(query_wall / pages * 1e3, 2),
        "rss_mb": round(rss_bytes(pid) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="messages between ping round trips")
    parser.add_argument("--prosody", action="store_true", help="Prosody 0.12's mod_mam as well")
    args = parser.parse_args()
    results = {"minixmpp": measure(args, prosody=False)}
    if args.prosody:
        results["prosody"] = measure(args, prosody=True)
    print(f"{'':>20}" + "".join(f"{name:>12}" for name in results))
    for key in results["minixmpp"]:
        print(f"{key:>20}" + "".join(f"{r[key]:>12}" for r in results.values()))


def measure(args: argparse.Namespace, prosody: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="minixmpp-mam-bench-") as tmp:
        folder, port = Path(tmp), free_port()
        proc = start(folder, port, args.messages, prosody)
        try:
            wait_for_port(port, proc)
            return asyncio.run(
                run(port, folder / "certs" / "ca.pem", proc.pid, args.messages, args.batch)
            )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
