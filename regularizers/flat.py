"""Flat colour with sharp edges: L0 gradient smoothing (Xu, Lu, Xu and Jia, 2011, "Image Smoothing via L0 Gradient
Minimization") with a budget of flat pixels instead of a weight.

Xu et al. minimize ``|S - I|² + λ·#{p: ∇S(p) ≠ 0}`` by splitting the gradient off into an auxiliary field and
alternating two exact steps while the splitting weight β doubles: keep the field where its energy exceeds ``λ/β``,
then solve for ``S`` in the Fourier domain. Here the field is kept at all but the ``share`` of pixels of least
gradient energy, so the result has about that share of flat pixels: a style's own share (:func:`flat_share`) becomes
a statistic the painting takes on (``recipe=style flatten=auto``). Pictures and paintings reach the share within a
few hundredths (tested); pure high-contrast noise, every gradient of which is large, settles far more slowly and ends
with fewer flat pixels than asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import ListConfig

__all__ = ["AUTO_EVERY", "FLAT_STEP", "MOST_SHARE", "auto_share", "flat_share", "flatten", "settle"]

AUTO_EVERY = 30
"""``flatten=auto``'s period in steps (and each octave's last step): often enough that the painting settles into the
flat regions between, seldom enough to cost little (one flattening takes about a second at 512 px on two cores)."""

MOST_SHARE = 0.98
"""The largest share ``flatten=auto`` asks for (a nearly blank style would otherwise ask for a blank picture)."""
FLAT_STEP = 3 / 255
"""A pixel is flat when no channel differs from its right or lower neighbour's by this much (3 grey levels)."""


def flat_share(picture: torch.Tensor) -> float:
    """The share of flat pixels (see :data:`FLAT_STEP`) of ``picture`` ``(B, 3, H, W)`` in [0, 1], over the batch."""
    dx = (picture[..., :-1, 1:] - picture[..., :-1, :-1]).abs().amax(1)
    dy = (picture[..., 1:, :-1] - picture[..., :-1, :-1]).abs().amax(1)
    return float(((dx < FLAT_STEP) & (dy < FLAT_STEP)).float().mean())


def _difference_spectra(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (real-input) Fourier transforms of the circular forward differences along x and along y, at ``(h, w)``."""
    fx = torch.zeros((h, w), device=device)
    fy = torch.zeros((h, w), device=device)
    fx[0, 0], fx[0, -1], fy[0, 0], fy[-1, 0] = -1.0, 1.0, -1.0, 1.0
    return torch.fft.rfft2(fx), torch.fft.rfft2(fy)


def flatten(picture: torch.Tensor, share: float, beta: float = 0.05, beta_max: float = 1e5) -> torch.Tensor:
    """Each picture of ``picture`` ``(B, 3, H, W)`` in [0, 1] smoothed to flat regions with sharp edges, about
    ``share`` of its pixels flat (the edges wrap around, as the Fourier solve assumes).

    Args:
        picture: the pictures, in [0, 1].
        share: the share of pixels (in [0, 1)) whose gradient is set to zero.
        beta, beta_max: the splitting weight's start and end; it doubles each round (21 rounds by default).
    """
    if not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1), got {share}")
    source = picture.detach().float()
    h, w = source.shape[-2:]
    if min(h, w) < 2:
        raise ValueError(f"flatten needs at least 2 x 2 pixels, got {h} x {w}")
    gx, gy = _difference_spectra(h, w, source.device)
    spread = gx.abs().square() + gy.abs().square()
    given = torch.fft.rfft2(source)
    out = source.clone()
    flat = round(share * h * w)
    while beta < beta_max:
        dx = torch.roll(out, -1, -1) - out
        dy = torch.roll(out, -1, -2) - out
        energy = (dx.square() + dy.square()).sum(1).flatten(1)  # (B, HW)
        cut = torch.kthvalue(energy, flat, dim=1).values[:, None] if flat else energy.new_full((1, 1), -1.0)
        keep = (energy > cut).unflatten(1, (h, w))[:, None].to(out)
        field = gx.conj() * torch.fft.rfft2(dx * keep) + gy.conj() * torch.fft.rfft2(dy * keep)
        out = torch.fft.irfft2((given + beta * field) / (1 + beta * spread), s=(h, w))
        beta *= 2
    return out.clamp(0, 1).to(picture.dtype)


def auto_share(
    styles: Sequence[torch.Tensor], blend: Sequence[float], photo: torch.Tensor | None, fraction: float
) -> float | None:
    """What ``flatten=auto`` asks of a painting: the styles' flat share (blended by ``blend``), reached ``fraction``
    of the way from the photo's own, at most :data:`MOST_SHARE`; None (off) without a photo, or when that is not at
    least a hundredth above the photo's own share (so: when the styles are no flatter than the photo, or ``fraction``
    is 0). Measure the styles at the size the painting reads them."""
    if photo is None:
        return None
    wanted = sum(weight * flat_share(s) for s, weight in zip(styles, blend, strict=True))
    own = flat_share(photo)
    share = min(MOST_SHARE, own + fraction * (wanted - own))
    return round(share, 3) if share >= own + 0.01 else None


def settle(
    cfg: Any, styles: Sequence[torch.Tensor], blend: Sequence[float], photo: torch.Tensor | None, fraction: float
) -> Any:
    """The ``flatten`` rule a style run uses: for ``auto``, ``[AUTO_EVERY, share]`` from :func:`auto_share` (``styles``
    as the painting reads them: at ``style_scale`` of its long side), or None (also for a picture that is not
    ``param=pixel``); any other value as given (checked where the periodic step is made). The run's config keeps
    ``auto``, so a resume or a rerun decides again from its keys (the same keys, the same share)."""
    given = cfg.get("flatten")
    if given != "auto":
        return list(given) if isinstance(given, ListConfig) else given
    if photo is None or cfg.param.get("_target_") != "engine.params.pixel":
        return None
    share = auto_share(styles, blend, photo, fraction)
    return None if share is None else [AUTO_EVERY, share]
