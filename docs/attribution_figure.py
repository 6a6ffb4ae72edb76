"""The picture of ``docs/attribution.md``: every CAM method (at ``features.18``) and every saliency method on the
sample cat, for MobileNetV2's top class, each map over the photo at its own 99.5th percentile.

    .venv/bin/python docs/attribution_figure.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from engine.export import contact_sheet
from engine.images import colormap, load_image, resize_to
from engine.models import LOGITS, load_model
from recipes.cams import CAM_METHODS, cam
from recipes.gradients import SALIENCY_METHODS, saliency

ROOT = Path(__file__).resolve().parent.parent


def _panel(picture: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    shown = (heat / torch.quantile(heat.flatten(), 0.995).clamp_min(1e-12)).clamp(0, 1)
    return 0.45 * picture[0] + 0.55 * colormap(shown)


def main() -> None:
    view = load_model("mobilenet_v2", "IMAGENET1K_V1")
    picture = resize_to(load_image("chelsea"), (224, 224))
    with torch.no_grad():
        target = int(view(picture)[LOGITS][0].argmax())
    panels, labels = [picture[0]], [view.categories[target]]
    for method in CAM_METHODS:
        heat = cam(view, picture, target, "features.18", method, batch=64)
        panels.append(_panel(picture, heat))
        labels.append(method)
    for method in SALIENCY_METHODS:
        heat = saliency(view, picture, target, method, shifts=4 if method == "gradient" else 1).abs()
        panels.append(_panel(picture, heat))
        labels.append(method)
    out = ROOT / "docs" / "images" / "attribution_methods.png"
    sheet = contact_sheet(torch.stack(panels), columns=7, labels=labels)
    sheet.resize((1200, round(sheet.height * 1200 / sheet.width)), Image.Resampling.LANCZOS).save(out, optimize=True)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
