"""Measure guided DeepDream on the packaged MobileNetV2: unguided against guided, for a few photo/guide pairs.

For each pair it prints
  - guide distance: the Gram-matrix distance of the dream to the guide picture, divided by the photo's own distance
    to the guide, with two judges the dream never optimized: a VGG19 with fixed random weights (relu1_1 … relu4_1)
    and MobileNetV2's depthwise layers features.{3,6,9,12}.conv.1;
  - SSIM of the dream to the photo (the photo's structure kept);
  - the seam score of a tiled dream (:func:`engine.measures.seam_strength`, with ``--tiled SIZE``).

Run from the repository root; pictures go to outputs/guided_dream/ and, with --docs, as thumbnails to docs/images/::

    .venv/bin/python docs/guided_dream.py --size 384 --docs
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from make_gallery import IMAGES, thumbnail
from skimage.metrics import structural_similarity
from style_quality import VGG_LAYERS

from engine.configs import compose
from engine.images import load_image, resize_to
from engine.measures import seam_strength, style_distance
from engine.models import load_model
from engine.runner import run_recipe

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = ["features.3.conv.1", "features.6.conv.1", "features.9.conv.1", "features.12.conv.1"]
"""MobileNetV2's depthwise layers, which the dream (at features.10's expansion output) never optimizes."""
PAIRS = [("chelsea", "hubble_deep_field"), ("astronaut", "coffee"), ("chelsea", "ihc")]


def dream(photo: str, guide: str | None, size: int, folder: Path, extra: tuple[str, ...] = ()) -> torch.Tensor:
    """A dream of ``photo`` (guided by ``guide`` with the ``guide_*`` keys among ``extra``; unguided, they are left
    out) into ``folder``."""
    keys = ["recipe=deepdream", f"input={photo}", f"size={size}"]
    keys += [f"guide={guide}"] if guide is not None else []
    extra = tuple(key for key in extra if guide is not None or not key.startswith("guide_"))
    shutil.rmtree(folder, ignore_errors=True)
    run_recipe(compose([*keys, *extra]), folder, "deepdream")
    return load_image(folder / "image.png")


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    x, y = (t[0].permute(1, 2, 0).numpy().astype(np.float64) for t in (a, b))
    return float(structural_similarity(x, y, channel_axis=-1, data_range=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--tiled", type=int, default=0, help="also dream the first pair at this size in 512-px tiles")
    parser.add_argument("--docs", action="store_true", help="copy the pictures to docs/images/ at 256 px")
    parser.add_argument("--pull", default="toward", help="the guided dreams' guide_pull: toward or along")
    parser.add_argument("--gain", type=float, default=3.0, help="the guided dreams' guide_gain (with toward)")
    args = parser.parse_args(argv)
    shape = (f"guide_pull={args.pull}", *((f"guide_gain={args.gain:g}",) if args.pull == "toward" else ()))
    torch.manual_seed(0)
    judges = {
        "vgg": (load_model("vgg19", "none"), VGG_LAYERS),
        "held_out": (load_model("mobilenet_v2", "IMAGENET1K_V1"), HELD_OUT),
    }
    out = ROOT / "outputs" / "guided_dream"
    rows = []
    for photo_name, guide_name in PAIRS:
        runs = {kind: out / f"{photo_name}_{kind}_{guide_name}" for kind in ("unguided", "guided")}
        pictures = {kind: dream(photo_name, guide_name if kind == "guided" else None, args.size, runs[kind], shape)
                    for kind in runs}  # fmt: skip
        photo = resize_to(load_image(photo_name), tuple(pictures["guided"].shape[-2:]))
        guide = load_image(guide_name)
        row: dict[str, object] = {"photo": photo_name, "guide": guide_name}
        for name, (view, layers) in judges.items():
            own = style_distance(view, layers, photo, guide)
            for kind, picture in pictures.items():
                row[f"{name}_{kind}"] = round(style_distance(view, layers, picture, guide) / own, 3)
        for kind, picture in pictures.items():
            row[f"ssim_{kind}"] = round(ssim(picture, photo), 3)
            if args.docs:
                pull = "" if args.pull == "toward" and args.gain == 3 else f"_{args.pull}"
                suffix = f"_{guide_name}{pull}" if kind == "guided" else ""
                thumbnail(runs[kind] / "image.png", IMAGES / f"dream_{photo_name}_{kind}{suffix}.png")
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.tiled:
        photo_name, guide_name = PAIRS[0]
        tiled = ("tile_size=512", "octaves=2", *shape)
        for kind, guide in (("unguided", None), ("guided", guide_name)):
            picture = dream(photo_name, guide, args.tiled, out / f"tiled_{kind}", tiled)
            reference = resize_to(load_image(photo_name), tuple(picture.shape[-2:]))
            row = {"tiled": args.tiled, "kind": kind, "seam": round(seam_strength(picture, reference), 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
