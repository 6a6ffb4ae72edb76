"""Numbers that describe a result picture: style and content distances, and the strength of a stride grid."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engine.images import resize_to
from engine.models import ModelView
from objectives.transfer import gram, relative_error

__all__ = [
    "color_distance",
    "detail",
    "edge_strength",
    "feature_distance",
    "grid_strength",
    "largest_patch",
    "random_views",
    "seam_strength",
    "spectral_slope",
    "style_distance",
]


@torch.no_grad()
def style_distance(view: ModelView, layers: Sequence[str], picture: torch.Tensor, style: torch.Tensor) -> float:
    """Mean over ``layers`` of the Gram matrices' squared error relative to the style's (plain Gram, no smoothing)."""
    pa, sa = view(picture.to(view.device), layers), view(style.to(view.device), layers)
    return sum(float(relative_error(gram(pa[layer]), gram(sa[layer]))) for layer in layers) / len(layers)


@torch.no_grad()
def feature_distance(view: ModelView, layer: str, picture: torch.Tensor, reference: torch.Tensor) -> float:
    """Squared error of one layer's activations relative to the reference's (resized to the picture first)."""
    reference = resize_to(reference, (picture.shape[-2], picture.shape[-1]))
    current = view(picture.to(view.device), [layer])[layer]
    return float(relative_error(current, view(reference.to(view.device), [layer])[layer]))


def _grey(picture: torch.Tensor) -> torch.Tensor:
    """The luminance (Rec. 601 weights, as YIQ's Y) of ``(..., 3, H, W)`` pictures: ``(..., H, W)``, on the CPU."""
    return (picture.float().cpu() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(-3)


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def detail(picture: torch.Tensor) -> float:
    """Fine structure: the mean absolute Laplacian of the grey picture (a picture that fades into blur or flat colour
    loses it). Shape: ``picture`` is ``(1, 3, H, W)`` in [0, 1]."""
    grey = picture.float().mean(1, keepdim=True)
    return float(F.conv2d(grey, LAPLACIAN.to(grey)[None, None]).abs().mean())


def grid_strength(picture: torch.Tensor, periods: Sequence[int] = (2, 4, 8, 16)) -> float:
    """How much a fixed grid stands out: the power at the frequencies of the given periods (and their mixes)
    divided by the median power around them, the largest such ratio. A checkerboard printed by stride-2 layers
    scores in the hundreds; photos score in the tens (JPEG's 8-pixel blocks included).

    Shape: ``picture`` is ``(1, 3, H, W)`` in [0, 1].
    """
    grey = picture[0].float().mean(0)
    power = torch.fft.fft2(grey - grey.mean()).abs().square()
    h, w = power.shape
    rows = sorted({0, *(h // p % h for p in periods), *((h - h // p) % h for p in periods[1:])})  # small sides too
    cols = sorted({0, *(w // p % w for p in periods), *((w - w // p) % w for p in periods[1:])})
    best = 0.0
    for fy in rows:
        for fx in cols:
            if fy == 0 and fx == 0:
                continue
            ys = [(fy + d) % h for d in range(-3, 4)]
            xs = [(fx + d) % w for d in range(-3, 4)]
            around = power[ys][:, xs].flatten().median().clamp_min(1e-12)
            best = max(best, float(power[fy, fx] / around))
    return best


def seam_strength(picture: torch.Tensor, reference: torch.Tensor) -> float:
    """How much a straight cut stands out in what was added to ``reference``: for every pair of neighbouring
    columns (and rows), the mean jump of the change across them, divided by the median such jump; the largest
    ratio. Tile edges that stay put print lines that score several times the textures around them.

    Shape: both ``(1, 3, H, W)`` in [0, 1].
    """
    change = (picture[0].float() - reference[0].float()).mean(0)
    ratios = []
    for jumps in (change.diff(dim=1).abs().mean(0), change.diff(dim=0).abs().mean(1)):
        ratios.append(float(jumps.max() / jumps.median().clamp_min(1e-12)))
    return max(ratios)


def edge_strength(picture: torch.Tensor, band: int = 8) -> float:
    """How much a frame stands out along the picture's four edges: the largest distance, over the bands
    ``band`` pixels wide along each edge, between the band's mean colour and the mean colour of the picture inside a
    margin of ``4 * band``, in units of that inside's colour spread. A pale frame scores near 1 and more; a
    stationary texture near 0. Shape: ``(1, 3, H, W)`` in [0, 1].
    """
    x = picture[0].float()
    margin = 4 * band
    if min(x.shape[-2:]) <= 2 * margin:
        raise ValueError(
            f"edge_strength needs sides over {2 * margin} px at band={band}; this picture is {tuple(x.shape[-2:])}"
        )
    inside = x[:, margin:-margin, margin:-margin].reshape(3, -1)
    mean, spread = inside.mean(1), inside.std(1).norm().clamp_min(1e-12)
    bands = (x[:, :band], x[:, -band:], x[:, :, :band], x[:, :, -band:])
    return max(float((b.reshape(3, -1).mean(1) - mean).norm() / spread) for b in bands)


def color_distance(picture: torch.Tensor, reference: torch.Tensor, bins: int = 8) -> float:
    """Total-variation distance between the two pictures' colour histograms (``bins`` per channel): 0 for the same
    colours in the same amounts, 1 for no colour in common. Shape: both ``(1, 3, H, W)`` in [0, 1]."""

    def histogram(x: torch.Tensor) -> torch.Tensor:
        q = (x[0].float().clamp(0, 1) * (bins - 1e-6)).long().reshape(3, -1)
        index = (q[0] * bins + q[1]) * bins + q[2]
        return torch.bincount(index, minlength=bins**3).float() / index.numel()

    return float((histogram(picture) - histogram(reference)).abs().sum() / 2)


def largest_patch(picture: torch.Tensor, reference: torch.Tensor, quantile: float = 0.1) -> float:
    """How far the darkest tones gather into one place: the area of the largest connected patch (8 neighbours) of
    pixels darker than ``reference``'s own ``quantile`` of luminance, as a fraction of the picture. A stationary
    texture scatters them in small specks (a few thousandths); one dark blob scores tenths.
    Shape: both ``(1, 3, H, W)`` in [0, 1]."""
    from skimage.measure import label  # only the quality pages use it

    lum, ref = _grey(picture[0]), _grey(reference[0])
    dark = (lum < torch.quantile(ref.flatten(), quantile)).numpy()
    if not dark.any():
        return 0.0
    sizes = torch.bincount(torch.from_numpy(label(dark, connectivity=2).astype("int64")).flatten())[1:]
    return float(sizes.max()) / dark.size


def spectral_slope(picture: torch.Tensor, low: float = 1 / 64, high: float = 1 / 4) -> float:
    """The slope of the luminance's radially averaged power spectrum on log-log axes, fitted between ``low`` and
    ``high`` cycles per pixel (under a Hann window, mean removed). Photos of natural scenes lie near -2 (van der
    Schaaf and van Hateren, 1996); white noise is 0, and pictures full of fine repeating detail are flatter than photos.
    Shape: ``(B, 3, H, W)``, the batch averaged."""
    lum = _grey(picture)
    h, w = lum.shape[-2:]
    window = torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None, :]
    lum = (lum - lum.mean(dim=(-2, -1), keepdim=True)) * window
    power = torch.fft.rfft2(lum).abs().square().mean(0)
    freq = (torch.fft.fftfreq(h)[:, None].square() + torch.fft.rfftfreq(w)[None, :].square()).sqrt()
    edges = torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)), 13)
    xs, ys = [], []
    for a, b in itertools.pairwise(edges):
        band = (freq >= a) & (freq < b)
        if band.any():
            xs.append(float(((a * b).sqrt()).log()))
            ys.append(float(power[band].mean().log()))
    x, y = torch.tensor(xs), torch.tensor(ys)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / x.square().sum())


def random_views(
    picture: torch.Tensor, n: int, generator: torch.Generator, side: int = 224, shift: int = 16
) -> torch.Tensor:
    """``n`` random resized crops of one picture (area 50-100 %, aspect 3/4-4/3), each moved by up to ``shift`` px
    with reflected borders, at ``side`` px: how a picture that truly shows something is still seen when framed
    differently. Shape: ``(1, 3, H, W) -> (n, 3, side, side)``."""
    h, w = picture.shape[-2:]
    out = []

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    for _ in range(n):
        area = uniform(0.5, 1.0) * h * w
        ratio = math.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = min(w, round(math.sqrt(area * ratio))), min(h, round(math.sqrt(area / ratio)))
        y = int(torch.randint(h - ch + 1, (), generator=generator))
        x = int(torch.randint(w - cw + 1, (), generator=generator))
        crop = resize_to(picture[..., y : y + ch, x : x + cw], (side, side))
        dy, dx = (int(torch.randint(2 * shift + 1, (), generator=generator)) for _ in range(2))
        padded = F.pad(crop, (shift, shift, shift, shift), mode="reflect")
        out.append(padded[..., dy : dy + side, dx : dx + side])
    return torch.cat(out)


def _gabor_bank(orientations: int = 4, wavelength: float = 4.0, size: int = 9) -> torch.Tensor:
    """Even and odd Gabor filters at ``orientations`` angles, zero mean, unit energy. Shape: ``(2 * O, 1, k, k)``."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    envelope = torch.exp(-(x.square() + y.square()) / (2 * (wavelength / 2) ** 2))
    filters = []
    for k in range(orientations):
        phase = (
            2
            * math.pi
            / wavelength
            * (x * math.cos(math.pi * k / orientations) + y * math.sin(math.pi * k / orientations))
        )
        for wave in (torch.cos(phase), torch.sin(phase)):
            f = envelope * wave
            f = f - f.mean()
            filters.append(f / f.norm())
    return torch.stack(filters)[:, None]


def texture_statistics(picture: torch.Tensor, scales: int = 4, orientations: int = 4) -> torch.Tensor:
    """Network-free texture statistics in the spirit of Portilla and Simoncelli (2000): the grey picture's mean,
    spread, skew and kurtosis, then on a pyramid of ``scales`` halvings the log energy and the sparsity (spread over
    mean) of each of ``orientations`` oriented (Gabor) magnitudes, the correlations of the magnitudes across
    orientations at each scale and across neighbouring scales at each orientation.
    Shape: ``(1, 3, H, W)`` -> ``(D,)``."""
    grey = _grey(picture[:1])[:, None]
    v = grey.flatten()
    centred = v - v.mean()
    spread = centred.square().mean().sqrt().clamp_min(1e-6)
    stats = [v.mean(), spread, (centred / spread).pow(3).mean(), (centred / spread).pow(4).mean().log()]
    bank, previous = _gabor_bank(orientations), None
    for _ in range(scales):
        response = F.conv2d(F.pad(grey, (4, 4, 4, 4), mode="reflect"), bank.to(grey))
        magnitude = response.unflatten(1, (orientations, 2)).square().sum(2).sqrt()[0].flatten(1)  # (O, HW)
        mean = magnitude.mean(1)
        stats += [*mean.square().add(1e-8).log(), *(magnitude.std(1) / mean.clamp_min(1e-6))]
        stats += _correlations(magnitude)
        if previous is not None:
            coarse = magnitude.unflatten(1, grey.shape[-2:])[None]
            up = F.interpolate(coarse, size=previous.shape[-2:], mode="bilinear", align_corners=False)[0].flatten(1)
            stats += [_correlation(a, b) for a, b in zip(previous.flatten(1), up, strict=True)]
        previous = magnitude.unflatten(1, grey.shape[-2:])
        grey = F.avg_pool2d(grey, 2)
    return torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in stats])


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(), b - b.mean()
    return (a * b).mean() / (a.square().mean().sqrt() * b.square().mean().sqrt()).clamp_min(1e-8)


def _correlations(rows: torch.Tensor) -> list[torch.Tensor]:
    return [_correlation(rows[i], rows[j]) for i, j in itertools.combinations(range(len(rows)), 2)]


def texture_distance(picture: torch.Tensor, reference: torch.Tensor) -> float:
    """Euclidean distance between two pictures' :func:`texture_statistics`: 0 for the same texture statistics,
    whatever the layout. Shape: both ``(1, 3, H, W)`` in [0, 1]."""
    return float((texture_statistics(picture) - texture_statistics(reference)).norm())
