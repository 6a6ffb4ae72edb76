"""Objectives that match a target picture's features: content, Gram-matrix style and feature inversion.

The targets are fixed tensors computed once (under ``torch.inference_mode``) by the helpers at the bottom; the
objectives only compare the optimized picture's activations with them (Gatys et al., 2016, "Image Style Transfer
Using Convolutional Neural Networks"; Mahendran & Vedaldi, 2015, "Understanding Deep Image Representations by
Inverting Them").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from engine.errors import UserError
from objectives.base import INPUT, Activations, Objective

__all__ = [
    "SMOOTHING",
    "blend_weights",
    "content",
    "feature_targets",
    "gram",
    "histogram",
    "inversion",
    "relative_error",
    "smooth",
    "style",
    "style_grams",
    "temporal",
]

SMOOTHING = ("none", "softmax")
"""How activations are transformed before the Gram matrix; ``softmax`` is Wang et al. (CVPR 2021)."""


def smooth(f: torch.Tensor, smoothing: str = "none", temperature: float = 1.0) -> torch.Tensor:
    """Transform activations ``(B, C, H, W)`` before their statistics are compared.

    ``softmax`` is a softmax over all of a picture's activations (every channel and position) of ``f / temperature``,
    times their number, so that a flat map stays 1 everywhere. The few huge, peaky activations of compact nets
    (MobileNetV2, ResNet) then stop dominating the Gram matrix, and its statistics carry the style instead
    (Wang et al., 2021, "Rethinking and Improving the Robustness of Image Style Transfer").
    """
    if smoothing == "none":
        return f
    if smoothing == "softmax":
        n = f[0].numel()
        return F.softmax(f.flatten(1) / temperature, dim=-1).view_as(f) * n
    raise UserError(f"smoothing={smoothing} is not known; use one of {', '.join(SMOOTHING)}")


def gram(f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Channel co-occurrence ``F Fᵀ`` averaged over positions (optionally weighted by ``mask``).

    Shape: ``f`` is ``(B, C, H, W)``, ``mask`` ``(B or 1, 1, H, W)`` with values in [0, 1]; returns ``(B, C, C)``.
    """
    x = f.flatten(2)
    if mask is None:
        return _Gram.apply(x)
    m = mask.flatten(2)
    return (x * m) @ x.transpose(1, 2) / m.sum(-1, keepdim=True).clamp_min(1e-6)


class _Gram(torch.autograd.Function):
    """``x xᵀ / N`` with the backward pass ``(g + gᵀ) x / N``: one matrix product where autograd would take two and
    add them (the Gram matrices of early, large layers cost as much as the network at 512 px)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x @ x.transpose(1, 2) / x.shape[-1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ((grad + grad.transpose(1, 2)) / x.shape[-1]) @ x


def relative_error(current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error divided by the target's own energy, so every layer counts about the same."""
    return (current - target).square().sum() / target.square().sum().clamp_min(1e-12)


def content(layer: str, target: torch.Tensor, weight: float = 1.0, smoothing: str = "none") -> Objective:
    """Match ``layer``'s activations to ``target`` (feature reconstruction, Gatys et al., 2016).

    The error is relative to the target's energy, so the weight means the same on any layer or model.

    Shape: ``target`` is ``(1, C, H, W)``, broadcast over the batch.
    """
    smooth(target[:, :1, :1, :1], smoothing)  # rejects an unknown smoothing now, not at the first step

    def fn(acts: Activations) -> torch.Tensor:
        return weight * relative_error(smooth(acts[layer], smoothing), target.expand_as(acts[layer]))

    return Objective(fn, [layer], f"content({layer})")


