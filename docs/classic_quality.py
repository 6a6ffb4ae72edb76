"""The classic class visualization (``recipe=class_classic``) against the notes' plain L2 version (the same recipe
with the periodic regularizers off), for 10 classes on MobileNetV2 at 224 px: how often the model still calls each
picture its class under 64 random crops-and-shifts (``docs/quality.py``), and its probability there; then the
flamingo of each, side by side, as ``docs/images/class_classic_pair.png``.

    .venv/bin/python docs/classic_quality.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from quality import class_robustness

from engine import api
from engine.export import contact_sheet
from engine.images import load_image
from engine.models import load_model

CLASSES = [1, 31, 107, 130, 323, 437, 949, 963, 980, 985]
OUT = Path("outputs/classic_quality")
PAIR = Path(__file__).resolve().parent / "images" / "class_classic_pair.png"
PLAIN = {key: None for key in ("blur", "decay", "clip_norm", "clip_contribution", "centre")}


def main() -> None:
    view = load_model("mobilenet_v2", "IMAGENET1K_V1")
    print(f"{'class':>5} {'plain hits':>10} {'p':>5} {'classic hits':>12} {'p':>5}")
    totals = {"plain": [0.0, 0.0], "classic": [0.0, 0.0]}
    for target in CLASSES:
        row = []
        for name, keys in (("plain", PLAIN), ("classic", {})):
            folder = OUT / f"{name}_{target}"
            if not (folder / "metrics.json").is_file():
                api.run("class_classic", out=folder, target=target, **keys)
            _, hits, p, _ = class_robustness(view, folder / "image.png", target)
            totals[name][0] += hits / len(CLASSES)
            totals[name][1] += p / len(CLASSES)
            row += [hits, p]
        print(f"{target:5d} {row[0]:10.2f} {row[1]:5.2f} {row[2]:12.2f} {row[3]:5.2f}", flush=True)
    print(json.dumps({k: [round(v, 3) for v in t] for k, t in totals.items()}))
    pair = torch.cat([load_image(OUT / f"{name}_130" / "image.png") for name in ("plain", "classic")])
    contact_sheet(pair, columns=2, labels=["plain L2", "class_classic"]).save(PAIR, optimize=True)
    print(f"wrote {PAIR}")


if __name__ == "__main__":
    main()
