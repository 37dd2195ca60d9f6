"""Benchmark: the server's CPU per routed message with stream management (XEP-0198) on and off.

    python bench/smacks.py                       # 200 clients, 200 rounds, 3 runs, medians
    python bench/smacks.py --prosody             # Prosody 0.12's mod_smacks as well
    python bench/smacks.py --clients 20 --rounds 20 --repeat 1   # a quick check

One server runs with its stream management module loaded, asking for an acknowledgement
after every 5th unacknowledged stanza (``smacks_max_unacked_stanzas = 4``). Two groups of
``--clients`` clients log in (STARTTLS, SCRAM-SHA-1, bind, presence) through the lean load
workers of bench/load.py; the clients of the second group then enable stream management. Each
group's pairs play ping-pong as in run.py (a chat message to each other's full JID, answered,
``--rounds`` times), the groups in turn, ``--repeat`` times. With stream management on, each
client also sends an ``<r/>`` after every 5th message it sends and answers the server's
``<r/>``: so an ``<r/>`` every 5 stanzas each way, and its ``<a/>``.

CPU per routed message = server CPU (user + system, /proc/<pid>/stat) during a group's phase /
its messages. Reported: the medians for off and on, and on - off, the cost of the acks and
the queue of unacknowledged stanzas per message.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    Workers,
    cpu_times,
    free_port,
    start_minixmpp,
    start_prosody,
    wait_for_port,
)


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Both groups on one server of ``name``; medians over ``--repeat`` alternating phases."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-smacks-{name}-"))
    port = free_port()
    groups = {mode: [f"{mode}{i}" for i in range(args.clients)] for mode in ("off", "on")}
    start = start_prosody if name == "prosody" else start_minixmpp
    proc = start(folder, groups["off"] + groups["on"], port, smacks=True)
    workers: dict[str, Workers] = {}
    try:
        wait_for_port(port, proc)
        time.sleep(0.5)
        for mode, users in groups.items():
            workers[mode] = Workers(args.workers, port, users, args.concurrency)
            workers[mode].run({"op": "login"})
        workers["on"].run({"op": "enable_sm"})
        runs: dict[str, list[float]] = {"off": [], "on": []}
        load: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.repeat):
            for mode in ("off", "on"):
                (user0, sys0), t0 = cpu_times(proc.pid), time.perf_counter()
                replies = workers[mode].run(
                    {"op": "pingpong", "rounds": args.rounds, "sm": mode == "on"}
                )
                user1, sys1 = cpu_times(proc.pid)
                messages = sum(r["messages"] for r in replies)
                runs[mode].append(1e6 * (user1 + sys1 - user0 - sys0) / messages)
                load[mode].append(1e6 * sum(r["cpu"] for r in replies) / messages)
                if args.verbose:
                    print(
                        f"{name} {mode}: {messages} messages in {time.perf_counter() - t0:.1f} s,"
                        f" {runs[mode][-1]:.1f} us each",
                        file=sys.stderr,
                    )
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        return {
            "us_per_message_sm_off": off,
            "us_per_message_sm_on": on,
            "us_sm_cost_per_message": on - off,
            "sm_on_over_off": on / off if off else float("nan"),
            "load_us_per_message_off": statistics.median(load["off"]),
            "load_us_per_message_on": statistics.median(load["on"]),
        }
    except (RuntimeError, OSError) as exc:
        code = proc.poll()
        exited = "" if code is None else f" (the server exited with {code})"
        raise RuntimeError(f"{name}{exited}: {exc}") from exc
    finally:
        for group in workers.values():
            group.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="clients per group (even)")
    parser.add_argument("--rounds", type=int, default=200, help="ping-pong rounds per pair")
    parser.add_argument("--repeat", type=int, default=3, help="phases per group; medians")
    parser.add_argument("--workers", type=int, default=2, help="load processes per group")
    parser.add_argument("--concurrency", type=int, default=50, help="logins in flight per worker")
    parser.add_argument("--prosody", action="store_true", help="also measure Prosody (installed)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--verbose", action="store_true", help="each phase on stderr")
    args = parser.parse_args()
    names = ["minixmpp", "prosody"] if args.prosody else ["minixmpp"]
    results = {name: measure(name, args) for name in names}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'server CPU per routed message':32}" + "".join(f"{n:>14}" for n in results))
    for key in results["minixmpp"]:
        print(f"{key:32}" + "".join(f"{r[key]:>14.2f}" for r in results.values()))


if __name__ == "__main__":
    main()
