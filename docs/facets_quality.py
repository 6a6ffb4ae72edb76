"""Measure multi-faceted visualization against k runs of the plain class picture from different seeds.

For each class it prints, for the k facets (``recipe=facets``) and for k class pictures from seeds 0 … k-1
(``recipe=class``):
  - similarity: the mean pairwise cosine similarity of the pictures' penultimate features (MobileNetV2's pooled
    features.18, what its classifier reads), and that of the facets' clusters (their pictures' mean features);
  - the class's probability on 16 random crops of each picture: its mean and the share of pictures whose crops are
    at least 0.9 on average.

Run from the repository root; pictures go to outputs/facets_quality/ and, with --docs, the sheets to docs/images/::

    .venv/bin/python docs/facets_quality.py --k 4
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from make_gallery import IMAGES, thumbnail

from engine.configs import compose
from engine.images import load_image
from engine.models import load_model
from engine.runner import run_recipe
from objectives import mean_cosine
from objectives.classes import resolve_class
from recipes.facets import class_on_crops
from recipes.folders import penultimate

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["tabby", "espresso", "space_shuttle"]
"""Classes the packaged samples' crops show: the cat, the coffee cup, the rocket."""


def run(keys: list[str], folder: Path) -> torch.Tensor:
    shutil.rmtree(folder, ignore_errors=True)
    cfg = compose(keys)
    run_recipe(cfg, folder, str(cfg.name))
    singles = sorted((folder / "images").glob("*.png"))
    return torch.cat([load_image(p) for p in singles] if singles else [load_image(folder / "image.png")])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--classes", nargs="*", default=CLASSES)
    parser.add_argument("--variant", action="append", default=[], help="NAME=override,... for the facets runs")
    parser.add_argument("--no-seeds", action="store_true", help="leave out the seeds' runs")
    parser.add_argument("--docs", action="store_true", help="copy the facets' sheets to docs/images/")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    mnet = load_model("mobilenet_v2", "IMAGENET1K_V1")
    out = ROOT / "outputs" / "facets_quality"
    variants = {v.split("=", 1)[0]: [o for o in v.split("=", 1)[1].split(",") if o] for v in args.variant}
    variants = variants or {"facets": []}
    for name in args.classes:
        index = resolve_class(name, mnet.categories)
        runs: dict[str, torch.Tensor] = {}
        for variant, overrides in variants.items():
            keys = ["recipe=facets", f"target={name}", f"k={args.k}", f"steps={args.steps}", *overrides]
            runs[variant] = run(keys, out / f"{name}_{variant}")
            if args.docs:
                thumbnail(out / f"{name}_{variant}" / "image.png", IMAGES / f"facets_{name}.png", side=512)
        if not args.no_seeds:
            seeds = [run(["recipe=class", f"target={name}", f"steps={args.steps}", f"seed={s}"], out / f"{name}_s{s}")
                     for s in range(args.k)]  # fmt: skip
            runs["seeds"] = torch.cat(seeds)
        for kind in variants:
            metrics = json.loads((out / f"{name}_{kind}" / "metrics.json").read_text())
            print(json.dumps({"class": name, "runs": kind, "clusters_similarity": metrics["cluster_similarity"]}))
        for kind, pictures in runs.items():
            p = class_on_crops(mnet, pictures, index, seed=1)["crop_probability"]
            row = {
                "class": name,
                "runs": kind,
                "similarity": round(float(mean_cosine(penultimate(mnet, pictures))), 3),
                "crop_probability": [round(v, 3) for v in p],
                "sure": sum(v >= 0.9 for v in p),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
