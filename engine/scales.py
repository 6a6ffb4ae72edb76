"""Layers read on a shrunk copy of the picture: ``features.4.conv.0@2`` is ``features.4.conv.0`` on the picture at
half its size.

An objective names such layers to compare statistics at coarser scales than the model's own receptive fields reach
(a style matched on a pyramid of the picture, as Snelgrove, 2017, matches textures); the optimization loop reads
them with :func:`read` and knows nothing of which objective asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from engine.errors import digits

__all__ = ["MARK", "MIN_SIDE", "at_scale", "pyramid", "read", "shrink", "split_scale"]

MARK = "@"
MIN_SIDE = 32
"""A pyramid level is left out where a shrunk copy's short side would fall below this many pixels."""


def split_scale(name: str) -> tuple[str, int]:
    """``"features.4@2"`` -> ``("features.4", 2)``; a name without a factor is read at scale 1."""
    layer, mark, factor = name.rpartition(MARK)
    if not mark or not digits(factor) or int(factor) < 1:
        return name, 1
    return layer, int(factor)


def at_scale(layer: str, factor: int) -> str:
    """The name of ``layer`` read on the picture shrunk ``factor`` times (the plain name at 1)."""
    return layer if factor == 1 else f"{layer}{MARK}{factor}"


def shrink(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``x`` shrunk ``factor`` times by area averaging (differentiable). Shape: ``(B, C, H, W)``."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(max(1, h // factor), max(1, w // factor)), mode="area")


def read(
    model: Callable[[torch.Tensor, list[str]], Mapping[str, torch.Tensor]], x: torch.Tensor, layers: Iterable[str]
) -> dict[str, torch.Tensor]:
    """``model``'s activations of ``x`` at ``layers``, one forward pass per scale the names ask for."""
    by_factor: dict[int, list[tuple[str, str]]] = {}
    for name in layers:
        layer, factor = split_scale(name)
        by_factor.setdefault(factor, []).append((name, layer))
    out: dict[str, torch.Tensor] = {}
    for factor, pairs in by_factor.items():
        acts = model(shrink(x, factor), [layer for _, layer in pairs])
        out.update({name: acts[layer] for name, layer in pairs})
    return out


def pyramid(
    layers: list[str], weights: list[float] | None, levels: int, side: int
) -> tuple[list[str], dict[str, float] | None]:
    """``layers`` read on the picture and on copies shrunk 2, 4 … times: ``levels`` in all, fewer where a copy's
    short side (``side`` at scale 1) would be under :data:`MIN_SIDE`; each layer keeps its weight at every level."""
    factors = [1]
    while len(factors) < levels and side // (2 * factors[-1]) >= MIN_SIDE:
        factors.append(2 * factors[-1])
    named = [at_scale(layer, f) for f in factors for layer in layers]
    if weights is None:
        return named, None
    return named, {at_scale(layer, f): w for f in factors for layer, w in zip(layers, weights, strict=True)}
