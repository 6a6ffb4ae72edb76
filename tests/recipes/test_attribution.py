"""Saliency, guided backprop, Grad-CAM and occlusion: the rules on small nets, then the maps on a real picture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from engine.callbacks import Progress
from engine.configs import compose
from engine.errors import UserError
from engine.images import colormap, load_image, resize_to
from engine.models import LOGITS, ModelView, load_model, packaged_weights
from engine.runner import run_recipe
from recipes.attribution import gradcam, guided, occlusion, rectifier_view, saliency


class LeftRed(nn.Module):
    """Class 0's logit is ten times the mean red of the picture's left half; class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = x[:, 0, :, : x.shape[-1] // 2].mean((1, 2)) * 10
        return torch.stack([left, torch.zeros_like(left)], dim=1)


def _identity_view(model: nn.Module, channels: int = 3) -> ModelView:
    return ModelView(model, ["red", "none"], name="toy", mean=(0.0,) * channels, std=(1.0,) * channels)


class Rectified(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("gradient", [0.0, 0.0, 2.0, -3.0, 0.0]),
        ("guided", [0.0, 0.0, 2.0, 0.0, 0.0]),
        ("deconvnet", [4.0, 5.0, 2.0, 0.0, 1.0]),
    ],
)
def test_rectifier_rules_pass_gradients_back_as_the_lectures_say(rule: str, expected: list[float]) -> None:
    view = _identity_view(Rectified(nn.ReLU6()), channels=5)
    copy = rectifier_view(view, rule)
    x = torch.tensor([-1.0, -2.0, 1.0, 3.0, 7.0]).view(1, 5, 1, 1).requires_grad_(True)
    upstream = torch.tensor([4.0, 5.0, 2.0, -3.0, 1.0]).view(1, 5, 1, 1)
    (grad,) = torch.autograd.grad((copy(x)[LOGITS] * upstream).sum(), x)
    assert grad.flatten().tolist() == expected
    assert isinstance(view.model.act, nn.ReLU6)  # the given model is not edited


def test_gradient_rule_matches_autograd_on_mobilenet() -> None:
    torch.manual_seed(0)
    view = load_model("mobilenet_v2", "none")
    x = torch.rand(1, 3, 48, 48)
    plain = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(view(plain)[LOGITS][0, 3], plain)
    scale = float(expected.abs().max())  # random weights give tiny gradients: compare relative to them
    assert (guided(view, x, 3, "gradient") - expected[0]).abs().max() < 1e-4 * scale
    assert (guided(view, x, 3, "guided") - expected[0]).abs().max() > 0.1 * scale
    assert all(not isinstance(m, nn.Module) or type(m).__name__ != "_Rectifier" for m in view.model.modules())


def test_rules_need_relu_modules() -> None:
    with pytest.raises(UserError, match="no ReLU modules"):
        rectifier_view(_identity_view(LeftRed()), "guided")
    with pytest.raises(UserError, match="rule=up is not known"):
        rectifier_view(_identity_view(Rectified(nn.ReLU())), "up")


