"""Measure the parameterizations ``maco``, ``alpha`` and ``cppn`` on the packaged MobileNetV2 (224 px, the recipes'
own steps and learning rates), and print the tables of ``docs/parameterizations.md``.

1. MACO against FFT, for 10 classes and 10 channels of ``features.16``, at equal steps:
   - slope: :func:`engine.measures.spectral_slope` of the results, beside the sample photos' own (the crops the
     stored spectrum was measured on);
   - hits, p: for classes, the share of 64 random crops-and-shifts whose top-1 is the class, and the class's mean
     probability over them (``docs/quality.py``);
   - act: for channels, the channel's mean activation on the finished picture, seen whole;
   - s: seconds of optimization per run.
2. Alpha: for 5 neurons of ``features.10`` (Lucid's transparent pictures are of neurons) and 5 channels of
   ``features.16``, the objective on the transparent picture laid over 16 random backgrounds (the kind the run saw,
   drawn anew), as a share of the opaque ``param=fft`` picture's, and the mean opacity.
3. CPPN: for 5 channels optimized at 224 px, rendered again at 1024x1024 and 3840x2160 (its centre square) and
   scaled back to 224: the channel's activation as a share of the 224-px picture's.

    .venv/bin/python docs/params_quality.py [--part maco|alpha|cppn] [--count N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import class_robustness

import objectives
from engine import api
from engine.cppn import render_large
from engine.images import composite, load_image, resize_to
from engine.measures import spectral_slope
from engine.models import load_model
from engine.spectrum import PHOTOS, _crops
from regularizers.transforms import random_backgrounds

OUT = Path("outputs/params_quality")
CLASSES = [1, 31, 107, 130, 323, 437, 949, 963, 980, 985]
LAYER = "features.16"
CHANNELS = list(range(10))


def activation(view, picture: torch.Tensor, channel: int) -> float:  # type: ignore[no-untyped-def]
    """The mean of ``channel`` at :data:`LAYER` over the picture (a batch: its mean)."""
    with torch.no_grad():
        return float(view(picture, [LAYER])[LAYER][:, channel].mean())


def run(recipe: str, name: str, **keys: object) -> api.Result:
    """The run ``name`` under :data:`OUT`: read back when it finished before, else made now."""
    folder = OUT / name
    if (folder / "metrics.json").is_file():
        return api.Result(folder, json.loads((folder / "metrics.json").read_text()))
    return api.run(recipe, out=folder, **keys)


def maco_part(view, count: int) -> None:  # type: ignore[no-untyped-def]
    photos = torch.cat([c for n in PHOTOS for c in _crops(load_image(n))])
    print(f"sample photos' slope: {spectral_slope(photos):.2f}")
    print(f"{'param':6} {'what':>14} {'slope':>6} {'hits':>5} {'p':>6} {'act':>6} {'s':>5}")
    for param in ("fft", "maco"):
        slopes, hits, acts, seconds = [], [], [], []
        for target in CLASSES[:count]:
            result = run("class", f"class_{param}_{target}", target=target, param=param)
            seconds.append(float(result.metrics["seconds"]))
            slopes.append(spectral_slope(result.picture))
            hits.append(class_robustness(view, result.folder / "image.png", target)[1:3])
        for channel in CHANNELS[:count]:
            result = run("channel", f"channel_{param}_{channel}", layer=LAYER, channel=channel, param=param)
            seconds.append(float(result.metrics["seconds"]))
            slopes.append(spectral_slope(result.picture))
            acts.append(activation(view, result.picture, channel))
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        print(
            f"{param:6} {'classes':>14} {mean(slopes[:count]):6.2f} {mean([h for h, _ in hits]):5.2f} "
            f"{mean([p for _, p in hits]):6.3f} {'':>6} "
            f"{mean(seconds[:count]):5.1f}\n{param:6} {'channels':>14} {mean(slopes[count:]):6.2f} {'':>5} {'':>6} "
            f"{mean(acts):6.2f} {mean(seconds[count:]):5.1f}",
            flush=True,
        )


def score(view, picture: torch.Tensor, recipe: str, layer: str, channel: int) -> float:  # type: ignore[no-untyped-def]
    """The recipe's objective as an activation (higher is better), on each picture of a batch, averaged."""
    make = objectives.neuron if recipe == "neuron" else objectives.channel
    with torch.no_grad():
        acts = dict(view(picture, [layer]))
        return -float(make(layer, channel)(acts)) / picture.shape[0]


def alpha_part(view, count: int) -> None:  # type: ignore[no-untyped-def]
    print(f"{'objective':>22} {'opaque':>7} {'alpha':>7} {'share':>6} {'opacity':>7}")
    generator = torch.Generator().manual_seed(1)
    for recipe, layer in (("neuron", "features.10"), ("channel", LAYER)):
        shares = []
        for channel in CHANNELS[:count]:
            keys = {"layer": layer, "channel": channel}
            opaque = run(recipe, f"alpha_{recipe}_fft_{channel}", **keys).picture
            clear = run(recipe, f"alpha_{recipe}_{channel}", param="alpha", **keys).picture
            laid = composite(clear.expand(16, -1, -1, -1), random_backgrounds(16, *clear.shape[-2:], generator))
            a, b = score(view, opaque, recipe, layer, channel), score(view, laid, recipe, layer, channel)
            shares.append(b / a)
            what = f"{recipe} {layer}:{channel}"
            print(f"{what:>22} {a:7.2f} {b:7.2f} {b / a:6.2f} {float(clear[:, 3].mean()):7.2f}", flush=True)
        print(f"{recipe + ' mean':>22} {'':>7} {'':>7} {sum(shares) / len(shares):6.2f}", flush=True)


def cppn_part(view, count: int) -> None:  # type: ignore[no-untyped-def]
    print(f"{'channel':>7} {'224':>6} {'1024':>6} {'4K':>6} {'share 1024':>10} {'share 4K':>8} {'s 4K':>5}")
    for channel in CHANNELS[:count]:
        result = run("channel", f"cppn_{channel}", layer=LAYER, channel=channel, param="cppn")
        weights = torch.load(result.folder / "cppn.pt", weights_only=True)
        base = activation(view, result.picture, channel)
        large = resize_to(render_large(weights, 1024, 1024), (224, 224))
        t0 = time.perf_counter()
        wide = render_large(weights, 2160, 3840)
        seconds = time.perf_counter() - t0
        square = resize_to(wide[..., :, 840:3000], (224, 224))
        a, b = activation(view, large, channel), activation(view, square, channel)
        print(f"{channel:7d} {base:6.2f} {a:6.2f} {b:6.2f} {a / base:10.2f} {b / base:8.2f} {seconds:5.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["maco", "alpha", "cppn"], action="append")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    view = load_model("mobilenet_v2", "IMAGENET1K_V1")
    parts = {"maco": maco_part, "alpha": alpha_part, "cppn": cppn_part}
    for part in args.part or list(parts):
        print(f"\n## {part}")
        parts[part](view, args.count if part == "maco" else min(args.count, 5))


if __name__ == "__main__":
    main()
