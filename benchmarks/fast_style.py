"""Fast style transfer against ``recipe=style`` on the same pair, in one run.

1. Training: ``recipe=style_train style=ihc`` at its defaults (256-px crops); its minutes (target: at most 15 on
   this CPU). ``--net FOLDER`` measures an existing network instead.
2. Speed: painting grace_hopper at 512 px with the network (the best of 5 passes) against ``recipe=style`` at its
   defaults on the same pair, with the Gram matrices the network was trained on (``statistics=gram pyramid=1``;
   target: at least 200x faster).
3. Quality, judged as ``docs/style_quality.py`` judges: Gram distance to the style on a VGG19 with fixed random
   weights (relu1_1 … relu4_1), as a fraction of the photo's own; the network's over ``recipe=style``'s (target: at
   most 2x), and grid strength over the photo's own (target: at most 2.5x).
4. Memory: a 3840x2160 picture painted in tiles in a fresh process; its peak resident memory (target: under 3 GB).
5. Clips: flicker along the flow on the sample clip, the network against ``style_video`` (target: no more).

    .venv/bin/python benchmarks/fast_style.py [--net outputs/…_style_train]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from engine.configs import compose
from engine.images import load_image, resize_long
from engine.measures import grid_strength, style_distance
from engine.models import load_model
from engine.runner import run_recipe
from engine.stylenet import load_network, paint_tiled

SIDE, CONTENT, STYLE = 512, "grace_hopper", "ihc"
VGG_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
PAINT_4K = """
import resource, sys, torch
from engine.stylenet import load_network, paint_tiled
torch.manual_seed(0)
net, _ = load_network(sys.argv[1])
picture = torch.rand(1, 3, 2160, 3840)
out = paint_tiled(net, picture, tile=512)
assert out.shape == picture.shape
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run(recipe: str, folder: Path, *keys: str) -> dict[str, object]:
    return run_recipe(compose([f"recipe={recipe}", *keys]), folder, recipe).metrics


def train(root: Path) -> tuple[str, float]:
    start = time.perf_counter()
    run("style_train", root / "train", f"style={STYLE}")
    return str(root / "train"), (time.perf_counter() - start) / 60


def painting_speed(net_source: str, root: Path) -> dict[str, float]:
    net, _ = load_network(net_source)
    photo = load_image(CONTENT)
    photo = resize_long(photo, SIDE)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        painted = paint_tiled(net, photo)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    run(
        "style",
        root / "style",
        f"content={CONTENT}",
        f"style=[{STYLE}]",
        f"size={SIDE}",
        "statistics=gram",
        "pyramid=1",
    )
    optimized = time.perf_counter() - start
    torch.manual_seed(0)
    vgg = load_model("vgg19", "none")
    style = load_image(STYLE)
    style = resize_long(style, SIDE)
    own = style_distance(vgg, VGG_LAYERS, photo, style)
    fast = style_distance(vgg, VGG_LAYERS, painted, style) / own
    slow = style_distance(vgg, VGG_LAYERS, load_image(root / "style" / "image.png"), style) / own
    return {
        "paint_seconds": round(min(times), 4),
        "style_seconds": round(optimized, 2),
        "faster": round(optimized / min(times), 1),
        "style_distance_fast": round(fast, 4),
        "style_distance_style": round(slow, 4),
        "distance_ratio": round(fast / slow, 2),
        "grid_over_photo": round(grid_strength(painted) / grid_strength(photo), 2),
    }


def memory_4k(net_source: str) -> float:
    done = subprocess.run([sys.executable, "-c", PAINT_4K, net_source], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024**2  # ru_maxrss is in KiB on Linux: GiB


def flicker(net_source: str, root: Path) -> dict[str, float]:
    fast = run("style_fast", root / "fast_clip", f"net={net_source}", "input=clip", "size=256")
    slow = run("style_video", root / "style_video", f"style=[{STYLE}]", "input=clip")
    return {
        "fast": fast["flicker"]["output"],  # type: ignore[index]
        "style_video": slow["flicker"]["output"],  # type: ignore[index]
        "input": fast["flicker"]["input"],  # type: ignore[index]
        "fast_seconds_per_frame": fast["seconds_per_frame"],  # type: ignore[dict-item]
        "style_video_seconds_per_frame": slow["seconds_per_frame"],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", help="a style_train run folder to measure instead of training one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results: dict[str, object] = {}
        net_source = args.net
        if net_source is None:
            net_source, minutes = train(root)
            results["train_minutes"] = round(minutes, 2)
        results["peak_gb_4k"] = round(memory_4k(net_source), 2)
        results |= painting_speed(net_source, root)
        results["flicker"] = flicker(net_source, root)
        print(json.dumps(results, indent=1))
        print(
            f"fast style: trains in {results.get('train_minutes', '-')} min; paints 512 px "
            f"{results['faster']}x faster than recipe=style; style distance {results['distance_ratio']}x "
            f"recipe=style's; grid {results['grid_over_photo']}x the photo's; 4K peak {results['peak_gb_4k']} GB"
        )


if __name__ == "__main__":
    main()