def test_gradcam_at_the_last_conv_layer_is_cam(tiny: ModelView) -> None:
    """With global average pooling and a linear head, Grad-CAM's channel weights are the head's weights / (H·W)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    got = gradcam(tiny, x, 2, "features.5")
    with torch.no_grad():
        a = tiny(x, ["features.5"])["features.5"]
        weights = tiny.model.classifier.weight[2].view(1, -1, 1, 1)
        cam = (weights * a).sum(1, keepdim=True).relu()
        cam = nn.functional.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(got, cam / cam.max(), atol=1e-5)


def test_saliency_and_occlusion_find_the_part_that_decides() -> None:
    view = _identity_view(LeftRed())
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.2 + 0.8
    sal = saliency(view, x, 0)
    assert sal[:, 8:].max() == 0 and sal[:, :8].min() > 0
    smooth = saliency(view, x, 0, "smoothgrad", samples=8, generator=torch.Generator().manual_seed(0))
    assert smooth.shape == (16, 16)
    seen: list[tuple[int, int]] = []

    class Heard(Progress):
        def on_step(self, step: int, loss: torch.Tensor | None, image_fn: Callable[[], torch.Tensor]) -> None:
            seen.append((step + 1, self.steps))

    drop = occlusion(view, x, 0, patch=4, stride=4, batch=3, progress=Heard())
    assert drop[:, :8].min() > 0 and drop[:, 8:].abs().max() < 1e-6
    assert seen[-1] == (6, 6) and len(seen) == 6  # 16 places, three per pass
    uneven = occlusion(view, x, 0, patch=6, stride=4)  # starts 0, 4, 8 and one flush with the edge, 10
    assert uneven[:, :8].min() > 0  # the last rows and columns are scored too
    with pytest.raises(UserError, match="patch=40"):
        occlusion(view, x, 0, patch=40, stride=4)


def test_colormap_runs_from_dark_blue_to_red() -> None:
    ramp = colormap(torch.linspace(0, 1, 5).view(1, 5))
    assert ramp.shape == (3, 1, 5)
    assert ramp[2, 0, 0] > ramp[0, 0, 0] and ramp[0, 0, -1] > ramp[2, 0, -1]


# --- on the packaged MobileNetV2 ---


def _cat_on_grass(side: int = 224) -> torch.Tensor:
    """The sample cat in the left half, grass in the right half: where the cat is, is known."""
    cat = resize_to(load_image("chelsea"), (side, side // 2))
    grass = resize_to(load_image("grass"), (side, side // 2))
    return torch.cat([cat, grass], dim=-1)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = (t.flatten().argsort().argsort().double() for t in (a, b))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


@pytest.mark.slow
def test_gradcam_and_occlusion_point_at_the_cat_and_agree(mobilenet: ModelView) -> None:
    picture = _cat_on_grass()
    with torch.no_grad():
        target = int(mobilenet(picture)[LOGITS].argmax())
    assert "cat" in mobilenet.categories[target]
    cam = gradcam(mobilenet, picture, target, "features.18")
    drop = occlusion(mobilenet, picture, target, patch=64, stride=16, batch=64)
    for heat in (cam, drop.clamp_min(0)):
        assert heat[:, :112].sum() > 0.8 * heat.sum()
    assert _spearman(cam, drop) > 0.6  # measured 0.85 (0.77 on the whole cat picture)


@pytest.mark.slow
def test_guided_backprop_outlines_the_cat(mobilenet: ModelView) -> None:
    picture = _cat_on_grass()
    with torch.no_grad():
        target = int(mobilenet(picture)[LOGITS].argmax())
    energy = guided(mobilenet, picture, target).abs().sum(0)
    assert energy[:, :112].sum() > 0.8 * energy.sum()


def _run(tmp_path: Path, recipe: str, *overrides: str) -> dict[str, object]:
    size = [] if recipe == "filters" else ["size=96"]  # the filters are the layer's weights, of no picture's size
    cfg = compose([f"recipe={recipe}", "device=cpu", *size, *overrides])
    run_recipe(cfg, tmp_path, recipe)
    return json.loads((tmp_path / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "overrides", "shape"),
    [
        ("saliency", ["method=smoothgrad", "samples=4"], (1, 64, 96)),
        ("guided_backprop", ["cam_layer=features.14"], (1, 3, 64, 96)),
        ("guided_backprop", ["rule=deconvnet"], (1, 3, 64, 96)),
        ("gradcam", ["target=top3"], (3, 64, 96)),
        ("occlusion", ["patch=24", "stride=12", "target=tiger_cat"], (1, 64, 96)),
    ],
)
def test_analysis_recipes_write_picture_maps_and_metrics(
    tmp_path: Path, recipe: str, overrides: list[str], shape: tuple[int, ...]
) -> None:
    metrics = _run(tmp_path, recipe, *overrides)
    assert np.load(tmp_path / "maps.npy").shape == shape
    targets = metrics["targets"]
    assert isinstance(targets, list) and len(targets) == shape[0]
    if "target=tiger_cat" in overrides:
        assert targets[0]["class"] == "tiger cat"
    assert metrics["image_size"] == [64, 96]
    with Image.open(tmp_path / "image.png") as sheet:
        assert sheet.width > (shape[0] + 1) * 96  # the input, then one panel per class


@pytest.mark.slow
def test_rule_and_cam_layer_change_the_guided_map(tmp_path: Path) -> None:
    maps = {}
    for name, extra in {"guided": [], "deconvnet": ["rule=deconvnet"], "cam": ["cam_layer=features.14"]}.items():
        _run(tmp_path / name, "guided_backprop", *extra)
        maps[name] = np.load(tmp_path / name / "maps.npy")
    # deconvnet passes a gradient wherever it is positive, whatever the forward input was: another map
    assert float(np.abs(maps["guided"] - maps["deconvnet"]).mean()) > 0.1 * float(np.abs(maps["guided"]).mean())
    # guided Grad-CAM weighs the guided map by a class map in [0, 1] that is 1 only at its peak: never larger,
    # and smaller on the whole
    assert (np.abs(maps["cam"]) <= np.abs(maps["guided"]) + 1e-7).all()
    assert float(np.abs(maps["cam"]).mean()) < 0.9 * float(np.abs(maps["guided"]).mean())


# --- the model's insides: activations, filters, a layer atlas ---


def test_channel_lists() -> None:
    from objectives import channel_list

    assert channel_list("0:4") == [0, 1, 2, 3] and channel_list("2:8:3") == [2, 5]
    assert channel_list(7) == [7] and channel_list([1, 5]) == [1, 5]
    for bad in ("5:2", "a:b", "x", [-1]):
        with pytest.raises(UserError, match="picks no channels"):
            channel_list(bad)


@pytest.mark.slow
def test_activations_filters_and_atlas_recipes(tmp_path: Path) -> None:
    metrics = _run(tmp_path / "acts", "activations", "layer=features.3", "thumb=40")
    acts = np.load(tmp_path / "acts" / "activations.npy")
    assert acts.shape == (24, 16, 24) and metrics["shape"] == [24, 16, 24]
    with Image.open(tmp_path / "acts" / "image.png") as sheet:
        assert sheet.width >= 5 * 40  # 24 maps, five to a row, each enlarged to at least 40 pixels
    strongest = acts.mean(axis=(1, 2)).argsort()[::-1][:3].tolist()
    assert _run(tmp_path / "top", "activations", "layer=features.3", "top=3")["channels"] == strongest
    assert _run(tmp_path / "some", "activations", "layer=features.3", "channels=[5,2]")["channels"] == [5, 2]
    with Image.open(tmp_path / "some" / "image.png") as sheet:
        assert sheet.width < 5 * 40  # two maps, not 24
    _run(tmp_path / "filters", "filters")
    kernels = np.load(tmp_path / "filters" / "filters.npy")
    assert kernels.shape == (32, 3, 3, 3)
    trained = torch.load(packaged_weights(), map_location="cpu", weights_only=True)["features.0.0.weight"]
    assert np.allclose(kernels, trained.numpy())  # as trained: the batch norm is not folded into what is shown
    with Image.open(tmp_path / "filters" / "image.png") as sheet:  # every kernel at full contrast, 48-px tiles
        tiles = [np.asarray(sheet.crop((x, y, x + 48, y + 48)), float) for y in (2, 52) for x in (2, 52, 102)]
    assert all(np.abs(t - 127.5).max() > 120 for t in tiles)
    _run(tmp_path / "shared", "filters", "scale=shared")
    with Image.open(tmp_path / "shared" / "image.png") as sheet:
        tiles = [np.asarray(sheet.crop((x, y, x + 48, y + 48)), float) for y in (2, 52) for x in (2, 52, 102)]
    assert min(np.abs(t - 127.5).max() for t in tiles) < 100  # one scale: weak kernels stay near grey
    depthwise = _run(tmp_path / "depthwise", "filters", "layer=features.1.conv.0.0")  # 32 kernels of one channel each
    with Image.open(tmp_path / "depthwise" / "image.png") as sheet:
        assert depthwise["shown"] == [32, 1] and sheet.width == sheet.height  # a square grid, not a column
    assert _run(tmp_path / "cut", "filters", "layer=features.18.0")["shown"] == [64, 16]  # of 1280 x 320
    metrics = _run(tmp_path / "atlas", "layer_atlas", "channels=[3,5,9]", "size=48", "steps=4")
    assert "channels(features.10: [3, 5, 9])" in str(metrics["objective"])
    assert len(list((tmp_path / "atlas" / "images").glob("*.png"))) == 3
