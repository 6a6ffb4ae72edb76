"""Input gradients of a class score: plain, through rectifiers that follow a rule (guided backprop, deconvnet), and
averaged over moved or noisy copies of the picture (SmoothGrad, and the shift average against the stride grid).

Every function takes a :class:`~engine.models.ModelView` and a picture in [0, 1] of shape ``(1, 3, H, W)``; none
changes the model it is given.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from engine.errors import UserError
from engine.models import LOGITS, ModelView

__all__ = [
    "BASELINES",
    "RULES",
    "SALIENCY_METHODS",
    "baseline_picture",
    "guided",
    "input_gradient",
    "integrated_gradients",
    "rectifier_view",
    "saliency",
    "score",
    "shifted_gradients",
]

GRADIENT_BATCH = 8
"""Moved or noisy copies of a picture sent through the model at once."""
RULES = ("gradient", "guided", "deconvnet")
"""How gradients pass a ReLU on the way back: as the chain rule says; only where both the forward input and the
gradient are positive (guided backprop, Springenberg et al., 2015); only where the gradient is positive, whatever
the forward input was (deconvnet, Zeiler & Fergus, 2014)."""


def score(view: ModelView, x: torch.Tensor, target: int) -> torch.Tensor:
    return view(x, [LOGITS])[LOGITS][:, target].sum()


SALIENCY_METHODS = ("gradient", "smoothgrad", "vargrad", "inputxgrad", "integrated")
"""What ``saliency(method=)`` computes; see :func:`saliency`."""
BASELINES = ("black", "grey", "white", "blur")
"""The pictures Integrated Gradients can start its path from."""


def saliency(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    method: str = "gradient",
    samples: int = 25,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
    shifts: int = 1,
    steps: int = 32,
    baseline: str = "black",
) -> torch.Tensor:
    """A map of how much each pixel counts for the class logit, by ``method``:

    - ``gradient``: ``|∂ logit / ∂ pixel|``, the largest over the colour channels (Simonyan et al., 2014);
    - ``smoothgrad``: that, averaged over ``samples`` noisy copies of the picture, the noise's spread ``sigma``
      times the picture's range (Smilkov et al., 2017);
    - ``vargrad``: the gradient's variance over those noisy copies, largest over colours (Adebayo et al., 2018);
    - ``inputxgrad``: picture times gradient, summed over colours (Shrikumar et al., 2016); signed;
    - ``integrated``: Integrated Gradients (Sundararajan et al., 2017) along ``steps`` points of the straight path
      from a ``baseline`` picture, summed over colours; signed, and its sum is the logit's change along the path.

    ``shifts`` > 1 averages the plain gradient over moved copies (:func:`shifted_gradients`). Shape: ``(H, W)``.
    """
    largest = lambda g: g.abs().amax(1, keepdim=True)  # noqa: E731
    if method == "gradient":
        return shifted_gradients(view, picture, target, shifts, reduce=largest)[0]
    if method == "smoothgrad":
        return shifted_gradients(view, picture, target, shifts, max(1, samples), sigma, generator, largest)[0]
    if method == "vargrad":
        both = shifted_gradients(
            view, picture, target, shifts, max(2, samples), sigma, generator, lambda g: torch.cat([g, g * g], 1)
        )
        return (both[3:] - both[:3].pow(2)).clamp_min(0).amax(0)
    if method == "inputxgrad":
        return (picture[0].to(view.device) * shifted_gradients(view, picture, target, shifts)).sum(0)
    if method == "integrated":
        return integrated_gradients(view, picture, target, steps, baseline).sum(0)
    raise UserError(f"method={method} is not a saliency method; use one of {', '.join(SALIENCY_METHODS)}")


def baseline_picture(picture: torch.Tensor, baseline: str) -> torch.Tensor:
    """The start of Integrated Gradients' path: a flat picture, or the picture blurred past recognition."""
    flat = {"black": 0.0, "grey": 0.5, "white": 1.0}
    if baseline in flat:
        return torch.full_like(picture, flat[baseline])
    if baseline == "blur":
        sigma = max(picture.shape[-2:]) / 16
        side = min(2 * math.ceil(2 * sigma) + 1, 2 * min(picture.shape[-2:]) - 1)  # reflection needs a wider side
        return gaussian_blur(picture, [side, side], [sigma, sigma])
    raise UserError(f"baseline={baseline} is not known; use one of {', '.join(BASELINES)}")


def integrated_gradients(
    view: ModelView, picture: torch.Tensor, target: int, steps: int = 32, baseline: str = "black"
) -> torch.Tensor:
    """``(x - x0) ·`` the mean gradient at ``steps`` midpoints of the path from ``x0`` (the ``baseline`` picture)
    to ``x``. Shape: ``(1, 3, H, W) -> (3, H, W)``; summed, it is ``logit(x) - logit(x0)`` up to the midpoint rule's
    error."""
    if steps < 1:
        raise UserError(f"steps={steps} is not valid; Integrated Gradients needs at least 1 step (32 is usual)")
    x = picture.to(view.device)
    start = baseline_picture(x, baseline)
    alphas = (torch.arange(steps, device=x.device, dtype=x.dtype) + 0.5) / steps
    total = torch.zeros_like(x)
    for part in alphas.split(GRADIENT_BATCH):
        batch = (start + part.view(-1, 1, 1, 1) * (x - start)).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(score(view, batch, target), batch)
        total += grad.sum(0, keepdim=True)
    return ((x - start) * total / steps)[0]


