"""Measure how a dream_zoom video holds up over its frames: its detail and a printed grid.

For the frames of a run folder (``frames/0000.png`` …) it prints, every ``--every`` frames:
  - detail: the mean absolute Laplacian of the grey picture (fine structure; a video that decays into flat colour
    or a blur loses it), relative to the first frame's;
  - grid: :func:`engine.measures.grid_strength` (a fixed grid printed by stride-2 layers scores in the hundreds).

    .venv/bin/python docs/zoom_detail.py outputs/<date>/<time>_dream_zoom [--every 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.images import load_image
from engine.measures import detail, grid_strength


def measure(folder: Path, every: int) -> list[tuple[int, float, float]]:
    paths = sorted((folder / "frames").glob("*.png"))
    first = detail(load_image(paths[0]))
    rows = []
    for k, path in enumerate(paths):
        if k % every and k != len(paths) - 1:
            continue
        picture = load_image(path)
        rows.append((k + 1, detail(picture) / first, grid_strength(picture)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()
    print(f"{'frame':>5} {'detail':>7} {'grid':>7}")
    for k, d, g in measure(args.folder, args.every):
        print(f"{k:5d} {d:7.2f} {g:7.1f}")


if __name__ == "__main__":
    main()
