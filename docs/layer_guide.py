"""Make the picture of docs/layers.md: the first channels of MobileNetV2 blocks, shallow to deep, one row per block.

Each row is ``dreamloom recipe=layer_atlas layer=LAYER channels=0:6 size=112``, run through the real command; the
rows are stacked with their layer names and receptive fields into ``docs/images/layers_shallow_to_deep.png``.

    .venv/bin/python docs/layer_guide.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from engine.layers import receptive_field
from engine.models import load_model

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("features.2", "features.4", "features.7", "features.10", "features.14", "features.17")
CHANNELS, SIDE, LABEL = 6, 112, 150


def row(layer: str) -> Image.Image:
    """The atlas of ``layer``'s first channels, through the command line."""
    folder = ROOT / "outputs" / "layer_guide" / layer
    keys = ["recipe=layer_atlas", f"layer={layer}", f"channels=0:{CHANNELS}", f"size={SIDE}", "snapshot_every=0"]
    subprocess.run([sys.executable, "-m", "engine", *keys, f"hydra.run.dir={folder}"], cwd=ROOT, check=True)
    images = sorted((folder / "images").glob("*.png"))
    strip = Image.new("RGB", (LABEL + CHANNELS * SIDE, SIDE), "white")
    for i, path in enumerate(images[:CHANNELS]):
        with Image.open(path) as picture:
            strip.paste(picture.convert("RGB").resize((SIDE, SIDE)), (LABEL + i * SIDE, 0))
    return strip


def main() -> None:
    view = load_model("mobilenet_v2", None, fold=False)
    strips = []
    for layer in LAYERS:
        strip = row(layer)
        draw = ImageDraw.Draw(strip)
        draw.text((8, SIDE // 2 - 14), layer, fill="black")
        draw.text((8, SIDE // 2 + 2), f"field {receptive_field(view, layer)[0]} px", fill="black")
        strips.append(strip)
    sheet = Image.new("RGB", (strips[0].width, SIDE * len(strips)), "white")
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, i * SIDE))
    out = ROOT / "docs" / "images" / "layers_shallow_to_deep.png"
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
