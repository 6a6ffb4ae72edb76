"""Layers read on shrunk copies of the picture (``layer@2``), as the style pyramid asks for them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.models import load_model
from engine.scales import at_scale, pyramid, read, shrink, split_scale


def test_names_carry_their_factor_and_plain_names_stay_plain() -> None:
    assert split_scale("features.4.conv.0@2") == ("features.4.conv.0", 2)
    assert split_scale("features.4.conv.0") == ("features.4.conv.0", 1)
    for odd in ("a@b", "a@0", "a@", "@"):  # not a factor: the name as it is, which the model then checks
        assert split_scale(odd) == (odd, 1)
    assert at_scale("relu1_1", 1) == "relu1_1" and split_scale(at_scale("relu1_1", 4)) == ("relu1_1", 4)


def test_shrink_averages_areas() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(shrink(x, 1), x)
    assert torch.allclose(shrink(x, 2), F.avg_pool2d(x, 2))
    assert shrink(torch.zeros(1, 3, 33, 50), 4).shape[-2:] == (8, 12)


def test_read_runs_each_scale_once_and_passes_gradients() -> None:
    torch.manual_seed(0)
    view = load_model("mobilenet_v2", "none")
    calls: list[tuple[tuple[int, ...], list[str]]] = []

    def model(x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        calls.append((tuple(x.shape[-2:]), layers))
        return view(x, layers)

    picture = torch.rand(1, 3, 64, 96, requires_grad=True)
    acts = read(model, picture, ["features.2", "features.4@2", "features.2@2"])
    assert calls == [((64, 96), ["features.2"]), ((32, 48), ["features.4", "features.2"])]
    with torch.no_grad():
        half = view(F.avg_pool2d(picture, 2), ["features.4"])["features.4"]
    assert torch.allclose(acts["features.4@2"], half, atol=1e-5)
    assert acts["features.2@2"].shape[-1] * 2 == acts["features.2"].shape[-1]
    acts["features.4@2"].square().mean().backward()
    assert picture.grad is not None and float(picture.grad.abs().sum()) > 0


def test_the_pyramid_adds_levels_while_the_copies_stay_large_enough() -> None:
    layers = ["features.0", "features.4.conv.0"]
    named, weights = pyramid(layers, None, 3, 341)
    assert named == [*layers, "features.0@2", "features.4.conv.0@2", "features.0@4", "features.4.conv.0@4"]
    assert weights is None
    named, weights = pyramid(layers, [2.0, 1.0], 5, 90)  # 45 px at half size, 22 at a quarter: too small
    assert named == [*layers, "features.0@2", "features.4.conv.0@2"]
    assert weights == {"features.0": 2.0, "features.4.conv.0": 1.0, "features.0@2": 2.0, "features.4.conv.0@2": 1.0}
    assert pyramid(layers, None, 1, 1024)[0] == layers
    assert pyramid(layers, None, 3, 63)[0] == layers  # 31 px at half size
