"""Resident memory over many renders in one Python process: it must stay flat (growth under 5 % after the tenth).

Each render is a call of the Python API (``engine.api``): it composes a recipe, loads the model, optimizes and writes
its run folder, as a script calling dreamloom in a loop would. The recipes take turns (channel, deepdream, class,
style), so every code path is repeated.

    .venv/bin/python benchmarks/memory.py [--renders 200]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

RECIPES = [
    ("channel", {"size": 96, "steps": 8}),
    ("deepdream", {"size": 128, "octaves": 2, "steps": 4}),
    ("class", {"size": 96, "steps": 8, "target": "flamingo"}),
    ("style", {"size": 96, "octaves": 1, "steps": 4}),
]


def resident_mb() -> float:
    """This process's resident memory now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> None:
    from engine import api

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args(argv)
    rss = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.renders):
            recipe, keys = RECIPES[i % len(RECIPES)]
            api.run(recipe, out=Path(tmp) / f"{i:03d}", snapshot_every=2, device="cpu", **keys)
            rss.append(resident_mb())
            if (i + 1) % 20 == 0:
                print(f"{i + 1:>4} renders: {rss[-1]:.0f} MB resident", flush=True)
    after_ten = rss[9]
    growth = (rss[-1] - after_ten) / after_ten
    print(f"after 10 renders {after_ten:.0f} MB, after {args.renders} {rss[-1]:.0f} MB: growth {growth:+.1%}")
    print(f"target: growth under 5 %: {'met' if growth < 0.05 else 'NOT met'}")
    print(json.dumps({"after_10_mb": round(after_ten, 1), "last_mb": round(rss[-1], 1), "growth": round(growth, 4)}))


if __name__ == "__main__":
    main()
