"""Optical flow between frames, warping along it, occlusion masks, and the flicker that follows the motion.

Flow comes from OpenCV's classical methods, which need no downloaded weights: DIS (Kroeger et al., 2016; the
default, fast and accurate on whole-frame motion) or Farnebäck (2003). Conventions, for the whole engine:

* ``optical_flow(a, b)`` is an ``(H, W, 2)`` array of ``(dx, dy)`` in pixels with ``a(p) ≈ b(p + flow(p))``: where
  each pixel of ``a`` went in ``b``.
* ``warp(picture, flow)`` samples ``picture`` at ``p + flow(p)``. So the frame before, warped by the flow from the
  current frame back to it, lands where the current frame shows the same things.
* ``consistent(back, forth)`` is 1 where that backward flow, followed forward again, comes home (Ruder et al., 2016):
  0 on pixels the frame before did not show (disocclusions, the strip a pan brings in) and on motion boundaries.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from engine.errors import UserError

__all__ = [
    "FLOW_METHODS",
    "Motion",
    "consistent",
    "endpoint_error",
    "flow_flicker",
    "motion",
    "optical_flow",
    "turn_flow",
    "warp",
]

FLOW_METHODS = ("dis", "farneback")
"""The flow methods ``flow=`` takes (``none`` turns the flow off where a recipe allows it)."""


def _gray(picture: torch.Tensor) -> np.ndarray:
    """One ``(1, 3, H, W)`` picture in [0, 1] as the 8-bit grey frame OpenCV's flow reads."""
    rgb = picture.detach().float().cpu()[0].clamp(0, 1)
    grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.ascontiguousarray((grey * 255).round().to(torch.uint8).numpy())


def optical_flow(a: torch.Tensor, b: torch.Tensor, method: str = "dis") -> np.ndarray:
    """The flow from picture ``a`` to picture ``b`` (both ``(1, 3, H, W)``): ``(H, W, 2)`` float32, ``(dx, dy)``."""
    import cv2

    if method not in FLOW_METHODS:
        raise UserError(f"flow={method} is not known; use flow={', flow='.join(FLOW_METHODS)} or flow=none")
    if a.shape != b.shape:
        raise ValueError(f"flow needs two frames of one size, not {tuple(a.shape)} and {tuple(b.shape)}")
    first, second = _gray(a), _gray(b)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        flow = dis.calc(first, second, None)
    else:  # pyramid of 5 halvings, 15-px windows, 3 iterations, polynomials over 5 px with sigma 1.1
        flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 5, 15, 3, 5, 1.1, 0)  # type: ignore[call-overload]
    return np.asarray(flow, dtype=np.float32)


def _grid(flow: np.ndarray, device: torch.device) -> torch.Tensor:
    """``p + flow(p)`` in grid_sample's [-1, 1] coordinates (pixel centres, align_corners=False): ``(1, H, W, 2)``."""
    h, w = flow.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    moved = torch.from_numpy(flow).float()
    x = (xs + moved[..., 0] + 0.5) * (2 / w) - 1
    y = (ys + moved[..., 1] + 0.5) * (2 / h) - 1
    return torch.stack([x, y], dim=-1)[None].to(device)


def warp(picture: torch.Tensor, flow: np.ndarray, outside: str = "border") -> torch.Tensor:
    """``picture`` ``(B, C, H, W)`` sampled at ``p + flow(p)`` (bilinear). Outside the frame the edge is repeated
    (``outside="border"``) or the picture mirrored (``"reflection"``)."""
    if tuple(picture.shape[-2:]) != flow.shape[:2]:
        raise ValueError(f"a {tuple(flow.shape[:2])} flow cannot warp a {tuple(picture.shape[-2:])} picture")
    grid = _grid(flow, picture.device).expand(picture.shape[0], -1, -1, -1).to(picture.dtype)
    return F.grid_sample(picture, grid, mode="bilinear", padding_mode=outside, align_corners=False)


