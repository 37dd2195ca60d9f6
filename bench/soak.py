"""Soak: clients log out and in again continuously while the server's RSS is sampled.

    python bench/soak.py                          # 500 clients, 10 minutes
    python bench/soak.py --minutes 2              # the short form
    python bench/soak.py --minutes 3 --trace DIR  # what grows: objects, gc, RSS in the server

The server runs as its own process (``minixmpp serve``, as bench/run.py starts it); lean load
workers (bench/load.py's clients) run in other processes. Each client logs in as an IM client
does (STARTTLS, SCRAM-SHA-1, bind, roster get, initial presence, a ping awaited), stays online
for a random time around ``--hold`` seconds, sends ``</stream:stream>``, waits for the server's,
and logs in again on a new connection. By default every login binds a resource never used
before (``--resources new``), as clients that let the server pick one do.

Reported: the RSS slope after the first minute (least squares over the samples, KB/min), the
login/logout cycles in that window, and their quotient, KB per cycle; server CPU per cycle.

With ``--trace DIR`` the server, on SIGUSR1, writes into DIR the live objects counted by type
before and after a full collection, its RSS before and after it, glibc's heap in use and free,
the collector's statistics and the TLS session caches (and with ``--tracemalloc FRAMES`` a
tracemalloc snapshot: much slower, use fewer clients); the soak asks for one after the first
minute and one near the end and prints what grew between them. ``--collect-every S`` has the
server run a full collection every S seconds, to tell memory that waits for the cyclic GC from
memory that is never freed.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.run import (  # noqa: E402
    PASSWORD,
    cpu_seconds,
    free_port,
    rss_bytes,
    start_minixmpp,
    wait_for_port,
)

WARM_UP = 60.0  # seconds left out of the slope: start-up, first logins, caches filling


# -- the load worker (a process of its own) ---------------------------------------------------


class Churn:
    """One worker's clients: log in, hold, log out, log in again, until the deadline."""

    def __init__(self, cfg: dict[str, object]) -> None:
        self.host = str(cfg["host"])
        self.loop = load.Loop(self.host, int(cfg["port"]))  # type: ignore[call-overload]
        self.users: list[str] = list(cfg["users"])  # type: ignore[call-overload]
        self.hold = float(cfg["hold"])  # type: ignore[arg-type]
        self.concurrency = int(cfg["concurrency"])  # type: ignore[call-overload]
        self.new_resources = cfg["resources"] == "new"
        self.deadline = time.monotonic() + float(cfg["seconds"])  # type: ignore[arg-type]
        self.waiting: list[str] = list(self.users)  # users to log in, in order
        self.timers: list[tuple[float, int, str, load.Client | str]] = []
        self.phase: dict[load.Client, str] = {}  # client -> login | online | logout
        self.seq = 0
        self.logins = self.cycles = self.failures = 0
        self.errors: list[str] = []

    def later(self, delay: float, action: str, what: load.Client | str) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, action, what))

    def in_flight(self) -> int:
        return sum(1 for p in self.phase.values() if p == "login")

    def start_logins(self) -> None:
        while self.waiting and self.in_flight() < self.concurrency:
            user = self.waiting.pop(0)
            resource = None if self.new_resources else "soak"
            try:
                client = self.loop.connect(
                    lambda c, u=user, r=resource: load.login_script(  # type: ignore[misc]
                        c, self.host, u, PASSWORD, {}, True, r
                    )
                )
            except OSError as exc:
                self.fail(None, user, exc)
                continue
            client.user = user  # type: ignore[attr-defined]
            self.phase[client] = "login"
            self.check(client)

    def check(self, c: load.Client) -> None:
        """Move a client on once its script is done."""
        if not c.done or c not in self.phase:
            return
        phase = self.phase[c]
        if phase == "login":
            self.logins += 1
            self.phase[c] = "online"
            self.later(random.uniform(self.hold / 2, self.hold * 1.5), "logout", c)
        elif phase == "logout":
            self.cycles += 1
            self.drop(c)
            self.waiting.append(c.user)  # type: ignore[attr-defined]

    def logout(self, c: load.Client) -> None:
        def script(c: load.Client) -> load.Script:
            c.send("</stream:stream>")
            yield b"</stream:stream>"

        self.phase[c] = "logout"
        c.script = script(c)
        c.done = False
        c.buf = b""
        c.start()
        self.loop.pump(c)
        self.check(c)

    def drop(self, c: load.Client) -> None:
        self.phase.pop(c, None)
        if not c.closed:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.loop.sel.unregister(c.sock)
            with contextlib.suppress(OSError):
                c.sock.close()
            c.closed = True

    def fail(self, c: load.Client | None, user: str, exc: Exception) -> None:
        self.failures += 1
        if len(self.errors) < 5:
            self.errors.append(f"{user}: {type(exc).__name__}: {exc}"[:300])
        if c is not None:
            self.drop(c)
        self.later(1.0, "login", user)

    def report(self, final: bool = False) -> None:
        line = {
            "logins": self.logins,
            "cycles": self.cycles,
            "failures": self.failures,
            "online": sum(1 for p in self.phase.values() if p == "online"),
            "final": final,
        }
        if final:
            line["errors"] = self.errors  # type: ignore[assignment]
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def run(self) -> None:
        next_report = time.monotonic() + 1.0
        self.start_logins()
        while (now := time.monotonic()) < self.deadline:
            while self.timers and self.timers[0][0] <= now:
                _, _, action, what = heapq.heappop(self.timers)
                if action == "logout":
                    assert isinstance(what, load.Client)
                    if self.phase.get(what) == "online":
                        try:
                            self.logout(what)
                        except Exception as exc:  # counted; the soak goes on
                            self.fail(what, what.user, exc)  # type: ignore[attr-defined]
                else:
                    assert isinstance(what, str)
                    self.waiting.append(what)
            self.start_logins()
            timeout = min(0.2, max(0.0, self.timers[0][0] - now) if self.timers else 0.2)
            for key, mask in self.loop.sel.select(timeout):
                client: load.Client = key.data
                try:
                    if mask & selectors.EVENT_WRITE:
                        self.loop.pump(client)
                    if mask & selectors.EVENT_READ and not client.closed:
                        self.loop.readable(client)
                except Exception as exc:  # counted; the soak goes on
                    self.fail(client, client.user, exc)  # type: ignore[attr-defined]
                    continue
                self.check(client)
            if now >= next_report:
                self.report()
                next_report = now + 1.0
        for c in list(self.phase):
            self.drop(c)
        self.report(final=True)


