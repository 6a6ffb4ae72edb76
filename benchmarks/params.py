"""The cost of a step under each parameterization, as a ratio to a ``param=fft`` step measured in the same run:
a class picture of MobileNetV2 at 224 px (the model's pass is the same for all; only the picture's making
differs). MACO's target is at most 1.2x an FFT step. Each is timed twice, alternating, and the faster kept.

    .venv/bin/python benchmarks/params.py [--steps 64] [--size 224]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from engine.configs import compose
from engine.runner import run_recipe

PARAMS = ("fft", "maco", "alpha", "cppn", "pixel")


def seconds(param: str, steps: int, size: int) -> float:
    """The optimization time of one class run (model loading and writing excluded)."""
    keys = ["recipe=class", f"param={param}", f"steps={steps}", f"size={size}", "snapshot_every=0", "device=cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        return float(run_recipe(compose(keys), Path(tmp), "class").metrics["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    best = {p: float("inf") for p in PARAMS}
    for _ in range(2):
        for p in PARAMS:
            best[p] = min(best[p], seconds(p, args.steps, args.size))
    print(f"class picture, {args.size} px, {args.steps} steps; seconds per step and the ratio to an fft step")
    for p in PARAMS:
        print(f"{p:6} {best[p] / args.steps * 1000:7.1f} ms   {best[p] / best['fft']:5.2f}x")


if __name__ == "__main__":
    main()
