"""Robustness transforms (Mordvintsev et al., 2015; Olah et al., 2017): pad, jitter, scale, rotate, blur.

Each is an ``nn.Module`` mapping ``(B, C, H, W) -> (B, C, H', W')`` that takes device and dtype from its input and
draws its randomness from a ``torch.Generator`` so that a seed reproduces a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import UserError
from engine.images import composite

__all__ = [
    "Compose",
    "GaussianBlur",
    "Jitter",
    "Pad",
    "RandomAffine",
    "RandomCrop",
    "RandomRotate",
    "RandomScale",
    "Roll",
    "Transform",
    "random_backgrounds",
    "warp",
]


class Transform(nn.Module):
    """Base of the transforms: holds the generator that :class:`Compose` hands down."""

    def __init__(self) -> None:
        super().__init__()
        self.generator: torch.Generator | None = None

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator).item())


class Pad(Transform):
    """Pad every side by ``pad`` pixels, by reflection by default, so jitter never shows a border."""

    def __init__(self, pad: int, mode: str = "reflect") -> None:
        super().__init__()
        self.pad, self.mode = int(pad), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad <= 0:
            return x
        p = min(self.pad, x.shape[-1] - 1, x.shape[-2] - 1) if self.mode == "reflect" else self.pad
        return F.pad(x, (p, p, p, p), mode=self.mode)


class Jitter(Transform):
    """Crop at a random offset of up to ``shift`` pixels (the output is ``shift`` pixels smaller)."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = int(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift <= 0:
            return x
        d = min(self.shift, x.shape[-2] - 1, x.shape[-1] - 1)
        dy, dx = self._randint(d + 1), self._randint(d + 1)
        return x[..., dy : dy + x.shape[-2] - d, dx : dx + x.shape[-1] - d]