def worker_main() -> None:
    Churn(json.loads(sys.stdin.readline())).run()


# -- the server, instrumented (a process of its own) ----------------------------------------


def instrumented_server_main(options: dict[str, object], config: str) -> None:
    """``minixmpp serve`` with what --trace, --tracemalloc and --collect-every ask for.

    SIGUSR1 writes DIR/snapN.json: live objects counted by type before and after a full
    collection, RSS before and after it (and ``malloc_trim``), glibc's heap figures, the
    collector's statistics, the TLS session caches; with tracemalloc, DIR/snapN.tracemalloc.
    """
    import ctypes
    import gc
    import ssl
    import tracemalloc
    from collections import Counter

    frames = int(options["tracemalloc"])  # type: ignore[call-overload]
    if frames:
        tracemalloc.start(frames)
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost",
            )
        ]  # fmt: skip

    def malloc_stats() -> dict[str, int]:
        """glibc's view: bytes in use and free in its heaps (C libraries: lxml, OpenSSL,
        SQLite; Python's objects over 512 bytes), and in mmap'd blocks."""
        try:
            mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        except (OSError, AttributeError):
            return {}
        mallinfo2.restype = MallInfo2
        info = mallinfo2()
        return {"in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd}

    def collect() -> int:
        found = gc.collect()
        if trim is not None:
            trim(0)
        return found

    def type_counts() -> dict[str, int]:
        objects = gc.get_objects()
        return dict(Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects))

    count = [0]

    def dump(signum: int, frame: object) -> None:
        n = count[0]
        count[0] += 1
        out = Path(str(options["trace"]))
        info: dict[str, object] = {
            "rss_before_collect": rss_bytes(os.getpid()),
            "gc_count": gc.get_count(),
            "gc_stats": gc.get_stats(),
            "types_before_collect": type_counts(),
        }
        info["collected"] = collect()
        info["rss_after_collect"] = rss_bytes(os.getpid())
        info["malloc"] = malloc_stats()
        info["garbage"] = len(gc.garbage)
        types = type_counts()
        info["types"] = types
        contexts = {
            id(o.context): o.context for o in gc.get_objects() if isinstance(o, ssl.SSLSocket)
        }
        info["tls_session_caches"] = [ctx.session_stats()["number"] for ctx in contexts.values()]
        if frames:
            tracemalloc.take_snapshot().dump(str(out / f"snap{n}.tracemalloc"))
        (out / f"snap{n}.json").write_text(json.dumps(info))

    if options["trace"]:
        signal.signal(signal.SIGUSR1, dump)
    every = float(options["collect_every"])  # type: ignore[arg-type]
    if every:

        def collector() -> None:
            while True:
                time.sleep(every)
                collect()

        threading.Thread(target=collector, daemon=True).start()
    from minixmpp.cli import main

    sys.exit(main(["serve", "-c", config]))


def collections(snapshot: dict[str, list[dict[str, int]]]) -> list[int]:
    return [generation["collections"] for generation in snapshot["gc_stats"]]


