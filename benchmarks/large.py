"""DeepDream of a 3840x2160 picture on the CPU: time, peak resident memory and tile seams.

The picture is the chelsea sample cut to 16:9 and enlarged to 4K. It runs through the command line exactly as a user
would (``dreamloom recipe=deepdream input=… size=null``), in a child process whose peak resident memory is read
from the operating system; the deepdream recipe cuts pictures over ``tile_size`` (512) pixels a side into tiles at
new random offsets every step. The seam score (:func:`engine.measures.seam_strength`: the largest jump of the
added detail between neighbouring rows or columns over the median jump) is printed beside the same score of an
untiled run on a 960x540 picture.

    .venv/bin/python benchmarks/large.py [--steps 20] [--size 3840x2160] [--keep dream.png]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DREAMLOOM = Path(sys.executable).parent / "dreamloom"


def make_picture(path: Path, w: int, h: int) -> None:
    from engine.images import SAMPLES

    photo = Image.fromarray(SAMPLES["chelsea"]())
    cut_h = round(photo.width * h / w)
    top = (photo.height - cut_h) // 2
    photo.crop((0, top, photo.width, top + cut_h)).resize((w, h), Image.Resampling.LANCZOS).save(path, quality=95)


def dream(picture: Path, folder: Path, steps: int, extra: list[str]) -> tuple[float, float, dict]:
    """Run the recipe in a child process; its wall time, peak resident memory in GB and metrics."""
    t0 = time.perf_counter()
    cmd = [str(DREAMLOOM), "recipe=deepdream", f"input={picture}", "size=null", f"steps={steps}", "snapshot_every=0"]
    subprocess.run([*cmd, *extra, f"hydra.run.dir={folder}"], check=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far: run the big one first
    return seconds, peak / 2**20, json.loads((folder / "metrics.json").read_text())


def seams(folder: Path, picture: Path) -> float:
    from engine.images import load_image
    from engine.measures import seam_strength

    return seam_strength(load_image(folder / "image.png"), load_image(picture))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per octave (the recipe's default)")
    parser.add_argument("--keep", type=Path, help="copy the 4K result here, to look at it")
    parser.add_argument("--size", default="3840x2160", help="WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    w, h = (int(n) for n in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.jpg", Path(tmp) / "small.jpg"
        make_picture(big, w, h)
        make_picture(small, 960, 540)
        seconds, peak, metrics = dream(big, Path(tmp) / "big", args.steps, [])
        big_seams = seams(Path(tmp) / "big", big)
        if args.keep:
            shutil.copyfile(Path(tmp) / "big" / "image.png", args.keep)
        _, _, _ = dream(small, Path(tmp) / "small", args.steps, ["tile_size=null"])
        small_seams = seams(Path(tmp) / "small", small)
    print(f"DeepDream {w}x{h}, 4 octaves x {args.steps} steps, tiles of about 512 px at random offsets")
    print(f"wall time {seconds:.0f} s (optimization {metrics['seconds']:.0f} s), peak resident memory {peak:.2f} GB")
    print(f"seam score {big_seams:.2f} (untiled 960x540 run: {small_seams:.2f})")
    target = "met" if peak < 3.0 else "NOT met"
    print(f"target: peak memory under 3 GB: {target}")
    print(json.dumps({"seconds": round(seconds, 1), "peak_gb": round(peak, 3), "seams": round(big_seams, 3)}))


if __name__ == "__main__":
    main()
