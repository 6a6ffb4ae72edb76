"""Colour handling for style transfer: luminance-only transfer, colour matching, and region masks.

Gatys et al. (2016, "Preserving Color in Neural Artistic Style Transfer") give the two ways to keep the content's
colours: transfer on luminance only and put the content's chroma back, or recolour the style to the content's
colour distribution first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import ImageColor

from engine.errors import UserError

__all__ = [
    "COLOR_MODES",
    "keep_chroma",
    "luminance",
    "match_colors",
    "match_luminance",
    "region_masks",
    "transfer_colors",
]

COLOR_MODES = ("style", "luminance", "histogram")
"""``style`` takes the style's colours, ``luminance`` and ``histogram`` keep the content's."""

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _yiq(img: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(img), img)


def _rgb(yiq: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(yiq), yiq).clamp(0, 1)


def luminance(img: torch.Tensor) -> torch.Tensor:
    """The Y of YIQ, repeated over three channels so a colour model can see it. Shape: ``(B, 3, H, W)``."""
    return _yiq(img)[:, :1].expand(-1, 3, -1, -1).clamp(0, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's luminance shifted and scaled to the content's luminance mean and spread."""
    ys, yc = _yiq(style)[:, :1], _yiq(content)[:, :1]
    y = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return y.expand(-1, 3, -1, -1).clamp(0, 1)


def keep_chroma(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the content's chroma (I and Q), as RGB."""
    return _rgb(torch.cat([_yiq(result)[:, :1], _yiq(content)[:, 1:]], dim=1))


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-5)
    return vecs @ torch.diag(vals.rsqrt() if inverse else vals.sqrt()) @ vecs.T


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolour ``style`` so its RGB mean and covariance equal the content's (a linear colour transfer)."""
    s, c = style[0].flatten(1).double(), content[0].flatten(1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    a = _sqrtm(torch.cov(c)) @ _sqrtm(torch.cov(s), inverse=True)
    out = a @ (s - mu_s) + mu_c
    return out.view_as(style[0]).unsqueeze(0).to(style.dtype).clamp(0, 1)


def transfer_colors(
    picture: torch.Tensor,
    references: Sequence[torch.Tensor],
    shares: Sequence[float] | None = None,
    rounds: int = 12,
) -> torch.Tensor:
    """Give ``picture`` the colour distribution of ``references`` (their pixels pooled) while each pixel keeps its rank:
    iterative distribution transfer (Pitié et al., 2005). Each round turns the colours to a fresh orthonormal basis and
    moves every pixel's three coordinates to the reference's values of the same quantile. A dark photo given the
    Hubble field's colours turns mostly black with its brightest parts coloured as the stars are.
    ``shares`` (default equal, divided by their sum) say how much of the pooled colours each reference gives.
    Shape: ``picture`` ``(1, 3, H, W)``, each reference ``(1, 3, h, w)``, all in [0, 1]."""
    x = picture[0].flatten(1).double()
    shares = [1.0] * len(references) if shares is None else [float(s) for s in shares]
    pooled = []
    for reference, share in zip(references, shares, strict=True):
        pixels = reference[0].flatten(1).double()
        count = round(share / sum(shares) * (1 << 16))
        if count > 0:
            pooled.append(pixels[:, torch.linspace(0, pixels.shape[1] - 1, count).round().long()])
    target = torch.cat(pooled, dim=1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(rounds):
        basis = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0].to(x.device)
        px, pt = basis.T @ x, (basis.T @ target).sort(dim=1).values
        at = torch.linspace(0, pt.shape[1] - 1, px.shape[1], device=x.device).round().long()
        moved = torch.empty_like(px)
        moved.scatter_(1, px.argsort(dim=1), pt[:, at])
        x = x + basis @ (moved - px)
    return x.view_as(picture[0]).unsqueeze(0).to(picture.dtype).clamp(0, 1)


def _parse_color(text: str) -> torch.Tensor:
    try:
        return torch.tensor(ImageColor.getrgb(str(text))[:3], dtype=torch.float32)
    except ValueError:
        raise UserError(
            f"mask colour '{text}' is not a colour; use names or hex such as mask_colors=[red,'#0000ff']"
        ) from None


def _hex(rgb: torch.Tensor) -> str:
    r, g, b = (int(v) for v in rgb.clamp(0, 255))
    return f"#{r:02x}{g:02x}{b:02x}"


def region_masks(mask: torch.Tensor, regions: int, colors: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Split a mask picture into one soft region per style.

    Without ``colors`` the mask's main colours (each at least 0.5% of its pixels) are taken from darkest to
    lightest; with ``colors`` (names or hex), region ``i`` is the pixels nearest ``colors[i]``. Every main colour
    must belong to a region and every region must be present.

    Shape: ``mask`` is ``(1, 3, H, W)`` in [0, 1]; returns ``regions`` maps ``(1, 1, H, W)`` that add up to 1.
    """
    pixels = (mask[0].flatten(1).T * 255).round()
    levels = (pixels / 32).round() * 32
    found, counts = levels.unique(dim=0, return_counts=True)
    main = found[counts >= 0.005 * len(levels)]
    if colors is None:
        main = main[main.matmul(torch.tensor([0.299, 0.587, 0.114])).argsort()]
        if len(main) != regions:
            shown = ", ".join(_hex(c) for c in main)
            raise UserError(
                f"the mask has {len(main)} colours ({shown}) but there are {regions} styles; "
                "paint one flat colour per style (darkest = first style) or name them with mask_colors=[...]"
            )
        palette = main
    else:
        if len(colors) != regions:
            raise UserError(f"{len(colors)} mask_colors for {regions} styles; give one colour per style")
        palette = torch.stack([_parse_color(c) for c in colors])
        for c in main:
            if (palette - c).norm(dim=1).min() > 64:
                raise UserError(
                    f"mask colour {_hex(c)} maps to no style; add it to mask_colors=[...] or repaint it in a style's "
                    "colour"
                )
    nearest = torch.cdist(pixels, palette).argmin(1)
    h, w = mask.shape[-2:]
    out = []
    for i in range(regions):
        region = (nearest == i).float().view(1, 1, h, w)
        if region.sum() == 0:
            raise UserError(f"no part of the mask has the colour of style {i + 1}; paint a region for every style")
        out.append(region)
    return out
