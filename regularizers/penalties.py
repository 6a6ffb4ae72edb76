"""Penalties on the picture itself: L1, L2 and total variation, written as objectives on ``acts["input"]``."""

from __future__ import annotations

import torch

from objectives.base import INPUT, Activations, Objective

__all__ = ["INPUT", "l1", "l2", "total_variation", "tv_map"]


def l1(constant: float = 0.5) -> Objective:
    """Mean absolute distance of the pixels from ``constant`` (Mahendran & Vedaldi, 2015)."""

    def fn(acts: Activations) -> torch.Tensor:
        return (acts[INPUT] - constant).abs().mean()

    return Objective(fn, [], f"l1({constant:g})")


def l2(constant: float = 0.5) -> Objective:
    """Mean squared distance of the pixels from ``constant`` (Simonyan et al., 2014)."""

    def fn(acts: Activations) -> torch.Tensor:
        return (acts[INPUT] - constant).pow(2).mean()

    return Objective(fn, [], f"l2({constant:g})")


def tv_map(img: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Total variation of a picture batch: mean of ``|dx|^β + |dy|^β`` (Mahendran & Vedaldi, 2015).

    Shape: ``(B, C, H, W) -> ()``.
    """
    dx = (img[..., :, 1:] - img[..., :, :-1]).abs()
    dy = (img[..., 1:, :] - img[..., :-1, :]).abs()
    if beta != 1.0:
        dx, dy = dx.pow(beta), dy.pow(beta)
    return dx.mean() + dy.mean()


def total_variation(beta: float = 1.0) -> Objective:
    """Total-variation penalty on the picture; see :func:`tv_map`."""
    return Objective(lambda acts: tv_map(acts[INPUT], beta), [], f"tv(beta={beta:g})")
