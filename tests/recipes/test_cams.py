"""The CAM family and the saliency methods, each against a small case worked out with plain Python arithmetic from the
papers' formulas, then on the real MobileNetV2."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from engine.callbacks import Progress
from engine.errors import UserError
from engine.models import ModelView
from recipes.cams import CAM_METHODS, cam
from recipes.gradients import integrated_gradients, saliency

A = [[1.0, 3.0, 2.0], [2.0, 1.0, 3.0]]
"""The layer's map: two channels over a 1 x 3 picture (the layer is the picture itself)."""
V = [[1.0, -1.0, 2.0], [2.0, 0.0, -1.0]]
"""Class 0's logit is sum(V * map), so its gradient at the layer is V; class 1's logit is 0."""


class Weighed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.register_buffer("v", torch.tensor(V).view(1, 2, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (self.features(x) * self.v).sum((1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def _view(model: nn.Module, channels: int) -> ModelView:
    return ModelView(model, ["zero", "one"], name="toy", mean=(0.0,) * channels, std=(1.0,) * channels)


def _finish(values: list[float]) -> list[float]:
    """Rectify and divide by the maximum, as every CAM ends."""
    kept = [max(0.0, v) for v in values]
    return [v / max(kept) for v in kept]


def _combine(weights: list[float]) -> list[float]:
    return _finish([sum(weights[k] * A[k][i] for k in range(2)) for i in range(3)])


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _worked() -> dict[str, list[float]]:
    n = 3
    mean_grad = [sum(V[k]) / n for k in range(2)]
    x_weights = [sum(V[k][i] * A[k][i] for i in range(n)) / sum(A[k]) for k in range(2)]
    plus = []
    for k in range(2):
        total = 0.0
        for i in range(n):
            g = V[k][i]
            denom = 2 * g * g + sum(A[k]) * g**3
            alpha = g * g / denom if denom != 0 else 0.0
            total += alpha * max(g, 0.0)
        plus.append(total)
    masks = [[(a - min(A[k])) / (max(A[k]) - min(A[k])) for a in A[k]] for k in range(2)]
    masked = [sum(V[c][i] * A[c][i] * masks[k][i] for c in range(2) for i in range(n)) for k in range(2)]
    score = [_sigmoid(z) - _sigmoid(0.0) for z in masked]  # softmax over (logit, 0); the black picture scores 0.5
    full = sum(V[c][i] * A[c][i] for c in range(2) for i in range(n))
    ablated = [(full - (full - sum(V[k][i] * A[k][i] for i in range(n)))) / abs(full) for k in range(2)]
    return {
        "gradcam": _combine(mean_grad),
        "hirescam": _finish([sum(V[k][i] * A[k][i] for k in range(2)) for i in range(n)]),
        "xgradcam": _combine(x_weights),
        "layercam": _finish([sum(max(V[k][i], 0.0) * A[k][i] for k in range(2)) for i in range(n)]),
        "gradcam++": _combine(plus),
        "scorecam": _combine(score),
        "ablationcam": _combine(ablated),
    }


@pytest.mark.parametrize("method", [m for m in CAM_METHODS if m != "eigencam"])
def test_each_cam_method_matches_its_formula_worked_by_hand(method: str) -> None:
    view = _view(Weighed(), 2)
    picture = torch.tensor(A).view(1, 2, 1, 3)
    got = cam(view, picture, 0, "features", method, batch=1)
    assert got.flatten().tolist() == pytest.approx(_worked()[method], abs=1e-5)


@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_the_methods_that_ask_the_model_again_tell_each_batch(method: str) -> None:
    """Score-CAM and Ablation-CAM make one pass per batch of channels; the bar hears of each (two channels, batch 1)."""
    told = io.StringIO()
    view, picture = _view(Weighed(), 2), torch.tensor(A).view(1, 2, 1, 3)
    got = cam(view, picture, 0, "features", method, batch=1, progress=Progress("cam ", stream=told))
    assert got.flatten().tolist() == pytest.approx(_worked()[method], abs=1e-5)  # the bar changes nothing
    assert told.getvalue().splitlines()[-1].startswith("cam [") and " 2/2 " in told.getvalue()


def test_eigencam_is_the_first_principal_axis_with_the_activation_s_sign() -> None:
    # the places (1, 2), (3, 1), (2, 4), centred on (2, 7/3), have covariance [[2, -1], [-1, 42/9]]: eigenvalues 5 and
    # 5/3, the first axis (1, -3)/sqrt(10). The centred places project to (0, 5, -5)/sqrt(10), which runs against
    # their totals (3, 4, 6), so the sign flips: (0, -5, 5) -> (0, 0, 1) once below zero is cut.
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x).sum((2, 3))

    got = cam(
        _view(Plain(), 2), torch.tensor([[1.0, 3.0, 2.0], [2.0, 1.0, 4.0]]).view(1, 2, 1, 3), 0, "features", "eigencam"
    )
    assert got.flatten().tolist() == pytest.approx([0.0, 0.0, 1.0], abs=1e-5)


def test_gradcam_plus_plus_keeps_small_gradients() -> None:
    """Its weights g^2 / (2 g^2 + sum(A) g^3) = 1 / (2 + sum(A) g): gradients of 1e-4 (a pooled head's size) count."""

    class Faint(Weighed):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 1e-4

    got = cam(_view(Faint(), 2), torch.tensor(A).view(1, 2, 1, 3), 0, "features", "gradcam++")
    weights = [sum(max(g, 0.0) / (2 + sum(A[k]) * g) for g in (1e-4 * v for v in V[k])) for k in range(2)]
    assert got.flatten().tolist() == pytest.approx(_combine(weights), abs=1e-4)


def test_blur_baseline_fits_any_picture_shape() -> None:
    from recipes.gradients import baseline_picture

    for shape in ((1, 3, 1, 1), (1, 3, 16, 224), (1, 3, 224, 16)):
        picture = torch.rand(shape)
        blurred = baseline_picture(picture, "blur")
        assert blurred.shape == picture.shape
        if min(shape[-2:]) > 1:  # blurred: its neighbours closer (noise of spread 0.29 falls far)
            assert float(blurred.diff(dim=-1).abs().mean()) < 0.5 * float(picture.diff(dim=-1).abs().mean())


def test_cam_methods_differ_on_the_worked_case() -> None:
    worked = _worked()
    assert len({tuple(round(v, 4) for v in m) for m in worked.values()}) >= 5  # the case tells the methods apart


def test_unknown_method_is_one_line() -> None:
    with pytest.raises(UserError, match="method=gradcam3 is not a CAM method"):
        cam(_view(Weighed(), 2), torch.tensor(A).view(1, 2, 1, 3), 0, "features", "gradcam3")


class Squares(nn.Module):
    """Class 0's logit is the sum of the squared pixels; class 1's is twice the first channel's sum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.pow(2).sum((1, 2, 3)), 2 * x[:, 0].sum((1, 2))], dim=1)


def test_saliency_methods_on_known_gradients() -> None:
    view = _view(Squares(), 3)
    x = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    # the gradient is 2x: its largest colour per pixel
    assert torch.allclose(saliency(view, x, 0, "gradient"), (2 * x[0]).amax(0), atol=1e-6)
    # picture x gradient, summed over colours: 2 x^2
    assert torch.allclose(saliency(view, x, 0, "inputxgrad"), (2 * x[0].pow(2)).sum(0), atol=1e-6)
    # Integrated Gradients from black: x * mean over the path of 2 a x = x^2 (the midpoints' mean a is 1/2)
    assert torch.allclose(saliency(view, x, 0, "integrated", steps=3), x[0].pow(2).sum(0), atol=1e-6)
    # from white: (x - 1) * mean of 2 (1 + a (x - 1)) = (x - 1)(x + 1) = x^2 - 1, the score's change per pixel
    from_white = saliency(view, x, 0, "integrated", steps=3, baseline="white")
    assert torch.allclose(from_white, (x[0].pow(2) - 1).sum(0), atol=1e-5)
    # a linear score's gradient does not move under noise: SmoothGrad is the plain map, VarGrad is zero
    flat = saliency(view, x, 1, "smoothgrad", samples=6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(flat, torch.full((4, 5), 2.0), atol=1e-6)
    assert saliency(view, x, 1, "vargrad", samples=6, generator=torch.Generator().manual_seed(1)).abs().max() < 1e-5
    # for the squares the noise moves the gradient 2 * noise: its variance is 4 (sigma * range)^2
    spread = 0.15 * float(x.max() - x.min())
    var = saliency(view, x, 0, "vargrad", samples=400, generator=torch.Generator().manual_seed(2))
    assert float(var.mean()) == pytest.approx(4 * spread**2 * 1.1, rel=0.25)  # the largest of 3 colours: ~1.1x
    with pytest.raises(UserError, match="method=sobel is not a saliency method"):
        saliency(view, x, 0, "sobel")


def test_integrated_gradients_add_up_to_the_score_change(mobilenet: ModelView) -> None:
    from engine.images import load_image, resize_to

    x = resize_to(load_image("chelsea"), (128, 128))
    attributions = integrated_gradients(mobilenet, x, 285, steps=64, baseline="blur")
    from recipes.gradients import baseline_picture, score

    with torch.no_grad():
        change = float(score(mobilenet, x, 285) - score(mobilenet, baseline_picture(x, "blur"), 285))
    assert abs(change) > 1  # the blur takes the cat away: the sum checked below is not a sum of nothing
    assert float(attributions.sum()) == pytest.approx(change, rel=0.05)
    with pytest.raises(UserError, match="baseline=sky"):
        integrated_gradients(mobilenet, x, 285, baseline="sky")


@pytest.fixture(scope="module")
def cat_and_cup() -> torch.Tensor:
    """The sample cat on the left, the sample espresso on the right, each 96 px square."""
    from engine.images import load_image, resize_to

    return torch.cat([resize_to(load_image(n), (96, 96)) for n in ("chelsea", "coffee")], dim=-1)


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in CAM_METHODS if m != "eigencam"])
def test_every_class_cam_points_at_its_class(mobilenet: ModelView, cat_and_cup: torch.Tensor, method: str) -> None:
    halves = {}
    for target in (285, 967):  # Egyptian cat, espresso
        heat = cam(mobilenet, cat_and_cup, target, "features.18", method, batch=128)
        assert heat.shape == (96, 192) and float(heat.max()) == pytest.approx(1.0)
        halves[target] = (float(heat[:, :96].sum()), float(heat[:, 96:].sum()))
    assert halves[285][0] > halves[285][1] and halves[967][1] > halves[967][0]
