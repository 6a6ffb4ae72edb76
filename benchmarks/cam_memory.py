"""Resident memory over many CAM calls in one Python process: growth from the 100th call to the last must stay under
5 %. The methods take turns (Score-CAM, the slowest, every 50th call at a smaller size), the class changes with
each call, and each map is moved to the CPU as a caller would keep it. The reference is taken once every method has
run twice: Score-CAM's batches raise the allocator's high-water mark once, on their first calls.

    .venv/bin/python benchmarks/cam_memory.py [--calls 1000] [--size 224]
"""

from __future__ import annotations

import argparse
import time

from memory import resident_mb  # this folder's memory benchmark: the same reading of /proc

from engine.images import load_image, resize_to
from engine.models import load_model
from recipes.cams import CAM_METHODS, cam

CHEAP = [m for m in CAM_METHODS if m != "scorecam"]
WARM = 100
"""Calls before the reference reading: every method has run at least twice by then."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    view = load_model("mobilenet_v2", "IMAGENET1K_V1")
    picture = resize_to(load_image("chelsea"), (args.size, args.size))
    small = resize_to(picture, (64, 64))
    maps, rss, t0 = [], [], time.perf_counter()
    for i in range(args.calls):
        if i % 50 == 49:
            heat = cam(view, small, 281 + i % 5, "features.18", "scorecam", batch=64)
        else:
            heat = cam(view, picture, 281 + i % 5, "features.18", CHEAP[i % len(CHEAP)])
        maps = [*maps[-9:], heat.cpu()]  # the last ten maps are held, as a caller would keep a few
        rss.append(resident_mb())
    seconds = time.perf_counter() - t0
    base = rss[WARM - 1]
    growth = (rss[-1] - base) / base
    print(
        f"{args.calls} CAM calls at {args.size} px in {seconds:.0f} s: resident {base:.0f} MB after the {WARM}th, "
        f"{rss[-1]:.0f} MB after the last ({growth:+.1%}; target under +5 %), peak {max(rss):.0f} MB"
    )
    if growth >= 0.05:
        raise SystemExit(f"resident memory grew {growth:.1%} over {args.calls} CAM calls (target under 5 %)")


if __name__ == "__main__":
    main()