class Roll(Transform):
    """Shift circularly by up to ``shift`` pixels each way (the size stays).

    Small shifts stop a stride-2 net's fixed grid from printing a checkerboard into style transfer.
    """

    def __init__(self, shift: int = 4) -> None:
        super().__init__()
        self.shift = int(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift <= 0:
            return x
        dy, dx = (self._randint(2 * min(self.shift, n - 1) + 1) - min(self.shift, n - 1) for n in x.shape[-2:])
        return torch.roll(x, (dy, dx), dims=(-2, -1))


SCALE_RANGE, ANGLE_RANGE = (0.1, 10.0), 360.0
"""A scale transform's factors lie from a tenth to tenfold (a factor of 0 leaves no picture), a rotation's angles
within one turn either way."""


def _within(values: Sequence[float], key: str, low: float, high: float, rule: str) -> list[float]:
    """``values`` as floats, each from ``low`` to ``high``; one line naming the transform's ``key`` otherwise."""
    found = [float(v) for v in values]
    if not all(low <= v <= high for v in found):
        raise UserError(f"{key}={found} is not valid; a transform's {key} {rule.format(low=low, high=high)}")
    return found


def scale_factors(scales: Sequence[float]) -> list[float]:
    """The factors as numbers in :data:`SCALE_RANGE`."""
    return _within(scales, "scales", *SCALE_RANGE, "must lie from {low:g} to {high:g}, like [1.0,0.975,1.025]")


def rotation_angles(angles: Sequence[float]) -> list[float]:
    """The angles as degrees within one turn either way."""
    return _within(angles, "angles", -ANGLE_RANGE, ANGLE_RANGE, "are degrees from {low:g} to {high:g}, like [-5,0,5]")


class RandomScale(Transform):
    """Resize by a factor drawn from ``scales`` (bilinear)."""

    def __init__(self, scales: Sequence[float]) -> None:
        super().__init__()
        self.scales = scale_factors(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scales[self._randint(len(self.scales))]
        if s == 1.0:
            return x
        size = (max(1, round(x.shape[-2] * s)), max(1, round(x.shape[-1] * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class RandomRotate(Transform):
    """Rotate about the centre by an angle in degrees drawn from ``angles`` (kornia, bilinear, reflected edges)."""

    def __init__(self, angles: Sequence[float]) -> None:
        super().__init__()
        self.angles = rotation_angles(angles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.angles[self._randint(len(self.angles))]
        if a == 0.0:
            return x
        angle = torch.full((x.shape[0],), a, device=x.device, dtype=x.dtype)
        return kornia.geometry.transform.rotate(x, angle, padding_mode="reflection")


class RandomAffine(Transform):
    """Pad, jitter, scale, rotate and jitter again, as :class:`Pad`, :class:`Jitter`, :class:`RandomScale`,
    :class:`RandomRotate` and :class:`Jitter` in turn would, but in one bilinear resampling with reflected edges.

    The output has the size the chain would give, ``(n + 2·pad − shift) · scale − shift_after`` a side. One
    resampling instead of three costs less, and blurs the picture the model sees less.

    Args:
        pad: pixels added on every side (by reflection) before the first jitter.
        shift: the first jitter, up to this many pixels each way.
        scales: factors to draw from.
        angles: degrees to draw from (about the centre).
        shift_after: the last jitter, after scaling and rotating.
    """

    def __init__(
        self,
        pad: int = 12,
        shift: int = 8,
        scales: Sequence[float] = (1.0,),
        angles: Sequence[float] = (0.0,),
        shift_after: int = 4,
    ) -> None:
        super().__init__()
        self.pad, self.shift, self.shift_after = int(pad), int(shift), int(shift_after)
        self.scales, self.angles = scale_factors(scales), rotation_angles(angles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = min(self.shift, h + 2 * self.pad - 1, w + 2 * self.pad - 1)
        dy, dx = self._randint(d + 1), self._randint(d + 1)
        s = self.scales[self._randint(len(self.scales))]
        a = math.radians(self.angles[self._randint(len(self.angles))])
        sh, sw = max(1, round((h + 2 * self.pad - d) * s)), max(1, round((w + 2 * self.pad - d) * s))
        d2 = min(self.shift_after, sh - 1, sw - 1)
        dy2, dx2 = self._randint(d2 + 1), self._randint(d2 + 1)
        oh, ow = sh - d2, sw - d2
        # output pixel -> input pixel (x, y, 1), then both ends in affine_grid's [-1, 1] coordinates
        shift_out = _affine(dx2 - sw / 2, dy2 - sh / 2)  # into the rotated picture, about its centre
        cos, sin = math.cos(a), math.sin(a)
        turn = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        sx, sy = sw / (w + 2 * self.pad - d), sh / (h + 2 * self.pad - d)  # the scale each side really gets
        back = torch.diag(torch.tensor([1 / sx, 1 / sy, 1.0], dtype=torch.float64)) @ _affine(sw / 2, sh / 2)
        place = _affine(dx - self.pad, dy - self.pad) @ back @ turn @ shift_out
        to_out = _affine(-1.0, -1.0) @ torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=torch.float64))
        from_out = torch.diag(torch.tensor([ow / 2, oh / 2, 1.0], dtype=torch.float64)) @ _affine(1.0, 1.0)
        return warp(x, (to_out @ place @ from_out)[:2], (oh, ow))


class RandomCrop(Transform):
    """A random box of ``low`` to ``high`` of each side, anywhere in the picture, resized back to the picture's size
    (bilinear): the model sees parts of the picture at up to ``1 / low`` times their size, as MACO's crops do
    (Fel et al., 2023), so every part must hold the objective up close as well as from afar.
    """

    def __init__(self, low: float = 0.5, high: float = 1.0) -> None:
        super().__init__()
        if not 0 < low <= high <= 1:
            raise UserError(
                f"low={low} and high={high} are not valid; a crop's sides must satisfy 0 < low <= high <= 1"
            )
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = self.low + (self.high - self.low) * float(torch.rand((), generator=self.generator))
        ch, cw = max(1, round(h * f)), max(1, round(w * f))
        top, left = self._randint(h - ch + 1), self._randint(w - cw + 1)
        box = x[..., top : top + ch, left : left + cw]
        return F.interpolate(box, size=(h, w), mode="bilinear", align_corners=False)


def warp(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of ``x`` at ``theta @ (u, v, 1)`` for every output place, in ``F.affine_grid``'s
    coordinates (``align_corners=False``), with reflected edges: ``grid_sample(x, affine_grid(theta))``, cheaper.

    The sampling grid is built from one row and one column of coordinates instead of a matrix product over every
    place. On a CPU, one picture's rows are cut into as many bands as there are threads and sampled as a batch,
    because the backward pass of ``grid_sample`` shares out its work by picture: a 242-px warp's forward and
    backward pass then takes about 2.0 ms on two threads instead of 3.5.

    Args:
        x: the pictures. Shape: ``(B, C, H, W)``.
        theta: the affine map from output to input coordinates, for every picture. Shape: ``(2, 3)``.
        size: the output's height and width.
    """
    oh, ow = size
    t = theta.to(x.device, x.dtype)
    v = (2 * torch.arange(oh, device=x.device, dtype=x.dtype) + 1) / oh - 1
    u = (2 * torch.arange(ow, device=x.device, dtype=x.dtype) + 1) / ow - 1
    grid = torch.stack([t[i, 0] * u + (t[i, 1] * v + t[i, 2])[:, None] for i in range(2)], dim=-1)
    bands = min(torch.get_num_threads(), 4) if x.device.type == "cpu" and x.shape[0] == 1 else 1  # a copy each
    rows = -(-oh // bands)  # a band's height; the last band starts earlier so that every band has this height
    if bands < 2 or rows < 8:
        return F.grid_sample(x, grid.expand(x.shape[0], oh, ow, 2), padding_mode="reflection", align_corners=False)
    starts = [min(i * rows, oh - rows) for i in range(bands)]
    band_grids = torch.stack([grid[s : s + rows] for s in starts])
    out = F.grid_sample(x.expand(bands, *x.shape[1:]), band_grids, padding_mode="reflection", align_corners=False)
    keep = [out[i : i + 1, :, i * rows - s : min(rows, oh - s)] for i, s in enumerate(starts)]
    return torch.cat(keep, dim=2)


def _affine(tx: float, ty: float) -> torch.Tensor:
    """The 3 × 3 matrix that moves points by ``(tx, ty)``."""
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


class GaussianBlur(Transform):
    """Gaussian blur with standard deviation ``sigma`` pixels (kornia); a kernel of about 6σ."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma <= 0:
            return x
        k = 2 * max(1, round(3 * self.sigma)) + 1
        return kornia.filters.gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")


class Compose(nn.Sequential):
    """Apply transforms in order, all drawing from one generator.

    A picture with an alpha channel (``param=alpha``) is transformed whole, then laid over a new random background
    (:func:`random_backgrounds`), so the model sees only what is opaque consistently (Mordvintsev et al., 2018).

    Args:
        transforms: the transforms, in order.
        generator: source of randomness for every random transform; when None, a new generator at torch's default seed.
    """

    def __init__(self, *transforms: nn.Module, generator: torch.Generator | None = None) -> None:
        super().__init__(*transforms)
        self.set_generator(generator or torch.Generator())

    def set_generator(self, generator: torch.Generator) -> Compose:
        """Hand ``generator`` to every transform; returns self."""
        self.generator = generator
        for t in self:
            if isinstance(t, Transform):
                t.generator = generator
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if x.shape[1] == 4:
            x = composite(x, random_backgrounds(x.shape[0], x.shape[-2], x.shape[-1], self.generator).to(x))
        return x


def random_backgrounds(b: int, h: int, w: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``b`` random backgrounds for transparent pictures: a flat colour, large soft blotches of other colours and
    fine grain, each in random measure, so no one colour or texture can stand in for the picture's opaque parts.
    Shape: ``(b, 3, h, w)`` in [0, 1], on the CPU."""
    flat = torch.rand((b, 3, 1, 1), generator=generator)
    amounts = torch.rand((b, 2, 1, 1), generator=generator)
    blotches = torch.rand((b, 3, 4, 4), generator=generator) - 0.5
    blotches = F.interpolate(blotches, size=(h, w), mode="bicubic", align_corners=False)
    grain = torch.rand((b, 3, h, w), generator=generator) - 0.5
    return (flat + amounts[:, :1] * blotches + 0.5 * amounts[:, 1:] * grain).clamp(0, 1)