def consistent(back: np.ndarray, forth: np.ndarray) -> np.ndarray:
    """Where the flow from frame ``k`` back to frame ``k - 1`` (``back``) can be trusted: ``(H, W)`` float32 of 0 and
    1, after Ruder et al. (2016). A pixel is dropped when ``forth`` (``k - 1`` to ``k``), read where ``back`` points,
    does not bring it home (``|b + f|² > 0.01 (|b|² + |f|²) + 0.5``), when ``back`` points outside the frame, or on a
    motion boundary (``|∇b_x|² + |∇b_y|² > 0.01 |b|² + 0.002``)."""
    h, w = back.shape[:2]
    there = torch.from_numpy(np.ascontiguousarray(forth.transpose(2, 0, 1)))[None]
    f = warp(there, back)[0].numpy().transpose(1, 2, 0)  # the forward flow where each pixel's match lies
    b = back
    home = ((b + f) ** 2).sum(-1) <= 0.01 * ((b**2).sum(-1) + (f**2).sum(-1)) + 0.5
    ys, xs = np.mgrid[0:h, 0:w]
    inside = (xs + b[..., 0] >= 0) & (xs + b[..., 0] <= w - 1) & (ys + b[..., 1] >= 0) & (ys + b[..., 1] <= h - 1)
    dy_u, dx_u = np.gradient(b[..., 0])
    dy_v, dx_v = np.gradient(b[..., 1])
    edge = dx_u**2 + dy_u**2 + dx_v**2 + dy_v**2 > 0.01 * (b**2).sum(-1) + 0.002
    return (home & inside & ~edge).astype(np.float32)


@dataclass
class Motion:
    """How frame ``k`` follows frame ``k - 1``: the flow from ``k`` back to ``k - 1`` and where it holds."""

    back: np.ndarray
    """``(H, W, 2)``: ``frame_k(p) ≈ frame_{k-1}(p + back(p))``."""
    mask: np.ndarray
    """``(H, W)`` float32: 1 where ``back`` is trusted (see :func:`consistent`)."""

    def carry(self, before: torch.Tensor, feather: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``before`` (a picture of frame ``k - 1``) warped onto frame ``k``, and the mask ``(1, 1, H, W)`` on its
        device, feathered: it falls to 0 over about ``2 × feather`` pixels towards each untrusted pixel, so what is
        carried over blends into what is new without a hard edge."""
        mask = torch.from_numpy(self.mask)[None, None].to(before.device, before.dtype)
        if feather > 0:
            side = 2 * math.ceil(2 * feather) + 1
            mask = torch.minimum(mask, gaussian_blur2d(mask, (side, side), (feather, feather), border_type="replicate"))
        return warp(before, self.back), mask


def motion(before: torch.Tensor, frame: torch.Tensor, method: str = "dis") -> Motion:
    """The :class:`Motion` from ``before`` to ``frame`` (both ``(1, 3, H, W)``), with flow both ways."""
    back = optical_flow(frame, before, method)
    forth = optical_flow(before, frame, method)
    return Motion(back, consistent(back, forth))


def flow_flicker(results: list[torch.Tensor], frames: list[torch.Tensor], method: str = "dis") -> float:
    """The flicker that follows the motion: the mean absolute difference, in 8-bit levels, between each result frame
    and the result before it warped onto it by the flow of the input ``frames``, over the pixels the flow trusts.
    A result that stays put while the scene moves scores high, as it should (0 for a single frame)."""
    if len(results) != len(frames):
        raise ValueError(f"{len(results)} result frames for {len(frames)} input frames")
    diffs = []
    for (r0, r1), (f0, f1) in zip(itertools.pairwise(results), itertools.pairwise(frames), strict=True):
        carried, mask = motion(f0, f1, method).carry(r0)
        weight = mask.expand_as(r1)
        diffs.append(float(((r1 - carried).abs() * weight).sum() / weight.sum().clamp_min(1)) * 255)
    return sum(diffs) / len(diffs) if diffs else 0.0


def turn_flow(h: int, w: int, zoom: float, degrees: float) -> np.ndarray:
    """The true flow ``(h, w, 2)`` of an enlargement by ``zoom`` and a turn by ``degrees`` about the centre, as
    ``dream_zoom`` moves its frames: a point ``p`` goes to ``c + zoom · R(p − c)``. For testing flow methods."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, t = (w - 1) / 2, (h - 1) / 2, math.radians(degrees)
    qx = cx + zoom * (math.cos(t) * (xs - cx) + math.sin(t) * (ys - cy))
    qy = cy + zoom * (-math.sin(t) * (xs - cx) + math.cos(t) * (ys - cy))
    return np.stack([qx - xs, qy - ys], axis=-1).astype(np.float32)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, margin: int = 0) -> float:
    """The mean distance in pixels between ``flow`` and the ``truth`` (both ``(H, W, 2)``), ``margin`` pixels from
    the edges left out."""
    inner = (slice(margin, flow.shape[0] - margin), slice(margin, flow.shape[1] - margin))
    return float(np.sqrt(((flow[inner] - truth[inner]) ** 2).sum(-1)).mean())
