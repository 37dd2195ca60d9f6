"""Benchmark: PEP publish fan-out (XEP-0163) to contacts that want the node (+notify caps).

    python bench/pep_fanout.py                         # 100 contacts, 200 publishes
    python bench/pep_fanout.py --contacts 5 --publishes 20
    python bench/pep_fanout.py --prosody               # the same against Prosody 0.12's mod_pep

One owner has ``--contacts`` contacts (mutual subscriptions, written into the database before
the server starts). Each contact logs in (STARTTLS, SCRAM, bind) and sends presence with XEP-0115
caps whose features include ``<node>+notify``, answering the server's disco#info question the
first time the hash is seen. Then the owner publishes ``--publishes`` items of ``--size`` bytes
to that node, one after the other, each waiting for its result, while every contact counts the
notifications it receives. The server runs as its own process; reported: the server's CPU per
publish and per notification delivered, publishes a second, and that every contact got every
item (``notifications_delivered`` counts every event, duplicates too: Prosody sends a contact
each item twice, to its bare JID and to its resource). ``--prosody`` runs Prosody 0.12 with
mod_pep instead; ``MINIXMPP_BENCH_CWD`` runs minixmpp from another source tree (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
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
    serve_minixmpp,
    start_prosody,
    wait_for_port,
)
from tests.xmpp import RawClient, login  # noqa: E402

NODE = "urn:xmpp:bench:0"
NS_INFO = "http://jabber.org/protocol/disco#info"
FEATURES = sorted([NS_INFO, f"{NODE}+notify"])
VER = base64.b64encode(
    hashlib.sha1(("client/pc//bench<" + "".join(f"{f}<" for f in FEATURES)).encode()).digest()
).decode()
ITEM = re.compile(rb"<item[^>]* id=[\"']i(\d+)[\"']")
INFO = "<identity category='client' type='pc' name='bench'/>" + "".join(
    f"<feature var='{f}'/>" for f in FEATURES
)


def rosters(contacts: int) -> tuple[list[str], dict[str, list[str]]]:
    names = [f"c{i}" for i in range(contacts)]
    return ["owner", *names], {"owner": names, **{name: ["owner"] for name in names}}


def start(folder: Path, port: int, contacts: int, prosody: bool) -> subprocess.Popen[bytes]:
    users, roster = rosters(contacts)
    if prosody:
        return start_prosody(folder, users, port, roster, modules=["pep"])
    return serve_minixmpp(folder, port, users, ["ping", "pep"], rosters=roster)


async def settle(client: RawClient) -> None:
    """Answer disco#info questions until a ping round trip brings none."""
    for _ in range(20):
        await client.send(
            "<iq type='get' id='rt' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        asked = []
        while (el := await client.next(timeout=60)).get("id") != "rt":
            if (
                el.tag == "iq"
                and el.get("type") == "get"
                and el.find(f"{{{NS_INFO}}}query") is not None
            ):
                asked.append(el)
        for q in asked:
            node = q[0].get("node")
            await client.send(
                f"<iq type='result' id='{q.get('id')}' to='{q.get('from')}'>"
                f"<query xmlns='{NS_INFO}' node='{node}'>{INFO}</query></iq>"
            )
        if not asked:
            return
    raise RuntimeError("the server keeps asking")


async def count(client: RawClient, wanted: int) -> tuple[int, int]:
    """Read lean until every one of ``wanted`` items came (or 120 s passed): (distinct items,
    events)."""
    seen: set[bytes] = set()
    events = 0
    tail = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while len(seen) < wanted and loop.time() < deadline:
        try:
            data = await asyncio.wait_for(client.reader.read(1 << 16), deadline - loop.time())
        except TimeoutError:
            break
        if not data:
            break
        window = tail + data
        events += window.count(b"</event>") - tail.count(b"</event>")
        seen.update(m.group(1) for m in ITEM.finditer(window))
        tail = window[-64:]
    return len(seen), events


async def run(port: int, ca: Path, pid: int, contacts: int, publishes: int, size: int) -> dict:
    clients = []
    for i in range(contacts):
        client, _ = await login(port, ca, f"c{i}", PASSWORD)
        caps = (
            f"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://b' ver='{VER}'/>"
        )
        await client.send(f"<presence>{caps}</presence>")
        await settle(client)
        clients.append(client)
    owner, _ = await login(port, ca, "owner", PASSWORD)
    readers = [asyncio.ensure_future(count(c, publishes)) for c in clients]
    payload = f"<x xmlns='{NODE}'>{'x' * size}</x>"
    options = (
        "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'"
        " type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#max_items'><value>max</value></field></x></publish-options>"
    )
    started, cpu = time.monotonic(), cpu_seconds(pid)
    for i in range(publishes):
        reply = await owner.iq(
            f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{NODE}'>"
            f"<item id='i{i}'>{payload}</item></publish>{options}</pubsub>",
            type="set",
            id=f"p{i}",
        )
        assert reply.get("type") == "result", reply
    received = await asyncio.gather(*readers)
    seconds, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    for client in (*clients, owner):
        await client.close()
    delivered = sum(events for _, events in received)
    return {
        "publishes_per_second": round(publishes / seconds, 1),
        "server_cpu_ms_per_publish": round(cpu * 1000 / publishes, 2),
        "server_cpu_us_per_notification": round(cpu * 1e6 / max(1, delivered), 1),
        "notifications_delivered": delivered,
        "every_contact_got_every_item": all(items == publishes for items, _ in received),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--publishes", type=int, default=200)
    parser.add_argument("--size", type=int, default=100, help="payload bytes per item")
    parser.add_argument("--prosody", action="store_true", help="Prosody 0.12 instead")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pep-"))
    port = free_port()
    proc = start(folder, port, args.contacts, args.prosody)
    try:
        wait_for_port(port, proc)
        ca = folder / "certs" / "ca.pem"
        result = asyncio.run(run(port, ca, proc.pid, args.contacts, args.publishes, args.size))
        server = "prosody" if args.prosody else "minixmpp"
        head = {"server": server, "contacts": args.contacts, "publishes": args.publishes}
        print(json.dumps({**head, **result}, indent=2))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
