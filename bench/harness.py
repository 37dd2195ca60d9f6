"""The test harness's speed (issue 13's targets: start to ready <= 0.3 s, reset <= 5 ms for a
small state), measured in one process as a test suite uses it.

    .venv/bin/python bench/harness.py                 # 20 starts, 200 resets
    .venv/bin/python bench/harness.py --starts 5 --resets 20

- start: ``XmppServer(modules=the plugin's).start()`` to ready (listening, seeded, snapshot
  taken), in a process that has imported minixmpp already (a suite's second server onwards);
  the first start, imports included, is reported apart.
- reset: a small state made before each reset (5 accounts, 4 roster items, 3 invites, 10
  offline messages, 2 logged-in clients with presence), then ``reset()``, timed alone.
- snapshot / restore of the same state.
Medians, with the 90th percentile, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minixmpp.testing import XmppServer
from minixmpp.testing.plugin import PLUGIN_MODULES
from tests.xmpp import login


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"| {name} | {statistics.median(ms):.2f} | {p90:.2f} | {len(ms)} |"


async def small_state(server: XmppServer) -> list[object]:
    accounts = [await server.new_user() for _ in range(5)]
    for other in accounts[1:]:
        await server.add_contact(accounts[0], other)
    for _ in range(3):
        await server.create_invite()
    clients = []
    for account in accounts[:2]:
        client, _ = await login(
            server.c2s_port, server.ca_file, account.username, account.password, presence=True
        )
        clients.append(client)
    for i in range(10):  # to the three offline accounts: stored
        to = accounts[2 + i % 3].jid
        await clients[0].send(
            f"<message to='{to}' type='chat' id='o{i}'><body>{i}</body></message>"
        )
    await server.idle()
    return clients


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--resets", type=int, default=200)
    args = parser.parse_args()

    first = time.perf_counter()
    server = XmppServer(modules=PLUGIN_MODULES)
    await server.start()
    first_start = time.perf_counter() - first
    await server.stop()

    starts = []
    for _ in range(args.starts):
        began = time.perf_counter()
        server = XmppServer(modules=PLUGIN_MODULES, users={"alice": "pw"})
        await server.start()
        starts.append(time.perf_counter() - began)
        await server.stop()

    resets, snapshots, restores = [], [], []
    async with XmppServer(modules=PLUGIN_MODULES, users={"alice": "pw"}) as server:
        for _ in range(args.resets):
            await small_state(server)
            began = time.perf_counter()
            saved = await server.snapshot()
            snapshots.append(time.perf_counter() - began)
            began = time.perf_counter()
            await server.restore(saved)
            restores.append(time.perf_counter() - began)
            await small_state(server)
            began = time.perf_counter()
            await server.reset()
            resets.append(time.perf_counter() - began)

    print(f"first start in a fresh process (imports included): {first_start * 1000:.0f} ms\n")
    print("| figure | median ms | p90 ms | runs |\n|---|---|---|---|")
    print(summary("start to ready", starts))
    print(summary("reset (small state, 2 clients online)", resets))
    print(summary("snapshot", snapshots))
    print(summary("restore", restores))


if __name__ == "__main__":
    asyncio.run(main())
