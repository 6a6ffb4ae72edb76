"""Looking at the model itself: its layers (``layers``), one layer's activations for a picture (``activations``) and a
convolution's kernels (``filters``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from engine.checks import as_typed
from engine.errors import UserError
from engine.export import check_sheet, contact_sheet, write_text
from engine.images import check_side, colormap, input_picture, target_size
from engine.layers import Layer, layer_rows
from engine.models import load_model
from engine.results import RunResult, save_metrics, write_view
from engine.runner import load_view, recipe
from engine.spec import views
from objectives.activation import MOST_CHANNELS, channel_list
from recipes.attribution import conv_layer

__all__ = ["activations", "filters", "layers"]

SCALES = ("each", "shared")
THUMB = {"thumb": (int, 0, True)}
"""The side a small map or kernel is enlarged to on the sheet."""


@recipe(penalties=False, ignores={"input": "", "tile_size": "", **views()})
def layers(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Print the model's layers, the block outputs worth visualizing first (with output shape and receptive field),
    then every other module, and save the table as ``layers.txt``. Only the architecture is built: no weights are
    read or downloaded, since names and shapes do not depend on them."""
    view = load_model(cfg.model.name, None, None, cfg.device, fold=False)
    hw = target_size(cfg.size if cfg.size is not None else 224)
    check_side(cfg, hw)
    t0 = time.perf_counter()
    rows = layer_rows(view, hw)
    blocks = [r for r in rows if r.block]
    text = "\n".join([*_layers_intro(cfg.model.name, hw, len(blocks), len(rows)), *_layers_table(rows)]) + "\n"
    print(text, end="")
    write_text(folder / "layers.txt", text)
    metrics = {
        "recipe": recipe,
        "model": cfg.model.name,
        "layers": len(rows),
        "blocks": [r.name for r in blocks],
        "image_size": list(hw),
        "seconds": round(time.perf_counter() - t0, 3),
        "seed": cfg.seed,
        "steps": 0,
    }
    return save_metrics(folder, metrics)


def _layers_intro(model: str, hw: tuple[int, int], blocks: int, total: int) -> list[str]:
    return [
        f"{model} at {hw[0]}x{hw[1]}: {blocks} block outputs worth visualizing (marked *), then the other "
        f"{total - blocks} modules.",
        "Shallow layers (a small receptive field) show edges and colours, middle ones textures and patterns, deep "
        "ones object parts; use a name as layer=.",
        "",
    ]


def _layers_table(rows: list[Layer]) -> list[str]:
    width = max(len(r.name) for r in rows) + 2
    kind = max(len(r.kind) for r in rows) + 2
    head = f"  {'layer'.ljust(width)}{'type'.ljust(kind)}{'output (C, H, W)'.ljust(20)}receptive field"
    lines = [head]
    for group in ([r for r in rows if r.block], [r for r in rows if not r.block]):
        for r in group:
            mark = "* " if r.block else "  "
            field = "-" if r.field is None else f"{r.field} px"
            lines.append(f"{mark}{r.name.ljust(width)}{r.kind.ljust(kind)}{str(r.shape).ljust(20)}{field}")
        lines.append("")
    return lines[:-1]


