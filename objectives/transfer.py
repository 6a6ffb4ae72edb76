"""Objectives that match a target picture's features: content, style (Gram matrices or whole distributions) and
feature inversion.

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
from engine.scales import read
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
    "sliced",
    "smooth",
    "style",
    "style_features",
    "style_grams",
    "temporal",
]

POSITIONS = 1 << 16
"""The most positions of one layer :func:`sliced` sorts in a step (a random sample of them when there are more)."""

QUANTILES = 1 << 16
"""The most quantiles :func:`sliced` keeps of the style's projection on each direction."""

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
        (x,) = ctx.saved_tensors  # under autocast the Gram matrix, and so its gradient, is half precision
        return ((grad + grad.transpose(1, 2)) / x.shape[-1]).to(x.dtype) @ x


def relative_error(current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error divided by the target's own energy, so every layer counts about the same."""
    return (current - target).square().sum() / target.square().sum().clamp_min(1e-12)


def content(layer: str, target: torch.Tensor, weight: float = 1.0, smoothing: str = "none") -> Objective:
    """Match ``layer``'s activations to ``target`` (feature reconstruction, Gatys et al., 2016).

    The error is relative to the target's energy, so the weight means the same on any layer or model.

    Shape: ``target`` is ``(1, C, H, W)`` (or ``(1, N)`` for a layer without a map), broadcast over the batch.
    """
    goal = smooth(target, smoothing)  # both sides smoothed alike; an unknown smoothing refused now, not at a step

    def fn(acts: Activations) -> torch.Tensor:
        return weight * relative_error(smooth(acts[layer], smoothing), goal.expand_as(acts[layer]))

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
    norm = _layer_norm(layers, layer_weights)
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


def _layer_norm(layers: Sequence[str], layer_weights: Mapping[str, float] | None) -> dict[str, float]:
    """Each layer's weight (default 1) divided by their sum."""
    weights = {layer: 1.0 for layer in layers} if layer_weights is None else dict(layer_weights)
    total = sum(weights[layer] for layer in layers)
    if total <= 0:
        raise UserError("style layer weights must add up to a positive number")
    return {layer: weights[layer] / total for layer in layers}


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
    quantiles = _mixed([(dirs @ p[0].reshape(3, -1)).sort(dim=1).values for p in pictures], shares, 1 << 16)

    def fn(acts: Activations) -> torch.Tensor:
        x = acts[INPUT][:, :3]  # colour only: an alpha parameterization adds a fourth channel
        values = (dirs @ x.flatten(2)).sort(dim=2).values  # (B, 8, pixels)
        at = torch.linspace(0, quantiles.shape[1] - 1, values.shape[2], device=x.device).round().long()
        return weight * (values - quantiles[:, at]).square().mean()

    return Objective(fn, [INPUT], "histogram")


def _mixed(values: Sequence[torch.Tensor], shares: Sequence[float] | None, n: int) -> torch.Tensor:
    """About ``n`` sorted quantiles ``(K, ≈n)`` of a mixture of distributions, each given as sorted samples
    ``(K, N_i)`` and making ``shares`` of the whole (default equal; divided by their sum)."""
    shares = blend_weights(shares, len(values))
    if len(values) == 1 and values[0].shape[1] == n:
        return values[0]
    parts = []
    for v, share in zip(values, shares, strict=True):
        count = round(share * n)
        if count:
            parts.append(v[:, torch.linspace(0, v.shape[1] - 1, count, device=v.device).round().long()])
    return torch.cat(parts, dim=1).sort(dim=1).values


@torch.no_grad()
def _projections(
    pictures: Sequence[torch.Tensor], smoothing: str, shares: Sequence[float] | None, seed: int, sets: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sets`` sets of as many random unit directions as channels ``(sets, C, C)``, drawn from ``seed``, and the
    style's sorted projections on them as at most :data:`QUANTILES` quantiles ``(sets, C, Q)``."""
    flat = [smooth(t, smoothing)[0].flatten(1) for t in pictures]
    used = [t.shape[1] for t, share in zip(flat, blend_weights(shares, len(flat)), strict=True) if share > 0]
    c, n = flat[0].shape[0], min(QUANTILES, sum(used))
    dirs = torch.randn(sets, c, c, generator=torch.Generator().manual_seed(seed)).to(flat[0].device)
    dirs = dirs / dirs.norm(dim=2, keepdim=True)
    quantiles = torch.stack([_mixed([(d @ t).sort(dim=1).values for t in flat], shares, n) for d in dirs])
    return dirs, quantiles


def _sliced_error(
    f: torch.Tensor, dirs: torch.Tensor, quantiles: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Squared distance of the sorted projections of ``f`` ``(B, C, N)`` on one of the sets of ``dirs``, picked at
    random, to the style's ``quantiles``, relative to their energy."""
    pick = int(torch.randint(len(dirs), (), generator=generator))
    if f.shape[2] > POSITIONS:  # a random sample of the positions: sorting is the step's largest cost
        f = f[:, :, torch.randperm(f.shape[2], generator=generator)[:POSITIONS].to(f.device)]
    values = (dirs[pick] @ f).sort(dim=2).values
    at = torch.linspace(0, quantiles.shape[2] - 1, values.shape[2], device=f.device).round().long()
    target = quantiles[pick][:, at]
    return (values - target).square().sum() / (target.square().sum() * f.shape[0]).clamp_min(1e-12)


def sliced(
    features: Mapping[str, Sequence[torch.Tensor]],
    layer_weights: Mapping[str, float] | None = None,
    smoothing: str = "none",
    shares: Sequence[float] | None = None,
    masks: Sequence[torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> Objective:
    """Match each layer's whole feature distribution to the style's with a sliced Wasserstein distance (Heitz et
    al., 2021): the features are projected on random unit directions, as many as channels, and each projection's
    sorted values are compared with the style's quantiles, relative to their energy. Where a Gram matrix keeps the
    second moments only, this keeps every marginal along the directions: how sparse, how skewed, how bright the
    brightest strokes. Sixteen sets of directions are drawn once (their style quantiles sorted once); each step
    takes one at random.

    Args:
        features: layer -> the style pictures' activations, one ``(1, C, H, W)`` tensor per picture.
        layer_weights: layer -> weight (default 1 each); the weights are divided by their sum.
        smoothing: the activation transform applied to both sides (``none`` or ``softmax``).
        shares: how much each style picture counts (default equal): its share of the distribution, or with
            ``masks`` its region's weight.
        masks: for regional style, one ``(1, 1, H, W)`` map in [0, 1] per style picture at the picture's size;
            each position belongs to the region whose mask is largest there and matches its picture's distribution.
        generator: the (CPU) random source of each step's pick and position sample: the run's own, which a
            checkpoint saves, so a resumed run goes on as the uninterrupted one would (None: torch's global one).
        seed: the seed of the directions, the same whichever octave or step builds them.
    """
    layers = list(features)
    norm = _layer_norm(layers, layer_weights)
    count = len(next(iter(features.values())))
    blend = blend_weights(shares, count)
    if masks is None:
        banks = {layer: [_projections(features[layer], smoothing, blend, seed)] for layer in layers}
    else:
        banks = {layer: [_projections([t], smoothing, None, seed) for t in features[layer]] for layer in layers}

    owners: dict[tuple[int, ...], torch.Tensor] = {}  # per map size: the region each position belongs to

    def owner(size: tuple[int, ...]) -> torch.Tensor:
        if size not in owners:
            assert masks is not None
            owners[size] = torch.stack([F.interpolate(m, size=size, mode="area") for m in masks]).argmax(0).flatten()
        return owners[size]

    def fn(acts: Activations) -> torch.Tensor:
        loss = torch.zeros((), device=next(iter(acts.values())).device)
        for layer in layers:
            f = smooth(acts[layer], smoothing).flatten(2)
            if masks is None:
                loss = loss + norm[layer] * _sliced_error(f, *banks[layer][0], generator)
                continue
            where = owner(tuple(acts[layer].shape[-2:]))
            for region, (bank, weight) in enumerate(zip(banks[layer], blend, strict=True)):
                loss = loss + norm[layer] * weight * _sliced_error(f[:, :, where == region], *bank, generator)
        return loss

    return Objective(fn, layers, f"sliced({', '.join(layers)})")


@torch.inference_mode()
def feature_targets(view: torch.nn.Module, picture: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations of ``picture`` at ``layers`` (``layer@2``: on the picture at half size), computed once without
    building a graph."""
    return {k: v.clone() for k, v in read(view, picture, layers).items()}


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
        acts = read(view, picture, layers)
        for layer in layers:
            g = gram(smooth(acts[layer], smoothing))[0] * w
            out[layer] = out[layer] + g if layer in out else g
    return out


def style_features(
    view: torch.nn.Module, pictures: Sequence[torch.Tensor], layers: Sequence[str]
) -> dict[str, list[torch.Tensor]]:
    """Each style picture's :func:`feature_targets` at ``layers``, as layer -> one tensor per picture (for
    :func:`sliced`)."""
    each = [feature_targets(view, picture, layers) for picture in pictures]
    return {layer: [acts[layer] for acts in each] for layer in layers}


def blend_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Check one weight per style picture (None: equal weights) and divide them by their sum."""
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n:
        raise UserError(f"{n} style pictures but {len(w)} style_weights; give one weight per style")
    if any(not x >= 0 for x in w) or sum(w) <= 0:
        raise UserError(f"style_weights={w} must be >= 0 and add up to a positive number")
    return [x / sum(w) for x in w]
