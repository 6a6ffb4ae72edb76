"""The quality bar of the default recipes, measured on the packaged MobileNetV2 (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.images import load_image, resize_to
from engine.measures import seam_strength
from engine.models import ModelView
from engine.runner import run_recipe
from tests.helpers import compose_recipe

pytestmark = pytest.mark.slow


def _picture(path: Path) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def _random_views(img: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Random crops of 60-100 % of the side, shifted by up to 16 px, resized back."""
    g = torch.Generator().manual_seed(seed)
    h, w = img.shape[-2:]
    views = []
    for _ in range(n):
        side = int(h * (0.6 + 0.4 * torch.rand(1, generator=g).item()))
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        crop = img[..., top : top + side, left : left + side]
        shift = [int(s) for s in torch.randint(-16, 17, (2,), generator=g)]
        views.append(resize_to(torch.roll(crop, shifts=shift, dims=(-2, -1)), (h, w)))
    return torch.cat(views)


def _high_frequency_share(img: torch.Tensor) -> float:
    grey = img.mean(1)[0]
    power = torch.fft.fftshift(torch.fft.fft2(grey - grey.mean())).abs().square()
    h, w = power.shape
    fy = torch.linspace(-1, 1, h)[:, None]
    fx = torch.linspace(-1, 1, w)[None, :]
    high = (fy.square() + fx.square()).sqrt() > 0.5
    return float(power[high].sum() / power.sum())


def test_class_flamingo_is_a_flamingo_under_random_crops(tmp_path: Path, mobilenet: ModelView) -> None:
    run_recipe(compose_recipe("class", "target=flamingo", "device=cpu"), tmp_path, "class")
    views = _random_views(_picture(tmp_path / "image.png"), 32)
    with torch.no_grad():
        probs = mobilenet(views)["logits"].softmax(-1)
    hit_rate = float((probs.argmax(-1) == 130).float().mean())
    assert hit_rate >= 0.8, f"flamingo on {hit_rate:.0%} of crops"


def test_deepdream_adds_structure_everywhere_and_keeps_the_cat(tmp_path: Path) -> None:
    run_recipe(compose_recipe("deepdream", "device=cpu"), tmp_path, "deepdream")
    dream = _picture(tmp_path / "image.png")
    photo = resize_to(load_image("chelsea"), tuple(dream.shape[-2:]))  # type: ignore[arg-type]
    change = (dream - photo).abs().mean(1, keepdim=True)
    cells = F.adaptive_avg_pool2d(change, 3).flatten()
    assert float(cells.min()) > 0.015, "some part of the picture was left undreamed"  # measured 0.022-0.034
    coarse = [F.avg_pool2d(x, 8).flatten() for x in (dream, photo)]
    kept = F.cosine_similarity(*(c - c.mean() for c in coarse), dim=0)  # centred: other photos give -0.26 to 0.31
    assert float(kept) > 0.95, "the photo's large-scale layout was lost"  # measured 0.991

    def saturated(x: torch.Tensor) -> float:
        return float(((x <= 2 / 255) | (x >= 253 / 255)).any(1).float().mean())

    assert saturated(dream) < saturated(photo) + 0.02, "colours blew out"


def test_tiled_deepdream_matches_the_uncut_dream(tmp_path: Path, mobilenet: ModelView) -> None:
    """Cut into 128-px tiles at random offsets, the dream excites the layer as much as an uncut one, all over the
    picture, with no more seam than the uncut one (this is how 4K pictures fit in memory)."""
    photo = resize_to(load_image("chelsea"), (288, 448))
    energy, seams = {}, {}
    for tile in ("128", "null"):
        folder = tmp_path / tile
        overrides = ["size=[288,448]", "octaves=2", "steps=10", f"tile_size={tile}", "device=cpu"]
        run_recipe(compose_recipe("deepdream", *overrides), folder, "deepdream")
        dream = _picture(folder / "image.png")
        cells = F.adaptive_avg_pool2d((dream - photo).abs().mean(1, keepdim=True), (3, 4)).flatten()
        assert float(cells.min()) > 0.006, f"tile_size={tile}: some part of the picture was left undreamed"
        with torch.no_grad():
            energy[tile] = float(mobilenet(dream, ["features.10"])["features.10"].square().mean())
        seams[tile] = seam_strength(dream, photo)
    with torch.no_grad():
        start = float(mobilenet(photo, ["features.10"])["features.10"].square().mean())
    gained = {tile: e - start for tile, e in energy.items()}
    # measured: the tiled dream gains 0.45 where the uncut one gains 0.50
    assert gained["128"] > 0.75 * gained["null"], f"the tiled dream lags: {energy} from {start:.3f}"
    assert seams["128"] < 1.25 * seams["null"], f"tile edges show: {seams}"  # measured 2.2 against 2.5


def test_channel_picture_is_coherent_not_noise(tmp_path: Path) -> None:
    run_recipe(compose_recipe("channel", "device=cpu"), tmp_path, "channel")
    picture = _picture(tmp_path / "image.png")
    noise = torch.rand_like(picture)
    assert _high_frequency_share(picture) < 0.25 * _high_frequency_share(noise)
