"""Measure style transfer on the packaged MobileNetV2 with judges the optimization never saw.

Four content/style pairs of different characters: dark and sparse (astronaut, hubble_deep_field), bright and busy
(chelsea, ihc), brush strokes (grace_hopper, strokes) and a flat graphic (coffee, logo). For each pair and variant
it prints
  - style distance by three judges, each divided by the content photo's own distance to the style (0: the style's
    statistics; 1: no closer than the photo): ``color``, :func:`engine.measures.color_distance` (colour histograms);
    ``texture``, :func:`engine.measures.texture_distance` (oriented filter statistics, no network); ``vgg``, the
    Gram-matrix distance on a VGG19 with fixed random weights (relu1_1 … relu4_1).
  - content distance: features.13 of the result against the content, divided by the style picture's own.
  - grid: :func:`engine.measures.grid_strength` (the content photo's own value is printed alongside).
  - seconds of optimization.

Run from the repository root; pictures go to outputs/style_quality/ and, with --docs, as thumbnails (with the
samples) to docs/images/::

    .venv/bin/python docs/style_quality.py --size 512 --docs
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path

import torch
from make_gallery import IMAGES, thumbnail
from PIL import Image, ImageDraw

from engine.configs import compose
from engine.images import load_image, resize_long, to_pil
from engine.measures import color_distance, feature_distance, grid_strength, style_distance, texture_distance
from engine.models import load_model
from engine.runner import run_recipe

ROOT = Path(__file__).resolve().parent.parent
NAIVE = [
    "style_layers=[features.1,features.3,features.6,features.10,features.13]",
    "smoothing=none",
    "transforms=none",
    "octaves=1",
    "steps=300",
]
VARIANTS = {"naive": NAIVE, "default": []}
PAIRS = [("astronaut", "hubble_deep_field"), ("chelsea", "ihc"), ("grace_hopper", "strokes"), ("coffee", "logo")]
VGG_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


def render(content: str, style: str, overrides: list[str], folder: Path) -> dict[str, object]:
    cfg = compose(["recipe=style", f"content={content}", f"style=[{style}]", *overrides])
    return run_recipe(cfg, folder, "style").metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--docs", action="store_true", help="copy the pictures to docs/images/ at 256 px")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the sample pairs to run")
    parser.add_argument("--skip", type=int, default=0, help="leave out this many pairs at the start")
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=override,override ... instead of naive and default"
    )
    parser.add_argument(
        "--sheet", help="FILE=VARIANT:CAPTION,... : no runs; the pairs beside saved variants, as docs/images/FILE"
    )
    args = parser.parse_args(argv)
    if args.sheet:
        name, columns = args.sheet.split("=", 1)
        sheet(IMAGES / name, [tuple(c.split(":", 1)) for c in columns.split(",")], ROOT / "outputs" / "style_quality")
        return
    variants = VARIANTS
    if args.variant:
        variants = {
            v.split("=", 1)[0]: [o for o in re.split(r",(?![^\[]*\])", v.split("=", 1)[1]) if o] for v in args.variant
        }
    torch.manual_seed(0)
    vgg = load_model("vgg19", "none")
    mnet = load_model("mobilenet_v2", "IMAGENET1K_V1")
    out_root = ROOT / "outputs" / "style_quality"
    out_root.mkdir(parents=True, exist_ok=True)
    rows = []
    for content_name, style_name in PAIRS[args.skip : args.pairs]:
        photo = load_image(content_name)
        photo = resize_long(photo, args.size)
        style = load_image(style_name)
        style = resize_long(style, args.size)
        if args.docs:
            for name, picture in ((content_name, photo), (style_name, style)):
                to_pil(picture).save(out_root / f"{name}.png")
                thumbnail(out_root / f"{name}.png", IMAGES / f"sample_{name}.png")
        judges = {
            "color": lambda x, s=style: color_distance(x, s),
            "texture": lambda x, s=style: texture_distance(x, s),
            "vgg": lambda x, s=style: style_distance(vgg, VGG_LAYERS, x, s),
        }
        base = {name: judge(photo) for name, judge in judges.items()}
        base_content = feature_distance(mnet, "features.13", style, photo)
        for variant, overrides in variants.items():
            folder = Path(tempfile.mkdtemp(dir=out_root))
            metrics = render(content_name, style_name, [f"size={args.size}", *overrides], folder)
            result = load_image(folder / "image.png")
            row = {
                "content": content_name,
                "style": style_name,
                "variant": variant,
                **{name: round(judge(result) / base[name], 3) for name, judge in judges.items()},
                "content_distance": round(feature_distance(mnet, "features.13", result, photo) / base_content, 3),
                "grid": round(grid_strength(result), 1),
                "grid_of_content": round(grid_strength(photo), 1),
                "seconds": metrics["seconds"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            final = out_root / f"{content_name}_{style_name}_{variant}.png"
            shutil.copy(folder / "image.png", final)
            shutil.rmtree(folder)
            if args.docs:
                thumbnail(final, IMAGES / f"style_{content_name}_{style_name}_{variant}.png")
    (out_root / "table.json").write_text(json.dumps(rows, indent=1))


def sheet(out: Path, variants: list[tuple[str, ...]], folder: Path, cell: int = 180) -> None:
    """One row per pair that has every variant saved: the content, the style, then each saved ``(variant, caption)``
    picture, squeezed to square cells of ``cell`` pixels under a caption strip."""
    strip = 16
    columns = [("", "content"), ("", "style"), *variants]
    pairs = [(c, s) for c, s in PAIRS if all((folder / f"{c}_{s}_{v}.png").exists() for v, _ in variants)]
    canvas = Image.new("RGB", (cell * len(columns), strip + cell * len(pairs)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (_, caption) in enumerate(columns):
        draw.text((c * cell + 4, 2), caption, fill="black")
    for r, (content, style) in enumerate(pairs):
        for c, (variant, _) in enumerate(columns):
            path = folder / (f"{content}_{style}_{variant}.png" if variant else "")
            picture = to_pil(load_image(path if variant else (content, style)[c]))
            canvas.paste(picture.resize((cell, cell), Image.Resampling.LANCZOS), (c * cell, strip + r * cell))
    full = folder / out.name
    canvas.save(full)
    thumbnail(full, out, side=max(canvas.size), max_bytes=400_000)


if __name__ == "__main__":
    main()
