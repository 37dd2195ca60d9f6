"""Summarise a py-spy profile (``--format raw``: collapsed stacks) as bench/README.md shows them.

    python bench/profile_summary.py PROFILE.txt [--top 15] [--under FUNCTION]
    python bench/profile_summary.py PROFILE.txt --parts SSLSocket.do_handshake,Router.process

``bench/run.py --profile DIR`` writes one such file per phase (DIR/minixmpp-login.txt, ...).
Printed: the share of samples each function spends itself ("self": the leaf of the stack),
and the share of samples each function is on the stack ("total", each function counted once
per sample), functions named without line numbers so that all lines of one add up.
``--under`` keeps only the samples whose stack passes through a function (its name as
printed, e.g. ``Connection.data_received``). ``--parts`` prints only the share of samples
that pass through each of the functions named (a function nested in another counts in both).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``Transport._on_readable (minixmpp/net.py:312)`` -> ``Transport._on_readable (net.py)``."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['function']} ({match['file'].rsplit('/', 1)[-1]})"


def read(path: Path, under: str | None) -> list[tuple[list[str], int]]:
    """The stacks (frames named, root first) and their sample counts."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [frame_name(frame) for frame in stack.split(";")]
        if under and not through(frames, under):
            continue
        stacks.append((frames, int(count_text)))
    return stacks


def through(frames: list[str], function: str) -> bool:
    return any(name.startswith(function) for name in frames)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--under", help="only samples whose stack passes through this function")
    parser.add_argument("--parts", help="functions, comma-separated: the share through each")
    args = parser.parse_args()
    stacks = read(args.profile, args.under)
    samples = sum(count for _, count in stacks)
    if not samples:
        raise SystemExit(f"{args.profile}: no samples")
    print(f"{args.profile.name}: {samples} samples")
    if args.parts:
        for part in args.parts.split(","):
            share = sum(count for frames, count in stacks if through(frames, part)) / samples
            print(f"{100 * share:5.1f}%  {part}")
        return
    leaf: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for frames, count in stacks:
        leaf[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    for title, counts in (("self", leaf), ("total", total)):
        print(f"\n{title:>6}  function")
        for name, count in counts.most_common(args.top):
            print(f"{100 * count / samples:5.1f}%  {name}")


if __name__ == "__main__":
    main()
