"""Fuzz the sans-I/O stream parser for a bounded number of inputs or a time budget.

    python bench/fuzz_parser.py                     # 20 000 inputs
    python bench/fuzz_parser.py --seconds 60        # as many as fit in a minute
    python bench/fuzz_parser.py --inputs 5000 --seed 7 --crashes /tmp/crashes

Inputs are XMPP client streams (a handful of realistic seeds) mutated as a fuzzer does:
bytes deleted, flipped, inserted and repeated, XML tokens and bad UTF-8 spliced in, pieces of
other seeds spliced together; plus pathological shapes (deep nesting, many attributes or
namespace declarations, long names, many tiny stanzas, huge text) and plain random bytes.
Each input is fed in random chunks (sometimes one byte at a time), through a stream restart
now and then, and every stanza the parser lets through is serialised and parsed again as a
recipient would.

The parser may only ever raise StreamError, and a stanza it lets through must be readable by
the recipient. Reported: executions/s, MB/s, time per input (median, 99th percentile, the
slowest input with its size and kind), the stream error conditions seen, stanzas let through,
RSS (at the start, after the first tenth of the run, at the end: growth after the first tenth
would be a leak) and its peak, and every other exception (with ``--crashes DIR`` each such
input is written there). Exit status 1 if there was any.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minixmpp.errors import StreamError  # noqa: E402
from minixmpp.xml import stanza as st  # noqa: E402
from minixmpp.xml.parser import StanzaReceived, StreamParser  # noqa: E402

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'"
    b" xml:lang='en'>"
)
RECIPIENT = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" from='localhost' version='1.0'>"
)
SEEDS = [
    HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
    b"biwsbj1hbGljZSxyPWZ5a28rZDJsYmJGZ09OUnY5cWt4ZGF3TA==</auth>"
    b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdzLHI9</response>",
    HEADER + b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    b"<resource>phone</resource></bind></iq><presence><priority>5</priority>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
    HEADER + b"<message to='bob@localhost' type='chat' id='m1'><body>hi &amp; &#x263A; "
    b"<![CDATA[<b>raw</b>]]> bye</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
    b"</message>\n <message xmlns='jabber:client' to='a@b'><x xmlns='urn:x' xmlns:y='urn:y'>"
    b"<y:z y:a='1' xml:lang='de'>t</y:z><body xmlns='jabber:client'>in</body></x></message>",
    HEADER + b"<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='c@d' name='C'>"
    b"<group>Friends</group></item></query></iq><iq type='get' id='p' to='localhost'>"
    b"<ping xmlns='urn:xmpp:ping'/></iq>",
    HEADER + b"<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
    b"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
    b"<value>jabber:iq:register</value></field><field var='username'><value>u</value>"
    b"</field><field var='password'><value>p</value></field></x></query></iq>",
    b"\xef\xbb\xbf<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'"
    b" xmlns:h='urn:h' to='localhost' version=\"1.0\" id='a>b'><h:q/><presence h:x='1'/>"
    b"</s:stream>",
]
TOKENS = [
    b"<", b">", b"/>", b"</", b"&", b";", b"'", b'"', b"=", b":", b"xmlns:", b"xmlns='",
    b"xmlns:xml='urn:x'", b"<x:y/>", b"<!--", b"-->", b"<?", b"?>", b"<![CDATA[", b"]]>",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;", b"&#0;", b"&#x110000;", b"&lt;", b"&amp",
    b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b" ",
    b"\n", b"x", b"</stream:stream>", b"<stream:stream xmlns:stream='http://etherx.jabber.org/"
    b"streams'>", b"<message>", b"</message>", b"<iq type='get' id='1'>", b"</iq>",
]  # fmt: skip


def mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randint(0, len(buf))
        op = rnd.randrange(7)
        if op == 0 and buf:
            del buf[i : i + rnd.randint(1, 8)]
        elif op == 1:
            buf[i:i] = rnd.choice(TOKENS)
        elif op == 2:
            buf[i:i] = rnd.randbytes(rnd.randint(1, 4))
        elif op == 3 and buf:
            buf[min(i, len(buf) - 1)] ^= 1 << rnd.randrange(8)
        elif op == 4:
            j = rnd.randint(0, len(buf))
            buf[i:i] = buf[min(i, j) : max(i, j)][:256] * rnd.randint(1, 3)
        elif op == 5:
            other = rnd.choice(SEEDS)
            j = rnd.randint(0, len(other))
            buf[i:i] = other[j : j + rnd.randint(1, 200)]
        else:
            buf[i : i + 1] = rnd.choice(TOKENS)
    return bytes(buf)


SHAPES = ["deep", "attributes", "declarations", "long-name", "many-stanzas", "long-text", "spaces"]


def pathological(rnd: random.Random, shape: int) -> bytes:
    n = rnd.choice([10, 100, 1000, 10_000])
    if shape == 0:
        body = b"<a>" * n + b"x" + b"</a>" * n  # deep nesting
    elif shape == 1:
        body = b"<message " + b" ".join(b"a%d='%d'" % (i, i) for i in range(n)) + b"/>"
    elif shape == 2:
        decls = b" ".join(b"xmlns:p%d='urn:%d'" % (i, i) for i in range(n))
        body = b"<message " + decls + b"><p1:x/></message>"
    elif shape == 3:
        body = b"<" + b"n" * (n * 10) + b"/>"
    elif shape == 4:
        body = b"<presence/>" * n
    elif shape == 5:
        body = b"<message><body>" + b"x&amp;" * (n * 10) + b"</body></message>"
    else:
        body = b" " * (n * 10) + b"<presence/>"
    return HEADER + body


def make_input(rnd: random.Random) -> tuple[str, bytes]:
    """(kind, input)"""
    kind = rnd.random()
    if kind < 0.75:
        return "mutated", mutate(rnd.choice(SEEDS), rnd)
    if kind < 0.9:
        shape = rnd.randrange(len(SHAPES))
        data = pathological(rnd, shape)
        if rnd.random() < 0.3:
            return f"{SHAPES[shape]}, mutated", mutate(data, rnd)
        return SHAPES[shape], data
    return "random", (HEADER if rnd.random() < 0.5 else b"") + rnd.randbytes(rnd.randint(0, 400))


def chunks(data: bytes, rnd: random.Random) -> list[bytes]:
    if rnd.random() < 0.05 and len(data) < 5000:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rnd.randint(0, len(data)) for _ in range(rnd.randint(0, 8)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


class NotRelayable(Exception):
    """A stanza the parser let through that a recipient's parser refuses."""


