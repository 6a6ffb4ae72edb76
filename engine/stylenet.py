"""The feed-forward style network of Johnson et al. (2016), and painting with it at any size.

:class:`StyleNet` is an image-transformation network: strided convolutions down, residual blocks, bilinear
enlargement followed by a convolution on the way up (no transposed convolutions, so no checkerboard; Odena et al.,
2016), and a sigmoid for pixels in [0, 1]. It has no normalization layers: with instance normalization it learned
to burn white blobs into the picture to steer the statistics (the "droplets" Karras et al., 2020, trace to the same
cause), and without it every pixel depends only on its neighbourhood, so a picture painted in tiles is the picture
painted whole.

:func:`paint_tiled` paints a picture of any size in bounded memory: each tile is painted with a margin of context
around it, which is then cut away, and neighbouring tiles are blended across their overlap with feathered weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import UserError, close_matches, missing_or

__all__ = ["NETWORK", "StyleNet", "load_network", "network_file", "network_state", "paint_tiled"]

NETWORK = "network.pt"
"""The file a ``style_train`` run writes: the weights and the plain values needed to use them."""
KIND = "dreamloom-style-network"
FORMAT = 1
PACKAGED = Path(__file__).resolve().parent / "networks"
"""Networks that ship with dreamloom, each trained by ``recipe=style_train`` on the sample of its name."""
CONTEXT = 48
"""Pixels of the picture around a tile that its painting sees (about the network's reach at the default size)."""
WIDTHS, BLOCKS = (4, 128), (0, 16)
"""The widths and residual block counts a network file may declare (anything else is refused before building)."""


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


def _layer(cin: int, cout: int, k: int, stride: int = 1, up: bool = False) -> nn.Sequential:
    steps: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)] if up else []
    return nn.Sequential(*steps, _conv(cin, cout, k, stride), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3), nn.ReLU(inplace=True), _conv(c, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleNet(nn.Module):
    """Pictures ``(B, 3, H, W)`` in [0, 1] to painted pictures of the same shape (any size: padded to a multiple of
    4 and cropped back).

    Args:
        width: channels of the first layer (doubled at each of the two strided layers); Johnson et al. use 32.
        blocks: residual blocks at a quarter of the resolution; Johnson et al. use 5.
    """

    def __init__(self, width: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.width, self.blocks = width, blocks
        w = width
        self.down = nn.Sequential(_layer(3, w, 9), _layer(w, 2 * w, 3, 2), _layer(2 * w, 4 * w, 3, 2))
        self.middle = nn.Sequential(*[_Residual(4 * w) for _ in range(blocks)])
        self.up = nn.Sequential(_layer(4 * w, 2 * w, 3, up=True), _layer(2 * w, w, 3, up=True))
        self.out = _conv(w, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % 4, -w % 4
        padded = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        return torch.sigmoid(self.out(self.up(self.middle(self.down(padded))))[..., :h, :w])


def _feather(n: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """Weights along one side of a tile: rising over ``overlap`` pixels where a neighbour overlaps, 1 elsewhere."""
    ramp = torch.ones(n)
    if overlap > 0:
        rise = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if not first:
            ramp[:overlap] = rise
        if not last:
            ramp[n - overlap :] = rise.flip(0)
    return ramp


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, step))
    return [*starts, n - tile]


@torch.inference_mode()
def paint_tiled(net: StyleNet, picture: torch.Tensor, tile: int = 512, overlap: int = 32) -> torch.Tensor:
    """``net`` applied to one picture ``(1, 3, H, W)`` of any size, returned on the CPU.

    A picture larger than ``tile`` on a side is painted in tiles, each seen with ``CONTEXT`` pixels around it that are
    cut away after, the tiles blended across ``overlap`` pixels; memory then depends on ``tile``, not the picture.
    """
    device = next(net.parameters()).device
    h, w = picture.shape[-2:]
    if max(h, w) <= tile:
        return net(picture.to(device)).cpu()
    overlap = min(overlap, tile // 4)
    out, weight = torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, tile - overlap), _starts(w, tile, tile - overlap)
    for y in ys:
        for x in xs:
            top, left = max(0, y - CONTEXT), max(0, x - CONTEXT)
            seen = picture[..., top : min(h, y + tile + CONTEXT), left : min(w, x + tile + CONTEXT)]
            piece = net(seen.to(device)).cpu()[..., y - top : y - top + tile, x - left : x - left + tile]
            th, tw = piece.shape[-2:]
            wy = _feather(th, overlap, y == ys[0], y == ys[-1])
            wx = _feather(tw, overlap, x == xs[0], x == xs[-1])
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[..., y : y + th, x : x + tw] += piece * wt
            weight[..., y : y + th, x : x + tw] += wt
    return out / weight


def network_file(source: str) -> Path:
    """The network file ``net=`` names: a file, a ``style_train`` run folder holding ``network.pt``, or the name of a
    packaged network (``ihc``)."""
    packaged = sorted(p.stem for p in PACKAGED.glob("*.pt"))
    if not source:
        raise UserError(
            f"recipe=style_fast needs a trained network; pass net=RUN_FOLDER (a style_train run), a file or a "
            f"packaged one ({', '.join(packaged)})"
        )
    path = Path(source).expanduser()
    if not path.exists() and (PACKAGED / f"{source}.pt").is_file():
        return PACKAGED / f"{source}.pt"
    if path.is_dir():
        path = path / NETWORK
    if not path.is_file():
        problem = missing_or(Path(source).expanduser(), f"holds no {NETWORK}")
        hint = close_matches(source, packaged)
        problem += f" ({hint})" if hint else ""
        raise UserError(
            f"net={source} {problem}; use a packaged network ({' or '.join(f'net={n}' for n in packaged)}) "
            "or train one with: dreamloom recipe=style_train style=PICTURE, then pass its run folder"
        )
    return path


def _plain_int(state: dict[str, Any], key: str, bounds: tuple[int, int], path: Path) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise UserError(f"{path} declares {key}={value!r}, which no style network has; train the network again")
    return value


def load_network(source: str, device: torch.device | str = "cpu") -> tuple[StyleNet, dict[str, Any]]:
    """The network saved by ``style_train`` and the plain values saved with it (style, size, model, losses).

    Only tensors and plain values are read (``weights_only``); the network is built from its two declared numbers,
    never from anything named in the file.
    """
    path = network_file(source)
    foreign = UserError(f"{path} is not a style network dreamloom can read; train one with recipe=style_train")
    try:
        with warnings.catch_warnings():  # a foreign pickle makes torch warn before it refuses: one line is enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged or foreign file: torch raises many kinds, with long messages
        raise foreign from None
    if not isinstance(state, dict) or state.get("kind") != KIND or not isinstance(state.get("weights"), dict):
        raise foreign
    if state.get("format") != FORMAT:
        raise UserError(f"{path} is a style network of another version; train it again with recipe=style_train")
    net = StyleNet(_plain_int(state, "width", WIDTHS, path), _plain_int(state, "blocks", BLOCKS, path))
    try:
        net.load_state_dict(state["weights"])
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"{path} holds weights that do not fit its own network; train it again") from None
    if not all(bool(torch.isfinite(w).all()) for w in net.state_dict().values()):
        raise UserError(f"{path} holds weights that are not finite numbers (NaN or infinity); train it again")
    info = {k: v for k, v in state.items() if k not in ("weights",)}
    return net.to(device).eval(), info


def network_state(net: StyleNet, **info: Any) -> dict[str, Any]:
    """What :data:`NETWORK` holds: the weights, the network's two numbers and ``info`` (plain values only)."""
    weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return {"kind": KIND, "format": FORMAT, "width": net.width, "blocks": net.blocks, "weights": weights, **info}