def temporal(previous: torch.Tensor, mask: torch.Tensor, weight: float = 1.0) -> Objective:
    """Keep the picture where ``mask`` is 1 close to ``previous``: ``weight × mean(mask · (x − previous)²)``, the
    short-term temporal loss of Ruder et al. (2016), with ``previous`` the frame before warped along the flow.

    Shape: ``previous`` is ``(1, 3, H, W)`` and ``mask`` ``(1, 1, H, W)`` (1: follow, 0: free), both resized to the
    picture when its size differs.
    """
    if previous.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"a {tuple(mask.shape[-2:])} mask for a {tuple(previous.shape[-2:])} picture")

    def fn(acts: Activations) -> torch.Tensor:
        x = acts[INPUT]
        target, where = previous, mask
        if x.shape[-2:] != target.shape[-2:]:
            target = F.interpolate(target, size=x.shape[-2:], mode="bilinear", align_corners=False)
            where = F.interpolate(where, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return weight * (where * (x - target).square()).mean()

    return Objective(fn, [INPUT], "temporal")


def inversion(layer: str, target: torch.Tensor) -> Objective:
    """Reconstruct a picture from one layer's activations: ``‖Φ(x) − Φ₀‖² / ‖Φ₀‖²`` (Mahendran & Vedaldi, 2015).

    Add ``total_variation`` and ``l2`` priors for a natural-looking reconstruction.
    """
    return content(layer, target)


def style(
    grams: Mapping[str, torch.Tensor | Sequence[torch.Tensor]],
    layer_weights: Mapping[str, float] | None = None,
    smoothing: str = "none",
    masks: Sequence[torch.Tensor] | None = None,
    region_weights: Sequence[float] | None = None,
) -> Objective:
    """Match Gram matrices layer by layer (Gatys et al., 2016), each layer's error relative to its target.

    Args:
        grams: layer -> target Gram ``(C, C)``; with ``masks``, layer -> one target per region.
        layer_weights: layer -> weight (default 1 each); the weights are divided by their sum.
        smoothing: the activation transform, the same one the targets were computed with.
        masks: for regional style, one ``(1, 1, H, W)`` map in [0, 1] per region at the picture's size.
        region_weights: how much each region's style counts (default 1 each).
    """
    layers = list(grams)
    weights = {layer: 1.0 for layer in layers} if layer_weights is None else dict(layer_weights)
    total = sum(weights[layer] for layer in layers)
    if total <= 0:
        raise UserError("style layer weights must add up to a positive number")
    norm = {layer: weights[layer] / total for layer in layers}
    rweights = [1.0] * len(masks) if masks is not None and region_weights is None else list(region_weights or [])

    def fn(acts: Activations) -> torch.Tensor:
        loss = torch.zeros((), device=next(iter(acts.values())).device)
        for layer in layers:
            f = smooth(acts[layer], smoothing)
            if masks is None:
                target = grams[layer]
                assert isinstance(target, torch.Tensor)
                loss = loss + norm[layer] * relative_error(gram(f), target.expand(f.shape[0], -1, -1))
                continue
            for mask, target, rw in zip(masks, grams[layer], rweights, strict=True):
                m = F.interpolate(mask, size=f.shape[-2:], mode="area")
                loss = loss + norm[layer] * rw * relative_error(gram(f, m), target.expand(f.shape[0], -1, -1))
        return loss

    return Objective(fn, layers, f"style({', '.join(layers)})")


def _directions(count: int = 8) -> torch.Tensor:
    """``count`` fixed unit directions in RGB ``(count, 3)``: the grey axis and its opponents, then seeded ones."""
    fixed = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    extra = torch.randn(max(0, count - len(fixed)), 3, generator=torch.Generator().manual_seed(0))
    d = torch.cat([fixed, extra])[:count]
    return d / d.norm(dim=1, keepdim=True)


def histogram(
    pictures: Sequence[torch.Tensor], weight: float = 1.0, shares: Sequence[float] | None = None
) -> Objective:
    """Match the picture's colours to the style pictures' as distributions, not only their averages: the pixels are
    projected on eight fixed colour directions and each projection's sorted values are compared with the style's
    quantiles (a sliced Wasserstein distance on the pixels, after Risser et al., 2017's histogram loss). A colour
    the style does not hold (a dark blob where it has none) costs however few pixels carry it.

    Args:
        pictures: the style pictures ``(1, 3, H, W)`` in [0, 1], any sizes.
        weight: the loss weight.
        shares: how much of the distribution each picture makes (default equal; divided by their sum).
    """
    dirs = _directions().to(pictures[0].device)
    shares = blend_weights(shares, len(pictures))
    n = 1 << 16
    parts = []
    for picture, share in zip(pictures, shares, strict=True):
        count = round(share * n)
        if count == 0:
            continue
        values = (dirs @ picture[0].reshape(3, -1)).sort(dim=1).values  # (8, pixels)
        at = torch.linspace(0, values.shape[1] - 1, count, device=values.device).round().long()
        parts.append(values[:, at])
    quantiles = torch.cat(parts, dim=1).sort(dim=1).values

    def fn(acts: Activations) -> torch.Tensor:
        x = acts[INPUT][:, :3]  # colour only: an alpha parameterization adds a fourth channel
        values = (dirs @ x.flatten(2)).sort(dim=2).values  # (B, 8, pixels)
        at = torch.linspace(0, quantiles.shape[1] - 1, values.shape[2], device=x.device).round().long()
        return weight * (values - quantiles[:, at]).square().mean()

    return Objective(fn, [INPUT], "histogram")


@torch.inference_mode()
def feature_targets(view: torch.nn.Module, picture: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations of ``picture`` at ``layers``, computed once without building a graph."""
    return {k: v.clone() for k, v in view(picture, list(layers)).items()}


@torch.inference_mode()
def style_grams(
    view: torch.nn.Module,
    pictures: Sequence[torch.Tensor],
    layers: Sequence[str],
    weights: Sequence[float] | None = None,
    smoothing: str = "none",
) -> dict[str, torch.Tensor]:
    """Blend the Gram matrices of several style pictures with ``weights`` (which are divided by their sum)."""
    out: dict[str, torch.Tensor] = {}
    for picture, w in zip(pictures, blend_weights(weights, len(pictures)), strict=True):
        acts = view(picture, list(layers))
        for layer in layers:
            g = gram(smooth(acts[layer], smoothing))[0] * w
            out[layer] = out[layer] + g if layer in out else g
    return out


def blend_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Check one weight per style picture (None: equal weights) and divide them by their sum."""
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n:
        raise UserError(f"{n} style pictures but {len(w)} style_weights; give one weight per style")
    if any(not x >= 0 for x in w) or sum(w) <= 0:
        raise UserError(f"style_weights={w} must be >= 0 and add up to a positive number")
    return [x / sum(w) for x in w]