def shifted_gradients(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    shifts: int = 1,
    samples: int = 0,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] = lambda g: g,
) -> torch.Tensor:
    """The mean of ``reduce(∂ logit / ∂ copy)`` over copies of the picture, each moved back into place.

    The copies are the picture moved by every offset of 0 … ``shifts``-1 pixels down and right (edges reflected),
    ``shifts``² of them, or ``samples`` copies with Gaussian noise cycling through those offsets. Stride-2 layers
    print their grid into a single gradient at a fixed phase; moved copies put it at every phase, so the average
    keeps the picture's edges and loses the grid. Shape: ``(1, 3, H, W) -> (C, H, W)``, C as ``reduce`` leaves it.
    """
    n, (h, w) = max(1, shifts), picture.shape[-2:]
    pad = n - 1
    x = picture.to(view.device)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
    count = samples if samples > 0 else n * n
    offsets = [(k // n % n, k % n) for k in range(count)]
    noise = torch.randn((samples, *x.shape[1:]), generator=generator).to(x.device) if samples > 0 else None
    acc = hits = None
    for start in range(0, count, GRADIENT_BATCH):
        part = offsets[start : start + GRADIENT_BATCH]
        batch = torch.cat([padded[..., dy : dy + h, dx : dx + w] for dy, dx in part])
        if noise is not None:
            batch = batch + sigma * (x.max() - x.min()) * noise[start : start + len(part)]
        batch = batch.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(score(view, batch, target), batch)
        per = reduce(grad)
        if acc is None or hits is None:
            acc = per.new_zeros(per.shape[1], h + 2 * pad, w + 2 * pad)
            hits = per.new_zeros(1, h + 2 * pad, w + 2 * pad)
        for k, (dy, dx) in enumerate(part):
            acc[:, dy : dy + h, dx : dx + w] += per[k]
            hits[:, dy : dy + h, dx : dx + w] += 1
    assert acc is not None and hits is not None
    return (acc / hits.clamp_min(1))[:, pad : pad + h, pad : pad + w]


class _Rectify(torch.autograd.Function):
    """``clamp(x, 0, high)`` whose backward pass follows one of :data:`RULES`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, high: float, rule: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.high, ctx.rule = high, rule
        return x.clamp(0, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        passed = (x > 0) & (x < ctx.high)
        if ctx.rule == "deconvnet":
            return grad.clamp_min(0), None, None
        if ctx.rule == "guided":
            return grad.clamp_min(0) * passed, None, None
        return grad * passed, None, None


class _Rectifier(nn.Module):
    def __init__(self, high: float, rule: str) -> None:
        super().__init__()
        self.high, self.rule = high, rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Rectify.apply(x, self.high, self.rule)  # type: ignore[no-any-return]


def rectifier_view(view: ModelView, rule: str) -> ModelView:
    """A copy of ``view`` whose ``ReLU`` and ``ReLU6`` modules pass gradients back by ``rule``; ``view`` is left as
    it is. Raises :class:`UserError` when the model has no such modules (its rectifiers are functional calls)."""
    if rule not in RULES:
        raise UserError(f"rule={rule} is not known; use one of {', '.join(RULES)}")
    model = copy.deepcopy(view.model)
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6 | nn.ReLU):
                setattr(parent, name, _Rectifier(6.0 if isinstance(child, nn.ReLU6) else math.inf, rule))
                swapped += 1
    if swapped == 0:
        raise UserError(
            f"model {view.name} has no ReLU modules to apply the {rule} rule to; use model=mobilenet_v2, vgg16 or "
            "resnet18"
        )
    mean, std = view.mean.flatten().tolist(), view.std.flatten().tolist()
    out = ModelView(model, view.categories, view.name, view.aliases, mean, std, view.layout).to(view.device)
    return out.channels_last() if view.is_channels_last else out


def input_gradient(view: ModelView, picture: torch.Tensor, target: int, shifts: int = 1) -> torch.Tensor:
    """``∂ logit[target] / ∂ picture`` through ``view`` as it is, averaged over ``shifts``² moved copies when
    ``shifts`` > 1 (:func:`shifted_gradients`). Shape: ``(1, 3, H, W) -> (3, H, W)``."""
    return shifted_gradients(view, picture, target, shifts)


def guided(view: ModelView, picture: torch.Tensor, target: int, rule: str = "guided") -> torch.Tensor:
    """The input gradient of the class logit through rectifiers that follow ``rule``. Shape: ``(3, H, W)``.

    Each call copies the model; for several classes make :func:`rectifier_view` once and use :func:`input_gradient`.
    """
    return input_gradient(rectifier_view(view, rule), picture, target)