def run_one(data: bytes, rnd: random.Random, limit: int) -> tuple[str | None, int]:
    """Feed one input; return (stream error condition or None, stanzas let through)."""
    parser = StreamParser(limit)
    stanzas = []
    condition = None
    restart_at = rnd.randrange(1, 4) if rnd.random() < 0.1 else None
    try:
        for n, chunk in enumerate(chunks(data, rnd)):
            stanzas += [e.element for e in parser.feed(chunk) if isinstance(e, StanzaReceived)]
            if n == restart_at:
                parser.reset()
                parser.feed(HEADER)
    except StreamError as exc:
        condition = exc.condition
    finally:
        parser.release()
    for stanza in stanzas:  # relayed: a recipient's parser must read each one
        wire = st.tostring(stanza)
        try:
            StreamParser(1 << 24).feed(RECIPIENT + wire)
        except StreamError as exc:
            raise NotRelayable(f"{exc.condition}: {wire[:200]!r}") from None
    return condition, len(stanzas)


def rss_kb() -> int:
    """The current RSS (Linux), else the peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return pages * resource.getpagesize() // 1024


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs to run (20000)")
    parser.add_argument("--seconds", type=float, help="run for this long instead")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--limit", type=int, default=10_000, help="stanza size limit (10000)")
    parser.add_argument("--crashes", metavar="DIR", help="write inputs that crash here")
    args = parser.parse_args()

    rnd = random.Random(args.seed)
    conditions: collections.Counter[str] = collections.Counter()
    crashes: list[tuple[str, bytes]] = []
    times: list[float] = []
    slowest = (0.0, 0, "")
    total_bytes = passed = 0
    start = time.perf_counter()
    rss_start = rss_kb()
    rss_warm = rss_start
    deadline = start + args.seconds if args.seconds else None
    count = 0
    while (count < args.inputs) if deadline is None else (time.perf_counter() < deadline):
        if count == (args.inputs // 10 if deadline is None else 1000):
            rss_warm = rss_kb()  # lxml's and the allocator's caches are warm by now
        kind, data = make_input(rnd)
        case = random.Random(rnd.random())  # the chunking and restarts of this input
        t0 = time.perf_counter()
        try:
            condition, through = run_one(data, case, args.limit)
        except Exception as exc:  # the parser raised something else: a bug
            crashes.append((f"{type(exc).__name__}: {exc}", data))
            if len(crashes) <= 3:
                traceback.print_exc()
            condition, through = "CRASH", 0
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        if elapsed > slowest[0]:
            slowest = (elapsed, len(data), kind)
        conditions[condition or "accepted"] += 1
        passed += through
        total_bytes += len(data)
        count += 1
    wall = time.perf_counter() - start
    times.sort()
    if args.crashes and crashes:
        folder = Path(args.crashes)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (_, data) in enumerate(crashes):
            (folder / f"crash-{args.seed}-{i}.bin").write_bytes(data)

    def pct(p: float) -> float:
        return 1e3 * times[min(len(times) - 1, int(p * len(times)))]

    print(f"inputs               {count}")
    print(f"executions/s         {count / wall:.0f}")
    print(f"MB/s                 {total_bytes / wall / 1e6:.2f}")
    print(f"time per input       p50 {pct(0.5):.3f} ms, p99 {pct(0.99):.3f} ms")
    print(f"slowest input        {1e3 * slowest[0]:.1f} ms ({slowest[1]} bytes, {slowest[2]})")
    print(f"stanzas let through  {passed}")
    print(f"RSS                  {rss_start / 1024:.1f} MB at the start, {rss_warm / 1024:.1f} MB"
          f" after the first tenth, {rss_kb() / 1024:.1f} MB at the end; peak"
          f" {peak_rss_kb() / 1024:.1f} MB")  # fmt: skip
    print("outcomes             " + ", ".join(f"{k} {v}" for k, v in conditions.most_common()))
    print(f"not StreamError      {len(crashes)}")
    for message, data in crashes[:10]:
        print(f"  {message}  input {data[:120]!r}{'…' if len(data) > 120 else ''}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
