"""Parameterizations: how the optimized numbers become a picture.

Each factory returns ``(parameters, image_fn)``: the loop steps ``parameters`` and calls ``image_fn()`` for the
picture in [0, 1], never knowing how it is built (Olah et al., 2017, "Feature Visualization"; Mordvintsev et al.,
2018, "Differentiable Image Parameterizations").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import UserError
from engine.spectrum import COLOR_CORRELATION, load_spectrum

__all__ = [
    "COLOR_CORRELATION",
    "RANGES",
    "ImageFn",
    "alpha",
    "fft",
    "from_rgb",
    "maco",
    "pixel",
    "shared_fft",
    "within",
]

ImageFn = Callable[[], torch.Tensor]

_COLOR = COLOR_CORRELATION / COLOR_CORRELATION.norm(dim=0).max()
_EPS = 1e-3


RANGES = {"sd": (0.0, 10.0), "decay": (0.0, 4.0), "contrast": (0.1, 10.0)}
"""Each number a picture's builder takes by these names lies from the first to the second: ``sd`` the start's noise,
``decay`` the spectral falloff's power (beyond 4 only the mean colour is left), ``contrast`` MACO's magnitudes."""


def within(key: str, value: float) -> float:
    """``value`` of ``param.KEY`` when it lies in its :data:`RANGES`; else one line naming the key and its range."""
    low, high = RANGES[key]
    if not low <= value <= high:
        raise UserError(f"param.{key}={value} is not valid; param.{key} must be from {low:g} to {high:g}")
    return value


def _to_rgb(t: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    if decorrelate:
        t = torch.einsum("ij,bjhw->bihw", _COLOR.to(t), t)
    return torch.sigmoid(t)


def from_rgb(img: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    """The pixel parameters (sigmoid space, decorrelated colour or not) whose picture is ``img`` in [0, 1]."""
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
    noise = torch.randn(shape, generator=generator) * within("sd", sd)
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
    param = from_rgb(_start(shape, init, sd, generator, device), decorrelate).requires_grad_(True)
    return [param], lambda: _to_rgb(param, decorrelate)


def _frequency_scale(h: int, w: int, decay: float, device: torch.device | str) -> torch.Tensor:
    within("decay", decay)  # 1 is natural pictures' falloff; beyond 4 only the mean colour is left
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
        spec = torch.randn((b, c, h, w // 2 + 1, 2), generator=generator).to(device) * within("sd", sd)
    else:
        t = from_rgb(_start(shape, init, sd, generator, device), decorrelate)
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


def maco(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    sd: float = 0.01,
    contrast: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """MACO (Fel et al., 2023): only the Fourier phase is optimized; the magnitude is natural photos' own.

    The picture is ``irfft2(M * exp(i * phase))`` in decorrelated colour, with ``M`` the packaged photos' mean
    magnitude spectrum (:mod:`engine.spectrum`) resampled to the picture's size, then mapped to RGB and through a
    sigmoid (which is about ``0.5 + x`` at a photo's contrast). Its power spectrum stays a photo's whatever the
    objective asks, so the picture cannot fill with high-frequency patterns; the objective only chooses where the
    structure goes.

    Args:
        shape: ``(B, 3, H, W)``.
        init: a starting picture in [0, 1] whose phase is kept (its magnitude is replaced), or None.
        sd: 0 starts from zero phase (a symmetric picture); any other value from uniformly random phases.
        contrast: the magnitudes' scale, as a multiple of the photos' mean (a little over 1: the sigmoid softens it).
        generator: random source of the start.
        device: where the parameters live.
    """
    b, c, h, w = shape
    magnitude = load_spectrum(h, w, device) * within("contrast", contrast)
    if init is not None:
        t = from_rgb(_start(shape, init, sd, generator, device), True) / _MACO_GAIN
        phase = torch.angle(torch.fft.rfft2(t, norm="ortho"))
    elif within("sd", sd) == 0:
        phase = torch.zeros((b, c, h, w // 2 + 1), device=device)
    else:
        phase = ((torch.rand((b, c, h, w // 2 + 1), generator=generator) * 2 - 1) * torch.pi).to(device)
    phase = phase.contiguous().requires_grad_(True)

    def image() -> torch.Tensor:
        t = torch.fft.irfft2(torch.polar(magnitude.expand_as(phase), phase), s=(h, w), norm="ortho")
        return _to_rgb(t * _MACO_GAIN, True)

    return [phase], image


_MACO_GAIN = 4.0 * float(COLOR_CORRELATION.norm(dim=0).max())
"""From the spectrum's units (pixels in [0, 1], in :data:`COLOR_CORRELATION`'s whitened coordinates) to the
sigmoid's input: ``sigmoid(4 x)`` is about ``0.5 + x``, and :func:`_to_rgb` mixes colour with the matrix scaled to
a largest column of 1."""


def alpha(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    decay: float = 1.0,
    decorrelate: bool = True,
    sd: float = 0.01,
    opacity: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """An :func:`fft` picture with a fourth, alpha channel (Mordvintsev et al., 2018, "Differentiable Image
    Parameterizations", transparency): the picture is ``(B, 4, H, W)``.

    The transforms show the model the picture over a new random background every step
    (:class:`regularizers.transforms.Compose`), so only opaque parts can carry the objective; the mean opacity of
    each picture is held at most at ``opacity`` (alpha is scaled down when its mean is higher), so the optimizer
    must spend the opacity where it pays. This bound stands in for Lucid's penalty on mean opacity, whose weight
    would have to match each objective's scale.

    Args:
        shape: ``(B, 3, H, W)``; the alpha channel is added.
        init: a starting picture in [0, 1] with 3 channels (alpha starts at ``opacity``) or 4.
        decay, decorrelate, sd, generator, device: as :func:`fft`, for the colour and (uncorrelated) alpha alike.
        opacity: the most mean opacity a picture may have, above 0 and at most 1.
    """
    if not 0 < opacity <= 1:
        raise UserError(f"param.opacity={opacity} is not valid; param.opacity must be above 0 and at most 1")
    b, _, h, w = shape
    colour_init = alpha_init = None
    if init is not None:
        colour_init = init[:, :3]
        alpha_init = init[:, 3:] if init.shape[1] == 4 else torch.full_like(init[:, :1], opacity)
    colour, colour_fn = fft(shape, colour_init, decay, decorrelate, sd, generator, device)
    opaque, opaque_fn = fft((b, 1, h, w), alpha_init, decay, False, sd, generator, device)

    def image() -> torch.Tensor:
        a = opaque_fn()
        a = a * (opacity / a.mean(dim=(1, 2, 3), keepdim=True).clamp_min(opacity))
        return torch.cat([colour_fn(), a], dim=1)

    return [*colour, *opaque], image