def print_trace_diff(folder: Path, first: int, last: int) -> None:
    import tracemalloc

    a = json.loads((folder / f"snap{first}.json").read_text())
    b = json.loads((folder / f"snap{last}.json").read_text())
    print(
        f"\ntrace: RSS {a['rss_before_collect'] / 1e6:.1f} -> {b['rss_before_collect'] / 1e6:.1f}"
        f" MB; after a full collection {a['rss_after_collect'] / 1e6:.1f} ->"
        f" {b['rss_after_collect'] / 1e6:.1f} MB; it collected {a['collected']} and"
        f" {b['collected']} objects; gc.garbage {b['garbage']}; collections per generation"
        f" {collections(a)} -> {collections(b)};"
        f" TLS session caches {a['tls_session_caches']} -> {b['tls_session_caches']}"
    )
    if a.get("malloc") and b.get("malloc"):
        print(
            "glibc malloc after the collection: "
            + ", ".join(
                f"{k} {a['malloc'][k] / 1e6:.1f} -> {b['malloc'][k] / 1e6:.1f} MB"
                for k in a["malloc"]
            )
        )
    for key, title in (
        ("types", "after a full collection"),
        ("types_before_collect", "before it: garbage included"),
    ):
        grown = sorted(
            ((n - a[key].get(t, 0), t, n) for t, n in b[key].items()),
            reverse=True,
        )[:15]
        print(f"\nobject counts that grew ({title}):")
        for delta, name, total in grown:
            if delta > 0:
                print(f"  {delta:+8d}  {total:8d}  {name}")
    if not (folder / f"snap{first}.tracemalloc").exists():
        return
    snap_a = tracemalloc.Snapshot.load(str(folder / f"snap{first}.tracemalloc"))
    snap_b = tracemalloc.Snapshot.load(str(folder / f"snap{last}.tracemalloc"))
    noise = (
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    )
    snap_a, snap_b = snap_a.filter_traces(noise), snap_b.filter_traces(noise)
    total = sum(s.size for s in snap_b.statistics("filename")) - sum(
        s.size for s in snap_a.statistics("filename")
    )
    print(f"\ntracemalloc: {total / 1e3:+.1f} KB traced; the lines that grew most:")
    for stat in snap_b.compare_to(snap_a, "lineno")[:15]:
        print(f"  {stat.size_diff / 1e3:+9.1f} KB {stat.count_diff:+7d}  {stat.traceback[0]}")
    print("\nthe allocations that grew most, with their callers:")
    for stat in snap_b.compare_to(snap_a, "traceback")[:6]:
        print(f"  {stat.size_diff / 1e3:+9.1f} KB {stat.count_diff:+7d}")
        for line in stat.traceback.format(limit=8, most_recent_first=True)[::2]:
            print(f"      {line.strip()}")


# -- the orchestrator -------------------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return float("nan")
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


