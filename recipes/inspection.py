"""Looking at the model itself: its layers (``layers``), one layer's activations for a picture (``activations``) and a
convolution's kernels (``filters``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from engine.errors import UserError
from engine.export import contact_sheet, write_text
from engine.images import colormap, target_size
from engine.models import layer_table, load_model
from engine.results import RunResult, save_metrics, write_view
from engine.runner import input_picture, load_view, recipe
from recipes.attribution import conv_layer

__all__ = ["activations", "filters", "layers"]

THUMB = {"thumb": (int, 0, True)}
"""The side a small map or kernel is enlarged to on the sheet."""


@recipe(penalties=False)
def layers(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Print every layer's name, type and output shape, and save the table as ``layers.txt``."""
    view = load_model(cfg.model.name, cfg.model.weights, cfg.model.checkpoint, cfg.device, fold=False)
    hw = target_size(cfg.size if cfg.size is not None else 224)
    t0 = time.perf_counter()
    rows = layer_table(view, hw)
    width = max(len(n) for n, _, _ in rows)
    lines = [f"{'layer'.ljust(width)}  {'type'.ljust(24)}  output shape (C, H, W) at {hw[0]}x{hw[1]}"]
    lines += [f"{n.ljust(width)}  {t.ljust(24)}  {tuple(s)}" for n, t, s in rows]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    write_text(folder / "layers.txt", text)
    metrics = {
        "recipe": recipe,
        "model": cfg.model.name,
        "layers": len(rows),
        "image_size": list(hw),
        "seconds": round(time.perf_counter() - t0, 3),
        "seed": cfg.seed,
        "steps": 0,
    }
    return save_metrics(folder, metrics)


def _tiles(maps: torch.Tensor, side: int) -> torch.Tensor:
    """Enlarge small maps ``(N, C, h, w)`` with nearest neighbours until the long side reaches ``side``."""
    factor = max(1, -(-side // max(maps.shape[-2:])))
    return maps.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


@recipe(numbers=THUMB, penalties=False)
def activations(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Every channel of ``layer`` for ``input``, as a grid of heat maps in channel order (one shared scale)."""
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    layer = str(cfg.layer)
    conv_layer(view, layer, (picture.shape[-2], picture.shape[-1]))
    with torch.no_grad():
        acts = view(picture, [layer])[layer][0].float()
    scale = torch.quantile(acts.clamp_min(0).flatten(), 0.995).clamp_min(1e-12)
    shown = torch.stack([colormap(a) for a in (acts / scale).clamp(0, 1)])
    sheet = contact_sheet(_tiles(shown, int(cfg.thumb)).cpu(), pad=2)
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
    )


@recipe(numbers=THUMB, penalties=False)
def filters(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """A convolution's kernels as tiles: colour for a layer that reads RGB, otherwise one grey tile per input channel
    (rows: up to 64 output channels, columns: up to 16 input channels). Grey or mid-colour is 0."""
    view = load_view(cfg, fold=False)  # the kernels as trained, batch norms not folded in
    layer = str(cfg.layer)
    view.check_layers([layer])
    module = view.model.get_submodule(view.aliases.get(layer, layer))
    if not isinstance(module, torch.nn.Conv2d):
        raise UserError(
            f"layer {layer} is a {type(module).__name__}, not a convolution; filters shows a Conv2d's kernels "
            "(the first is features.0.0 on MobileNetV2; list them with: dreamloom recipe=layers)"
        )
    weight = module.weight.detach().float().cpu()
    shown = 0.5 + weight / (2 * weight.abs().max().clamp_min(1e-12))
    if weight.shape[1] == 3:
        tiles, columns = shown, None
    else:
        rows, cols = min(64, weight.shape[0]), min(16, weight.shape[1])
        tiles, columns = shown[:rows, :cols].reshape(rows * cols, 1, *weight.shape[-2:]).expand(-1, 3, -1, -1), cols
    sheet = contact_sheet(_tiles(tiles, int(cfg.thumb)), columns, pad=2)
    return write_view(cfg, folder, recipe, sheet, {"filters": weight.numpy()}, layer=layer, shape=list(weight.shape))
