"""Measure texture synthesis on the packaged MobileNetV2: the former defaults against today's.

Former: pixel parameterization, zero-padded convolutions, lr 0.05. Fourier: the Fourier parameterization, circular
padding (seamless), lr 0.02, and no colour histogram loss. Today: Fourier with the histogram loss
(``histogram_weight=100``). Sliced: today's with ``statistics=sliced``. Pyramid: today's with ``pyramid=3``. For
each style and variant it prints, beside the sample's own values:
  - grid: :func:`engine.measures.grid_strength` (a stride grid printed into the picture scores in the thousands);
  - edges: :func:`engine.measures.edge_strength` (a pale frame along the edges scores above 1);
  - colour: :func:`engine.measures.color_distance` to the sample's colour histogram (0: the same colours);
  - patch: :func:`engine.measures.largest_patch`, how far the darkest tones gather into one blob;
  - style: the Gram distance to the sample on a VGG19 with fixed random weights (seed 0), which the optimization
    never saw;
  - texture: :func:`engine.measures.texture_distance` to the sample (oriented filter statistics, no network);
  - the last loss and the seconds.

    .venv/bin/python docs/texture_quality.py [--styles ihc,brick] [--size 512,768] [--variants former,today]
"""

from __future__ import annotations

import argparse
import time

import torch

from engine import api
from engine.images import load_image, resize_to
from engine.measures import (
    color_distance,
    edge_strength,
    grid_strength,
    largest_patch,
    style_distance,
    texture_distance,
)
from engine.models import load_model

SIZE = (512, 768)
VARIANTS = {
    "former": ["param=pixel", "seamless=false", "lr=0.05", "histogram_weight=0"],
    "fourier": ["histogram_weight=0"],
    "today": [],
    "sliced": ["statistics=sliced"],
    "pyramid": ["pyramid=3"],
}
JUDGE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="ihc")
    parser.add_argument("--size", default="512,768")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    hw = size if len(size) == 2 else (size[0], size[0])
    torch.manual_seed(0)
    judge = load_model("vgg19", "none")
    columns = [("grid", 8), ("edges", 6), ("colour", 6), ("patch", 6), ("style", 6), ("texture", 7)]
    columns += [("loss", 7), ("s", 4)]
    print(f"{'':24} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for style in args.styles.split(","):
        sample = resize_to(load_image(style), hw)
        print(
            f"{style + ' sample':24} {grid_strength(sample):8.1f} {edge_strength(sample):6.2f} {0:6.2f} "
            f"{largest_patch(sample, sample):6.3f} {0:6.3f} {0:7.3f}"
        )
        for name in args.variants.split(","):
            t0 = time.perf_counter()
            out = f"outputs/texture_quality/{style}_{name}"
            run = api.run("texture", style=[style], size=list(hw), out=out, overrides=VARIANTS[name])
            p = run.picture.float().cpu()
            print(
                f"{style + ' ' + name:24} {grid_strength(p):8.1f} {edge_strength(p):6.2f} "
                f"{color_distance(p, sample):6.2f} {largest_patch(p, sample):6.3f} "
                f"{style_distance(judge, JUDGE, p, sample):6.4f} {texture_distance(p, sample):7.3f} "
                f"{run.metrics['loss_last']:7.4f} "
                f"{time.perf_counter() - t0:4.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