class Workers:
    def __init__(self, args: argparse.Namespace, port: int, users: list[str]) -> None:
        self.latest: list[dict[str, object]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.threads: list[threading.Thread] = []
        for i in range(args.workers):
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__)), "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None
            setup = {
                "host": "localhost",
                "port": port,
                "users": users[i :: args.workers],
                "hold": args.hold,
                "concurrency": args.concurrency,
                "resources": args.resources,
                "seconds": args.minutes * 60,
            }
            proc.stdin.write(json.dumps(setup).encode() + b"\n")
            proc.stdin.close()
            self.procs.append(proc)
            self.latest.append({})
            thread = threading.Thread(target=self._read, args=(i, proc), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _read(self, i: int, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.latest[i] = json.loads(line)

    def total(self, key: str) -> int:
        return sum(int(r.get(key, 0)) for r in self.latest)  # type: ignore[call-overload]

    def finish(self, timeout: float) -> None:
        for proc, thread in zip(self.procs, self.threads, strict=True):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            thread.join(10)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def soak(args: argparse.Namespace) -> dict[str, object]:
    users = [f"u{i}" for i in range(args.clients)]
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    port = free_port()
    trace = Path(args.trace).resolve() if args.trace else None
    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        for old in trace.glob("snap*"):
            old.unlink()
    if trace is not None or args.collect_every:
        options = {
            "trace": str(trace or ""),
            "tracemalloc": args.tracemalloc,
            "collect_every": args.collect_every,
        }
        os.environ["MINIXMPP_BENCH_SERVER"] = (
            f"{sys.executable} {Path(__file__)} --instrumented-server"
            f" {json.dumps(options, separators=(',', ':'))} -c"
        )
    proc = start_minixmpp(folder, users, port)
    workers: Workers | None = None
    samples: list[dict[str, float]] = []
    snapshots = 0
    try:
        wait_for_port(port, proc)
        pid = proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        samples.append({"t": 0.0, "rss": rss_bytes(pid), "cpu": 0.0, "cycles": 0, "logins": 0})
        workers = Workers(args, port, users)
        end = t0 + args.minutes * 60
        next_sample = t0 + args.sample
        while (now := time.monotonic()) < end:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            time.sleep(max(0.0, min(next_sample, end) - now))
            now = time.monotonic()
            if now >= next_sample:
                next_sample += args.sample
                samples.append(
                    {
                        "t": now - t0,
                        "rss": rss_bytes(pid),
                        "cpu": cpu_seconds(pid) - cpu0,
                        "cycles": workers.total("cycles"),
                        "logins": workers.total("logins"),
                        "online": workers.total("online"),
                        "failures": workers.total("failures"),
                    }
                )
                if not args.quiet:
                    s = samples[-1]
                    print(
                        f"{s['t']:6.0f} s  RSS {s['rss'] / 1e6:7.1f} MB  cycles {s['cycles']:7d}"
                        f"  online {s['online']:4d}  failures {s['failures']}",
                        flush=True,
                    )
            # Snapshots after the first minute and shortly before the end, both under churn.
            if trace is not None and (
                (snapshots == 0 and now - t0 >= WARM_UP)
                or (snapshots == 1 and now >= end - 2 * args.sample)
            ):
                proc.send_signal(signal.SIGUSR1)
                snapshots += 1
                wait_for_file(trace / f"snap{snapshots - 1}.json", proc)
        workers.finish(60)
        failures = workers.total("failures")
        errors = [e for r in workers.latest for e in r.get("errors", [])]  # type: ignore[attr-defined]
    finally:
        if workers is not None:
            workers.kill()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    window = [s for s in samples if s["t"] >= WARM_UP]
    minutes = (window[-1]["t"] - window[0]["t"]) / 60 if len(window) > 1 else float("nan")
    cycles = window[-1]["cycles"] - window[0]["cycles"] if len(window) > 1 else 0
    kb_per_min = slope([(s["t"] / 60, s["rss"] / 1e3) for s in window])
    cpu = window[-1]["cpu"] - window[0]["cpu"] if len(window) > 1 else float("nan")
    result: dict[str, object] = {
        "clients": args.clients,
        "minutes": args.minutes,
        "hold_s": args.hold,
        "resources": args.resources,
        "rss_start_mb": samples[0]["rss"] / 1e6,
        "rss_at_1_min_mb": window[0]["rss"] / 1e6 if window else float("nan"),
        "rss_end_mb": samples[-1]["rss"] / 1e6,
        "cycles_total": samples[-1]["cycles"],
        "cycles_after_1_min": cycles,
        "cycles_per_min": cycles / minutes if cycles else float("nan"),
        "rss_slope_kb_per_min": kb_per_min,
        "kb_per_cycle": kb_per_min * minutes / cycles if cycles else float("nan"),
        "cpu_ms_per_cycle": 1000 * cpu / cycles if cycles else float("nan"),
        "failures": failures,
        "errors": errors,
    }
    if args.samples:
        Path(args.samples).write_text(json.dumps(samples))
    if trace is not None and snapshots >= 2:
        result["trace"] = str(trace)
    return result


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the server wrote no {path.name}")
        time.sleep(0.2)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker_main()
        return
    if sys.argv[1:2] == ["--instrumented-server"]:
        options, _, config = sys.argv[2:5]  # JSON -c CONFIG (as start_minixmpp runs it)
        instrumented_server_main(json.loads(options), config)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--hold", type=float, default=10.0, help="mean seconds online per login (10)"
    )
    parser.add_argument(
        "--resources",
        choices=("new", "same"),
        default="new",
        help="bind a new server-chosen resource at every login, or the same one (new)",
    )
    parser.add_argument("--workers", type=int, default=2, help="load processes (2)")
    parser.add_argument("--concurrency", type=int, default=25, help="logins in flight per worker")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--samples", metavar="FILE", help="write every sample to FILE (JSON)")
    parser.add_argument(
        "--trace", metavar="DIR", help="object counts, RSS, gc statistics into DIR (see above)"
    )
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="with --trace: tracemalloc"
    )
    parser.add_argument(
        "--collect-every",
        type=float,
        default=0.0,
        metavar="S",
        help="a full collection in the server every S seconds (tells GC lag from a leak)",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per sample")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.minutes * 60 <= WARM_UP + 2 * args.sample:
        parser.error(f"--minutes must leave samples after the first {WARM_UP:.0f} s")
    result = soak(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key not in ("errors", "trace"):
                text = f"{value:.2f}" if isinstance(value, float) else str(value)
                print(f"{key:24}{text:>14}")
        for error in result["errors"]:  # type: ignore[attr-defined]
            print("error:", error)
    if "trace" in result:
        print_trace_diff(Path(str(result["trace"])), 0, 1)


if __name__ == "__main__":
    main()
