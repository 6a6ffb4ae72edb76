"""Eight channel pictures as one batch (``recipe=layer_atlas``) against the same eight rendered one by one
(``recipe=channel``), in one run: pictures per second of each and their ratio.

    .venv/bin/python benchmarks/batch.py [--steps 64] [--size 224]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from peers import network_rate  # this folder's peers.py

from engine.configs import compose
from engine.runner import run_recipe

LAYER, CHANNELS = "features.10", list(range(8))


def seconds(recipe: str, overrides: list[str]) -> float:
    """The optimization time of one run (model loading and writing excluded)."""
    cfg = compose([f"recipe={recipe}", "snapshot_every=0", "device=cpu", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        return float(run_recipe(cfg, Path(tmp), recipe).metrics["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    common = [f"layer={LAYER}", f"steps={args.steps}", f"size={args.size}"]
    one_by_one = sum(seconds("channel", [*common, f"channel={c}"]) for c in CHANNELS)
    batched = seconds("layer_atlas", [*common, f"channels=0:{len(CHANNELS)}"])
    n = len(CHANNELS)
    print(f"{n} channels of {LAYER}, {args.size} px, {args.steps} steps")
    print(f"one by one: {n / one_by_one:.3f} pictures/s   batched: {n / batched:.3f} pictures/s")
    print(f"batched / one by one: {one_by_one / batched:.2f}x")
    side = args.size + 12  # pad 12, jitter 8, scale 1 on average, jitter 4
    single, together = network_rate(4 * n, 1, side), network_rate(4, n, side)
    print(
        f"the network alone ({side} px, to {LAYER} and back): {single:.1f} pictures/s one at a time, "
        f"{together:.1f} as a batch of {n}, {together / single:.2f}x: the most batching can give on this machine"
    )


if __name__ == "__main__":
    main()
