"""Where a classifier looks: gradient saliency (with SmoothGrad), guided backprop and deconvnet, Grad-CAM and
occlusion maps, each for one class of one picture.

Every function takes a :class:`~engine.models.ModelView` and a picture in [0, 1] of shape ``(1, 3, H, W)`` and
returns a map at the picture's size; none changes the model it is given.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.callbacks import Progress
from engine.errors import UserError
from engine.models import LOGITS, ModelView

__all__ = ["RULES", "conv_layer", "gradcam", "guided", "input_gradient", "occlusion", "rectifier_view", "saliency"]

RULES = ("gradient", "guided", "deconvnet")
"""How gradients pass a ReLU on the way back: as the chain rule says; only where both the forward input and the
gradient are positive (guided backprop, Springenberg et al., 2015); only where the gradient is positive, whatever
the forward input was (deconvnet, Zeiler & Fergus, 2014)."""


def _score(view: ModelView, x: torch.Tensor, target: int) -> torch.Tensor:
    return view(x, [LOGITS])[LOGITS][:, target].sum()


def saliency(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    samples: int = 0,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``|∂ logit / ∂ pixel|``, the largest over the colour channels (Simonyan et al., 2014).

    With ``samples > 0`` it is SmoothGrad (Smilkov et al., 2017): the mean over noisy copies of the picture, the
    noise's spread ``sigma`` times the picture's range. Shape: returns ``(H, W)``.
    """
    x = picture.to(view.device)
    if samples > 0:
        noise = torch.randn((samples, *x.shape[1:]), generator=generator).to(x.device)
        x = x + sigma * (x.max() - x.min()) * noise
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_score(view, x, target), x)
    return grad.abs().amax(1).mean(0)


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
    out = ModelView(
        model, view.categories, view.name, view.aliases, view.mean.flatten().tolist(), view.std.flatten().tolist()
    ).to(view.device)
    return out.channels_last() if view.is_channels_last else out


def input_gradient(view: ModelView, picture: torch.Tensor, target: int) -> torch.Tensor:
    """``∂ logit[target] / ∂ picture`` through ``view`` as it is. Shape: ``(1, 3, H, W) -> (3, H, W)``."""
    x = picture.to(view.device).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_score(view, x, target), x)
    return grad[0]


def guided(view: ModelView, picture: torch.Tensor, target: int, rule: str = "guided") -> torch.Tensor:
    """The input gradient of the class logit through rectifiers that follow ``rule``. Shape: ``(3, H, W)``.

    Each call copies the model; for several classes make :func:`rectifier_view` once and use :func:`input_gradient`.
    """
    return input_gradient(rectifier_view(view, rule), picture, target)


def conv_layer(view: ModelView, layer: str, hw: tuple[int, int]) -> None:
    """Raise :class:`UserError` unless ``layer`` gives a spatial map ``(C, H, W)`` for a picture of size ``hw``."""
    view.check_layers([layer])
    with torch.no_grad():
        out = view(torch.full((1, 3, *hw), 0.5, device=view.device), [layer])[layer]
    if out.dim() != 4:
        raise UserError(
            f"layer {layer} gives {tuple(out.shape[1:])}, not a (C, H, W) map; Grad-CAM needs a convolutional layer "
            "such as the last one before pooling (list them with: dreamloom recipe=layers)"
        )


def gradcam(view: ModelView, picture: torch.Tensor, target: int, layer: str) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017): the layer's channels weighted by the mean gradient of the class logit,
    summed, rectified and enlarged to the picture. On a global-pooling + linear head at the last conv layer this is
    CAM (Zhou et al., 2016) up to a constant. Shape: ``(H, W)``, in [0, 1]."""
    x = picture.to(view.device).detach().requires_grad_(True)  # the weights are frozen: the graph starts here
    acts = view(x, [layer, LOGITS])
    a = acts[layer]
    (grad,) = torch.autograd.grad(acts[LOGITS][:, target].sum(), a)
    cam = (grad.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True).relu()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max().clamp_min(1e-12)).detach()


@torch.no_grad()
def occlusion(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    patch: int,
    stride: int,
    batch: int = 32,
    fill: float = 0.5,
    progress: Progress | None = None,
) -> torch.Tensor:
    """How much the class probability drops when a grey ``patch`` square covers each place (Zeiler & Fergus, 2014),
    averaged over the squares that cover each pixel; ``batch`` occluded copies go through the model at once, and
    ``progress`` hears of each pass.

    Shape: ``(H, W)``; positive where covering the picture costs the class confidence.
    """
    x = picture.to(view.device)
    h, w = x.shape[-2:]
    if not 0 < patch <= min(h, w) or stride <= 0:
        raise UserError(f"patch={patch} stride={stride} do not fit a {h}x{w} picture; use 0 < patch <= {min(h, w)}")
    clean = view(x, [LOGITS])[LOGITS].softmax(-1)[0, target]
    ys, xs = _starts(h, patch, stride), _starts(w, patch, stride)
    places = [(y, xx) for y in ys for xx in xs]
    drop = torch.zeros(h, w, device=x.device)
    count = torch.zeros(h, w, device=x.device)
    passes = math.ceil(len(places) / batch)
    if progress is not None:
        progress.on_start(passes, lambda: x)
    for start in range(0, len(places), batch):
        chunk = places[start : start + batch]
        copies = x.repeat(len(chunk), 1, 1, 1)
        for i, (y, xx) in enumerate(chunk):
            copies[i, :, y : y + patch, xx : xx + patch] = fill
        probs = view(copies, [LOGITS])[LOGITS].softmax(-1)[:, target]
        for (y, xx), p in zip(chunk, probs, strict=True):
            drop[y : y + patch, xx : xx + patch] += clean - p
            count[y : y + patch, xx : xx + patch] += 1
        if progress is not None:
            progress.on_step(start // batch, None, lambda: x)
    return drop / count.clamp_min(1)


def _starts(n: int, patch: int, stride: int) -> list[int]:
    """Where the squares start along a side of ``n`` pixels: every ``stride``, and one flush with the far edge when
    the stride does not land there, so every pixel is covered."""
    starts = list(range(0, n - patch + 1, stride))
    return starts if starts[-1] == n - patch else [*starts, n - patch]
