"""Multiscale octaves: render small, enlarge, render again (Mordvintsev et al., 2015, DeepDream).

The octave wrapper sits outside the loop: it hands each octave a starting picture and carries the detail that
the previous octave added up to the next size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from engine.images import resize_to, resize_wrapped

__all__ = ["octave_sizes", "run_octaves"]


def octave_sizes(hw: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to ``hw``; each is ``scale`` times the one before it."""
    h, w = hw
    sizes = [(max(1, round(h / scale**i)), max(1, round(w / scale**i))) for i in range(octaves)]
    return sizes[::-1]


def run_octaves(
    base: torch.Tensor | None,
    sizes: list[tuple[int, int]],
    render: Callable[[torch.Tensor | None, int], torch.Tensor],
    first: torch.Tensor | None = None,
    wrap: bool = False,
    restart: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Render ``base`` at each size in turn, carrying the added detail upwards.

    Args:
        base: the picture to dream on, in [0, 1], or None to carry each octave's result up whole (coarse to
            fine). Shape: ``(B, 3, H, W)``.
        sizes: octave sizes, smallest first (see :func:`octave_sizes`).
        render: ``render(start_picture, octave_index) -> picture`` of the same size.
        first: without ``base``, the first octave's start (resized to it); None lets the parameterization start.
        wrap: enlarge as a repeating picture (a tiling texture stays seamless from octave to octave).
        restart: without ``base``, each later octave's start (the one before, enlarged) passes through it.

    Returns:
        The final picture at ``sizes[-1]``.
    """
    resize = resize_wrapped if wrap else resize_to
    detail: torch.Tensor | None = None
    out: torch.Tensor | None = None
    for i, hw in enumerate(sizes):
        if base is None:
            if out is None:
                out = render(None if first is None else resize(first, hw), i)
            else:
                start = resize(out, hw)
                out = render(start if restart is None else restart(start), i)
            continue
        start = resize_to(base, hw)
        if detail is not None:
            detail = F.interpolate(detail, size=hw, mode="bilinear", align_corners=False)
            start = (start + detail).clamp(0, 1)
        out = render(start, i)
        detail = out - resize_to(base, hw)
    assert out is not None
    return out
