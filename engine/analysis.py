"""The analysis recipes: saliency, guided backprop (and deconvnet, guided Grad-CAM), Grad-CAM and occlusion.

Each explains the model's decision on ``input`` for one or more classes and writes ``image.png`` (the input, then one
captioned panel per class, heat maps with a colour bar), ``maps.npy`` (the raw maps, one per class) and
``metrics.json``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from engine.adversarial import ADVERSARIAL_TASKS
from engine.attribution import conv_layer, gradcam, input_gradient, occlusion, rectifier_view, saliency
from engine.callbacks import Progress
from engine.errors import UserError
from engine.export import contact_sheet
from engine.models import ModelView
from engine.runner import RunResult, input_picture, load_view, probabilities, top5, write_view
from objectives.classes import resolve_class

__all__ = ["ANALYSIS_TASKS", "colormap"]

_STOPS = torch.tensor(
    [[0.05, 0.05, 0.30], [0.10, 0.50, 0.95], [0.30, 0.95, 0.40], [1.00, 0.80, 0.10], [0.85, 0.10, 0.05]]
)
BAR = 10
"""Width in pixels of the colour bar right of each heat map (low at the bottom, high at the top)."""


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] to colours from dark blue through green and yellow to red. ``(H, W) -> (3, H, W)``."""
    v = values.clamp(0, 1) * (len(_STOPS) - 1)
    low = v.floor().long().clamp(max=len(_STOPS) - 2)
    t = (v - low).unsqueeze(0)
    stops = _STOPS.to(values.device)
    return stops[low].permute(2, 0, 1) * (1 - t) + stops[low + 1].permute(2, 0, 1) * t


def _scaled(heat: torch.Tensor) -> torch.Tensor:
    """Divide by the 99.5th percentile, so a few hot pixels do not make the rest of the map dark."""
    top = torch.quantile(heat.flatten().float(), 0.995).clamp_min(1e-12)
    return (heat / top).clamp(0, 1)


def _with_bar(panel: torch.Tensor) -> torch.Tensor:
    h = panel.shape[-2]
    ramp = torch.linspace(1, 0, h, device=panel.device).unsqueeze(1).expand(h, BAR)
    gap = torch.ones(3, h, 3, device=panel.device)
    return torch.cat([panel, gap, colormap(ramp)], dim=-1)


def _targets(cfg: DictConfig, view: ModelView, probs: torch.Tensor) -> list[int]:
    text = str(cfg.target).strip().lower()
    match = re.fullmatch(r"top(\d+)", text)
    if match:
        k = int(match.group(1))
        if not 1 <= k <= min(10, len(probs)):
            raise UserError(f"target={cfg.target} is not valid; use top1 … top10, a class name or an index")
        return probs.topk(k).indices.tolist()
    return [resolve_class(cfg.target, view.categories)]


def _explainer(cfg: DictConfig, view: ModelView, hw: tuple[int, int]) -> Callable[[torch.Tensor, int], Any]:
    """Check the task's layers and rule once, then return ``explain(picture, target) -> (panel, raw map)``: the
    class's panel for the sheet ``(3, H, W + bar)`` and its map before any scaling."""
    task = str(cfg.task)
    if task == "gradcam" or (task == "guided_backprop" and cfg.cam_layer):
        conv_layer(view, str(cfg.layer if task == "gradcam" else cfg.cam_layer), hw)
    if task == "saliency":
        samples = int(cfg.samples) if cfg.smoothgrad else 0

        def explain_saliency(picture: torch.Tensor, target: int) -> Any:
            heat = saliency(view, picture, target, samples, float(cfg.sigma))
            return _with_bar(colormap(_scaled(heat))), heat

        return explain_saliency
    if task == "guided_backprop":
        rectified = rectifier_view(view, str(cfg.rule))  # one copy of the model for every class

        def explain_guided(picture: torch.Tensor, target: int) -> Any:
            grad = input_gradient(rectified, picture, target)
            if cfg.cam_layer:
                grad = grad * gradcam(view, picture, target, str(cfg.cam_layer))
            shown = (grad / (3 * grad.std().clamp_min(1e-12)) * 0.5 + 0.5).clamp(0, 1)
            return torch.cat([shown, torch.ones(3, shown.shape[-2], 3 + BAR, device=shown.device)], dim=-1), grad

        return explain_guided

    def explain_heat(picture: torch.Tensor, target: int) -> Any:
        if task == "gradcam":
            heat = gradcam(view, picture, target, str(cfg.layer))
        else:
            bar = Progress("occlusion ")
            heat = occlusion(view, picture, target, int(cfg.patch), int(cfg.stride), int(cfg.chunk), progress=bar)
        overlay = 0.5 * picture[0].to(heat.device) + 0.5 * colormap(_scaled(heat.clamp_min(0)))
        return _with_bar(overlay), heat

    return explain_heat


def attribute(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Run one of the analysis views on ``input`` for the classes ``target`` names, and write its run folder."""
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    hw = (picture.shape[-2], picture.shape[-1])
    explain = _explainer(cfg, view, hw)
    probs = probabilities(view, picture)
    targets = _targets(cfg, view, probs)
    t0 = time.perf_counter()
    panels, maps = zip(*(explain(picture, target) for target in targets), strict=True)
    seconds = time.perf_counter() - t0
    width = panels[0].shape[-1]
    first = torch.cat([picture[0], torch.ones(3, hw[0], width - hw[1], device=picture.device)], dim=-1)
    names = [view.categories[t] for t in targets]
    labels = ["input", *(f"{n[:22]} {float(probs[t]):.0%}" for n, t in zip(names, targets, strict=True))]
    sheet = contact_sheet(torch.stack([first, *panels]).cpu(), len(labels), labels=labels)
    return write_view(
        cfg,
        folder,
        recipe,
        sheet,
        {"maps": np.stack([m.detach().float().cpu().numpy() for m in maps])},
        seconds=round(seconds, 3),
        image_size=list(hw),
        device=str(view.device),
        targets=[
            {"class": n, "index": t, "probability": round(float(probs[t]), 4)}
            for n, t in zip(names, targets, strict=True)
        ],
        top5=top5(probs, view.categories),
    )


def _tiles(maps: torch.Tensor, side: int) -> torch.Tensor:
    """Enlarge small maps ``(N, C, h, w)`` with nearest neighbours until the long side reaches ``side``."""
    factor = max(1, -(-side // max(maps.shape[-2:])))
    return maps.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


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
    sheet = contact_sheet(_tiles(shown, int(cfg.tile)).cpu(), pad=2)
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
    sheet = contact_sheet(_tiles(tiles, int(cfg.tile)), columns, pad=2)
    return write_view(cfg, folder, recipe, sheet, {"filters": weight.numpy()}, layer=layer, shape=list(weight.shape))


ANALYSIS_TASKS: dict[str, Callable[[DictConfig, Path, str], RunResult]] = {
    **{name: attribute for name in ("saliency", "guided_backprop", "gradcam", "occlusion")},
    "activations": activations,
    "filters": filters,
    **ADVERSARIAL_TASKS,
}
"""Task name -> function, for the runner's dispatch table."""
