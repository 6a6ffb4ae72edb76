"""Parameterizations: how the optimized numbers become a picture.

Each factory returns ``(parameters, image_fn)``: the loop steps ``parameters`` and calls ``image_fn()`` for the
picture in [0, 1], never knowing how it is built (Olah et al., 2017, "Feature Visualization"; Mordvintsev et al.,
2018, "Differentiable Image Parameterizations").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import UserError

__all__ = ["COLOR_CORRELATION", "ImageFn", "fft", "pixel", "shared_fft"]

ImageFn = Callable[[], torch.Tensor]

COLOR_CORRELATION = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
"""Square root of ImageNet's RGB covariance (Olah et al., 2017): decorrelated coordinates -> RGB."""
_COLOR = COLOR_CORRELATION / COLOR_CORRELATION.norm(dim=0).max()
_EPS = 1e-3


def _within(key: str, value: float, low: float, high: float) -> float:
    """``value`` of ``param.KEY`` when it lies in [low, high]; else one line naming the key and its range."""
    if not low <= value <= high:
        raise UserError(f"param.{key}={value} is not valid; param.{key} must be from {low:g} to {high:g}")
    return value


def _to_rgb(t: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    if decorrelate:
        t = torch.einsum("ij,bjhw->bihw", _COLOR.to(t), t)
    return torch.sigmoid(t)


def _from_rgb(img: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    t = torch.logit(img.clamp(_EPS, 1 - _EPS))
    if decorrelate:
        t = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_COLOR).to(t), t)
    return t


def _start(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None,
    sd: float,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> torch.Tensor:
    if init is not None:
        return init.to(device=device, dtype=torch.float32).expand(shape).clone()
    noise = torch.randn(shape, generator=generator) * _within("sd", sd, 0, 10)
    return (0.5 + noise).clamp(0, 1).to(device)


def pixel(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    decorrelate: bool = False,
    sd: float = 0.01,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """Pixels in sigmoid space, optionally in decorrelated colour.

    Args:
        shape: ``(B, 3, H, W)``.
        init: a starting picture in [0, 1] (broadcast over the batch), or None for grey plus noise of ``sd``.
        decorrelate: optimize in ImageNet's decorrelated colour space.
        sd: noise level of the random start (0 gives flat grey).
        generator: random source of the start.
        device: where the parameters live.
    """
    param = _from_rgb(_start(shape, init, sd, generator, device), decorrelate).requires_grad_(True)
    return [param], lambda: _to_rgb(param, decorrelate)


def _frequency_scale(h: int, w: int, decay: float, device: torch.device | str) -> torch.Tensor:
    _within("decay", decay, 0, 4)  # 1 is natural pictures' falloff; beyond 4 only the mean colour is left
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    freq = (fx.square() + fy.square()).sqrt()
    return freq.clamp_min(1.0 / max(h, w)).pow(-decay) / 4.0


def fft(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    decay: float = 1.0,
    decorrelate: bool = True,
    sd: float = 0.01,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """A Fourier-space picture whose coefficients are scaled by ``1/f^decay`` (Olah et al., 2017).

    Steps in this space fall on all frequencies equally in "natural picture" units, so low frequencies (large
    shapes) move as readily as high ones and the result avoids the high-frequency noise of plain pixels.

    Args:
        shape: ``(B, 3, H, W)``.
        init: a starting picture in [0, 1], or None for a random spectrum of standard deviation ``sd``.
        decay: spectral decay power; 0 is white, 1 the usual natural-picture falloff.
        decorrelate: optimize in ImageNet's decorrelated colour space.
        sd: scale of the random start.
        generator: random source of the start.
        device: where the parameters live.
    """
    b, c, h, w = shape
    scale = _frequency_scale(h, w, decay, device)
    if init is None:
        spec = torch.randn((b, c, h, w // 2 + 1, 2), generator=generator).to(device) * _within("sd", sd, 0, 10)
    else:
        t = _from_rgb(_start(shape, init, sd, generator, device), decorrelate)
        spec = torch.view_as_real(torch.fft.rfft2(t, norm="ortho") / scale)
    spectrum = spec.contiguous().requires_grad_(True)

    def image() -> torch.Tensor:
        t = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho")
        return _to_rgb(t, decorrelate)

    return [spectrum], image


def shared_fft(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    decay: float = 1.0,
    decorrelate: bool = True,
    sd: float = 0.01,
    shared: tuple[int, ...] = (8, 16),
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """:func:`fft` pictures plus coarse grids shared by the whole batch (Olah et al., 2017, interpolation).

    Each picture has its own spectrum; grids of ``1/s`` the picture's size, one for each ``s`` in ``shared``, are
    enlarged and added to every picture before the colour transform. Neighbours in a batch that blends from one
    objective to another then agree on their large shapes, so the blend reads as one scene changing.
    """
    params, _ = fft(shape, init, decay, decorrelate, sd, generator, device)
    c, h, w = shape[1:]
    grids = [torch.zeros((1, c, max(1, h // s), max(1, w // s)), device=device, requires_grad=True) for s in shared]
    spectrum = params[0]
    scale = _frequency_scale(h, w, decay, device)

    def image() -> torch.Tensor:
        t = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho")
        for grid in grids:
            t = t + torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return _to_rgb(t, decorrelate)

    return [spectrum, *grids], image