def _tiles(maps: torch.Tensor, side: int) -> torch.Tensor:
    """Enlarge small maps ``(N, C, h, w)`` with nearest neighbours until the long side reaches ``side``."""
    factor = max(1, -(-side // max(maps.shape[-2:])))
    check_sheet(maps.shape[0], (maps.shape[-2] * factor, maps.shape[-1] * factor), side)
    return maps.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


@recipe(numbers={**THUMB, "top": (int, 0, True)}, penalties=False, ignores={"tile_size": "", **views()})
def activations(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """A layer's channels for ``input`` as a grid of heat maps on one shared scale, each captioned with its channel:
    every channel in order, the ones ``channels`` names, or the ``top`` most active (strongest first)."""
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    layer = str(cfg.layer)
    conv_layer(view, layer, (picture.shape[-2], picture.shape[-1]), "activations shows a convolutional layer's maps")
    with torch.no_grad():
        acts = view(picture, [layer])[layer][0].float()
    picked = _shown_channels(cfg, layer, acts)
    scale = torch.quantile(acts.clamp_min(0).flatten(), 0.995).clamp_min(1e-12)
    shown = torch.stack([colormap(a) for a in (acts[picked] / scale).clamp(0, 1)])
    sheet = contact_sheet(_tiles(shown, int(cfg.thumb)).cpu(), pad=2, labels=[str(c) for c in picked])
    channels, h, w = acts.shape
    active = float((acts > 0).float().mean())
    return write_view(
        cfg,
        folder,
        recipe,
        sheet,
        {"activations": acts.cpu().numpy()},
        layer=layer,
        shape=[channels, h, w],
        active_share=round(active, 4),
        channels=picked,
    )


def _shown_channels(cfg: DictConfig, layer: str, acts: torch.Tensor) -> list[int]:
    """The channels to draw: ``channels=`` (a range, list or index), the ``top=`` strongest by mean activation, or
    all of them in order."""
    count = acts.shape[0]
    if cfg.channels is not None and cfg.top is not None:
        raise UserError(
            f"channels={as_typed(cfg.channels)} and top={cfg.top} both pick the maps to show; give one of them"
        )
    if cfg.top is not None:
        if int(cfg.top) > count:
            raise UserError(f"top={cfg.top} is more than the {count} channels of {layer}; use top={count} or less")
        return acts.mean(dim=(1, 2)).argsort(descending=True, stable=True)[: int(cfg.top)].tolist()
    if cfg.channels is None:
        return list(range(count))
    picked = channel_list(cfg.channels, most=max(count, MOST_CHANNELS))  # one past the layer: named below
    outside = [c for c in picked if not 0 <= c < count]
    if outside:
        raise UserError(
            f"channels={as_typed(cfg.channels)} names channel {outside[0]}, but layer {layer} has {count} "
            f"channels; use 0 to {count - 1}"
        )
    return picked


@recipe(
    numbers=THUMB,
    penalties=False,
    ignores={"input": "", "tile_size": "", "size": "it shows the layer's weights, made for no picture", **views()},
)
def filters(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """A convolution's kernels as tiles: colour for a layer that reads RGB, otherwise one grey tile per input channel
    (rows: up to 64 output channels, columns: up to 16 input channels). Grey or mid-colour is 0. ``scale=each``
    stretches every kernel to full contrast (a few large kernels would leave the rest grey); ``shared`` keeps their
    sizes comparable."""
    view = load_view(cfg, fold=False)  # the kernels as trained, batch norms not folded in
    layer = str(cfg.layer)
    view.check_layers([layer])
    module = view.model.get_submodule(view.aliases.get(layer, layer))
    if not isinstance(module, torch.nn.Conv2d):
        kind = type(module).__name__
        kind = f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind}"
        raise UserError(
            f"layer {layer} is {kind}, not a convolution; filters shows a Conv2d's kernels "
            "(the first is features.0.0 on MobileNetV2; list them with: dreamloom recipe=layers)"
        )
    if cfg.scale not in SCALES:
        raise UserError(f"scale={cfg.scale} is not a choice; use scale=each (every kernel at full contrast) or shared")
    weight = module.weight.detach().float().cpu()
    peak = weight.abs().amax(dim=(1, 2, 3), keepdim=True) if cfg.scale == "each" else weight.abs().max()
    shown = 0.5 + weight / (2 * peak.clamp_min(1e-12))
    rows, cols = weight.shape[:2]
    if cols in (1, 3):  # kernels of RGB in colour; a depthwise layer's, one per channel, in a square grid
        tiles, columns = shown.expand(-1, 3, -1, -1), None
    else:
        rows, cols = min(64, rows), min(16, cols)
        tiles, columns = shown[:rows, :cols].reshape(rows * cols, 1, *weight.shape[-2:]).expand(-1, 3, -1, -1), cols
        sides = zip((rows, cols), weight.shape[:2], ("output", "input"), strict=False)
        cut = [f"{n} of {total} {side} channels" for n, total, side in sides if n < total]
        if cut:
            print(
                f"dreamloom: the sheet shows the first {' and '.join(cut)}; filters.npy holds them all", file=sys.stderr
            )
    sheet = contact_sheet(_tiles(tiles, int(cfg.thumb)), columns, pad=2)
    return write_view(
        cfg, folder, recipe, sheet, {"filters": weight.numpy()}, layer=layer, shape=list(weight.shape),
        shown=[rows, cols],
    )  # fmt: skip
