"""Measure texture synthesis at 512x768 on the packaged MobileNetV2: the former defaults against today's.

Former: pixel parameterization, zero-padded convolutions, lr 0.05. Today: Fourier parameterization, circular padding
(seamless), lr 0.02. For each it prints, beside the sample's own values:
  - grid: :func:`engine.measures.grid_strength` (a stride grid printed into the picture scores in the thousands);
  - edges: :func:`engine.measures.edge_strength` (a pale frame along the edges scores above 1);
  - colour: :func:`engine.measures.color_distance` to the sample's colour histogram (0: the same colours);
  - style: the Gram distance to the sample on a VGG19 with fixed random weights (seed 0), which the optimization
    never saw;
  - the last loss and the seconds.

    .venv/bin/python docs/texture_quality.py [--style ihc]
"""

from __future__ import annotations

import argparse
import time

import torch

from engine import api
from engine.images import load_image, resize_to
from engine.measures import color_distance, edge_strength, grid_strength, style_distance
from engine.models import load_model

SIZE = (512, 768)
VARIANTS = {"former": ["param=pixel", "seamless=false", "lr=0.05"], "today": []}
JUDGE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="ihc")
    args = parser.parse_args()
    torch.manual_seed(0)
    judge = load_model("vgg19", "none")
    sample = resize_to(load_image(args.style), SIZE)
    print(f"{'':8} {'grid':>8} {'edges':>6} {'colour':>6} {'style':>6} {'loss':>7} {'s':>4}")
    print(f"{'sample':8} {grid_strength(sample):8.1f} {edge_strength(sample):6.2f} {0:6.2f} {0:6.3f}")
    for name, keys in VARIANTS.items():
        t0 = time.perf_counter()
        run = api.run(
            "texture", style=[args.style], size=list(SIZE), out=f"outputs/texture_quality/{name}", overrides=keys
        )
        p = run.picture.float().cpu()
        print(
            f"{name:8} {grid_strength(p):8.1f} {edge_strength(p):6.2f} {color_distance(p, sample):6.2f} "
            f"{style_distance(judge, JUDGE, p, sample):6.3f} {run.metrics['loss_last']:7.4f} "
            f"{time.perf_counter() - t0:4.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
