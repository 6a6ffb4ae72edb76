"""The magnitude spectrum of natural photos that ``param=maco`` keeps fixed (Fel et al., 2023, "Unlocking Feature
Visualization for Deeper Networks with MAgnitude Constrained Optimization").

The spectrum is the root-mean-square Fourier magnitude of the photos that ship with scikit-image and matplotlib,
in ImageNet's decorrelated colour coordinates, measured on square crops of :data:`SIDE` pixels under a Hann window
(so the crops' edges do not print a cross into it), each also turned a quarter turn (so grass's upright blades do
not make every picture streaky). ``natural_spectrum.npy`` beside this file holds it; running this module makes the
same file again from the same photos::

    .venv/bin/python -m engine.spectrum
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["COLOR_CORRELATION", "PHOTOS", "SIDE", "SPECTRUM_FILE", "load_spectrum", "make_spectrum"]

COLOR_CORRELATION = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
"""Square root of ImageNet's RGB covariance (Olah et al., 2017): decorrelated coordinates -> RGB."""
SIDE = 256
"""The crops' side in pixels: the stored spectrum is ``(3, SIDE, SIDE // 2 + 1)``, as ``torch.fft.rfft2`` lays it."""
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper", "brick", "grass", "gravel", "hubble_deep_field")
"""The packaged samples that are photographs (the stained-tissue slide and the mask are left out)."""
SPECTRUM_FILE = Path(__file__).with_name("natural_spectrum.npy")


def _crops(picture: torch.Tensor) -> list[torch.Tensor]:
    """Square crops of :data:`SIDE` px from a photo whose short side was scaled to ``2 * SIDE``: its four quarters."""
    from engine.images import resize_to

    h, w = picture.shape[-2:]
    scale = 2 * SIDE / min(h, w)
    picture = resize_to(picture, (max(2 * SIDE, round(h * scale)), max(2 * SIDE, round(w * scale))))
    top, left = (picture.shape[-2] - 2 * SIDE) // 2, (picture.shape[-1] - 2 * SIDE) // 2
    return [picture[..., top + y : top + y + SIDE, left + x : left + x + SIDE] for y in (0, SIDE) for x in (0, SIDE)]


def make_spectrum() -> np.ndarray:
    """The root-mean-square magnitude spectrum of :data:`PHOTOS`' crops (the square root of their mean power, so a
    picture with these magnitudes and any phases has the photos' mean power spectrum and contrast), in decorrelated
    colour, pixels in [0, 1]; each crop's mean colour is taken out first (the DC term is zero).
    Shape: ``(3, SIDE, SIDE // 2 + 1)``."""
    from engine.images import load_image

    window = torch.hann_window(SIDE, periodic=False, dtype=torch.float64)
    window = window[:, None] * window[None, :]
    window = window / window.square().mean().sqrt()  # of the 2-D window itself: keeps the crops' energy
    to_decorrelated = torch.linalg.inv(COLOR_CORRELATION.double())
    total = torch.zeros((3, SIDE, SIDE // 2 + 1), dtype=torch.float64)
    count = 0
    for name in PHOTOS:
        for crop in (c.rot90(k, (-2, -1)) for c in _crops(load_image(name).double()) for k in (0, 1)):
            centred = crop[0] - crop[0].mean(dim=(-2, -1), keepdim=True)
            decorrelated = torch.einsum("ij,jhw->ihw", to_decorrelated, centred) * window
            total += torch.fft.rfft2(decorrelated, norm="ortho").abs().square()
            count += 1
    spectrum = (total / count).sqrt()
    spectrum[:, 0, 0] = 0.0
    return spectrum.numpy().astype(np.float32)


@functools.cache
def _stored() -> torch.Tensor:
    """The stored spectrum, read once per process (every octave and frame of a run resamples it)."""
    return torch.from_numpy(np.load(SPECTRUM_FILE, allow_pickle=False)).float()


def load_spectrum(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The stored spectrum resampled to an ``h`` by ``w`` picture's ``rfft2`` grid, at the same frequencies in
    cycles per pixel (bilinear in log magnitude, since it falls off as a power). Shape: ``(3, h, w // 2 + 1)``."""
    stored = _stored().clone()
    if tuple(stored.shape) != (3, SIDE, SIDE // 2 + 1):
        raise ValueError(f"{SPECTRUM_FILE} has shape {tuple(stored.shape)}; run python -m engine.spectrum to remake it")
    stored[:, 0, 0] = (stored[:, 0, 1] + stored[:, 1, 0]) / 2  # a neighbour's level, so DC's zero is not smeared
    # rows in increasing frequency (-1/2 … 1/2), the last row repeated as +1/2 so both Nyquist ends exist
    rows = torch.fft.fftshift(stored, dim=1)
    rows = torch.cat([rows, rows[:, :1]], dim=1)
    log = rows.clamp_min(1e-8).log()[None]
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)
    # grid_sample's -1 … 1 spans the stored rows -1/2 … 1/2 and the stored columns 0 … 1/2 (align_corners=True)
    gy = (fy * 2).float()[:, None].expand(h, fx.numel())
    gx = (fx * 4 - 1).float()[None, :].expand(h, fx.numel())
    grid = torch.stack([gx, gy], dim=-1)[None]
    out = F.grid_sample(log, grid, mode="bilinear", align_corners=True).exp()[0]
    out[:, 0, 0] = 0.0
    return out.to(device)


if __name__ == "__main__":
    np.save(SPECTRUM_FILE, make_spectrum(), allow_pickle=False)
    print(f"wrote {SPECTRUM_FILE}")
