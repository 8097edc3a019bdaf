"""Summarise a py-spy raw profile (collapsed stacks): where a server's busy time goes.

    .venv/bin/python bench/profile_top.py bench/results/profile-....txt [--top 30] [--match app/]

Samples whose innermost frame is the event loop waiting (the eventlet hub's poll, a
greenlet switch into it, a thread sleeping in select) are idle time and are left out;
every other sample is busy time. Prints each function's share of the busy samples,
inclusive (it or anything it called was running) and self, the way a flame graph reads.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"(hubs/(epolls|poll|hub|selects)\.py|gevent/hub|_wait|select \(|selectors\.py|"
                  r"threading\.py:\d+\)$|Event\.wait|Condition\.wait|queue\.py)")


def parse(path: Path) -> list[tuple[list[str], int]]:
    """[(frames outermost first, samples), ...]."""
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


def is_idle(frames: list[str]) -> bool:
    """The innermost frame is a wait."""
    return bool(IDLE.search(frames[-1]))


def summarise(stacks, top: int = 30, match: str | None = None) -> str:
    """A table of the busiest functions."""
    busy = [(f, n) for f, n in stacks if not is_idle(f)]
    total = sum(n for _, n in stacks)
    busy_total = sum(n for _, n in busy) or 1
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for frames, n in busy:
        names = [re.sub(r":\d+\)$", ")", f) for f in frames]
        for name in set(names):
            inclusive[name] += n
        own[names[-1]] += n
    lines = [f"{busy_total} busy samples of {total} ({busy_total / max(1, total):.0%} busy)",
             f"{'inclusive':>9} {'self':>6}  function"]
    for name, n in inclusive.most_common():
        if match and match not in name:
            continue
        lines.append(f"{n / busy_total:9.1%} {own[name] / busy_total:6.1%}  {name}")
        if len(lines) >= top + 2:
            break
    return "\n".join(lines)


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default=None, help="only functions whose name or file contains this")
    args = p.parse_args()
    print(summarise(parse(args.profile), args.top, args.match))


if __name__ == "__main__":
    main()
