"""Benchmark: the server's peak memory when a user logs in to a large offline backlog.

    python bench/offline_backlog.py                       # 1000 x 100 KB = 100 MB backlog
    python bench/offline_backlog.py --option offline_max_bytes=200000000

One sender stores ``--messages`` chat messages of ``--size`` bytes for one offline user; then
the user logs in (STARTTLS, SCRAM, bind, initial presence) and reads them all. The server runs as
its own process; its peak RSS during the login (VmHWM, reset through /proc/<pid>/clear_refs
after the messages were stored) and the time to deliver the backlog are reported. ``--option``
adds a top-level option to the server's configuration (a byte cap below the backlog refuses the
rest: the report says how many were stored). ``MINIXMPP_BENCH_CWD`` runs the server from another
source tree (e.g. an export of an older commit) for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    PASSWORD,
    cpu_seconds,
    free_port,
    rss_bytes,
    serve_minixmpp,
    wait_for_port,
)
from tests.xmpp import login  # noqa: E402


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := the current RSS


def start(folder: Path, port: int, options: list[str]) -> subprocess.Popen[bytes]:
    return serve_minixmpp(folder, port, ["a", "v"], ["ping"], options)


async def run(port: int, ca: Path, pid: int, messages: int, size: int) -> dict[str, float]:
    sender, _ = await login(port, ca, "a", PASSWORD)
    body = "x" * size
    refused = 0
    started = time.monotonic()
    for i in range(messages):
        await sender.send(
            f"<message to='v@localhost' type='chat' id='m{i}'><body>{body}</body></message>"
        )
    await sender.send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    while (element := await sender.next(timeout=120)).tag != "iq":
        refused += element.get("type") == "error"  # the store is full
    store_seconds = time.monotonic() - started
    await sender.close()
    reset_peak_rss(pid)
    rss_before = rss_bytes(pid)
    started, cpu = time.monotonic(), cpu_seconds(pid)
    victim, _ = await login(port, ca, "v", PASSWORD)
    await victim.send("<presence/>")
    await victim.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    # Read lean (counting end tags): the client must not be what limits the delivery rate.
    got, closed, tail = 0, False, b""
    while True:
        data = await asyncio.wait_for(victim.reader.read(1 << 20), 120)
        if not data:  # the server dropped the connection
            closed = True
            break
        window = tail + data
        got += window.count(b"</message>") - tail.count(b"</message>")
        if b"id='after'" in window or b'id="after"' in window:
            break
        tail = window[-32:]
    deliver_seconds, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    await victim.close()
    return {
        "stored_seconds": round(store_seconds, 2),
        "refused": refused,
        "delivered": got,
        "connection_dropped": closed,
        "deliver_seconds": round(deliver_seconds, 2),
        "server_cpu_seconds_during_login": round(cpu, 2),
        "rss_before_login_mb": round(rss_before / 2**20, 1),
        "peak_rss_during_login_mb": round(peak_rss(pid) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100_000, help="body bytes per message")
    parser.add_argument("--option", action="append", default=[], help="key=value (TOML value)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    port = free_port()
    proc = start(folder, port, args.option)
    try:
        wait_for_port(port, proc)
        ca = folder / "certs" / "ca.pem"
        result = asyncio.run(run(port, ca, proc.pid, args.messages, args.size))
        print(json.dumps({"messages": args.messages, "size": args.size, **result}, indent=2))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
