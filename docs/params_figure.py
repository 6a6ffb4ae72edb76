"""The picture of ``docs/parameterizations.md``: the gallery's flamingo with ``param=fft``, ``maco`` and ``cppn``,
and its transparent neuron over the checkerboard, side by side at 224 px.

    .venv/bin/python docs/make_gallery.py class class_maco class_cppn neuron_alpha
    .venv/bin/python docs/params_figure.py
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.export import contact_sheet
from engine.images import load_image, resize_to

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "outputs" / "gallery"
SHOWN = {
    "param=fft": RUNS / "class" / "image.png",
    "param=maco": RUNS / "class_maco" / "image.png",
    "param=cppn": RUNS / "class_cppn" / "image.png",
    "param=alpha": RUNS / "neuron_alpha" / "on_checkerboard.png",
}


def main() -> None:
    pictures = torch.cat([resize_to(load_image(path), (224, 224)) for path in SHOWN.values()])
    out = ROOT / "docs" / "images" / "parameterizations.png"
    contact_sheet(pictures, columns=len(SHOWN), labels=list(SHOWN)).save(out, optimize=True)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
