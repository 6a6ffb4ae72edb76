"""Where a classifier looks: gradient saliency (with SmoothGrad), guided backprop and deconvnet, Grad-CAM and
occlusion maps, each for one class of one picture, and the recipes that show them (the input gradients themselves
are in :mod:`recipes.gradients`).

Every map function takes a :class:`~engine.models.ModelView` and a picture in [0, 1] of shape ``(1, 3, H, W)`` and
returns a map at the picture's size; none changes the model it is given. The recipes (``saliency_map``,
``guided_backprop``, ``gradcam_map``, ``occlusion_map``) write the input, then one captioned panel per class (heat
maps with a colour bar), ``maps.npy`` (the raw maps, one per class) and ``metrics.json``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from engine.callbacks import Progress
from engine.errors import UserError
from engine.export import contact_sheet
from engine.images import colormap, input_picture
from engine.models import LOGITS, ModelView
from engine.results import RunResult, probabilities, top5, write_view
from engine.runner import load_view, recipe
from engine.spec import views
from objectives.classes import resolve_class
from recipes.cams import CAM_METHODS, cam
from recipes.gradients import (
    BASELINES,
    RULES,
    SALIENCY_METHODS,
    guided,
    input_gradient,
    rectifier_view,
    saliency,
    shifted_gradients,
)

__all__ = [
    "RULES",
    "conv_layer",
    "gradcam",
    "gradcam_map",
    "guided",
    "guided_backprop",
    "input_gradient",
    "occlusion",
    "occlusion_map",
    "rectifier_view",
    "saliency",
    "saliency_map",
    "shifted_gradients",
]

MAX_SHIFTS = 8
"""The most pixels copies are moved by (``shifts=``): 64 passes per class."""


def conv_layer(
    view: ModelView, layer: str, hw: tuple[int, int], use: str = "Grad-CAM needs a convolutional layer"
) -> None:
    """Raise :class:`UserError` unless ``layer`` gives a spatial map ``(C, H, W)`` for a picture of size ``hw``;
    ``use`` says what needs one."""
    view.check_maps([layer], f"{use} such as the last one before pooling", hw)


def gradcam(view: ModelView, picture: torch.Tensor, target: int, layer: str) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017); on a global-pooling + linear head at the last conv layer this is CAM (Zhou
    et al., 2016) up to a constant. The other methods of the family are in :mod:`recipes.cams`. Shape: ``(H, W)``."""
    return cam(view, picture, target, layer, "gradcam")


@torch.no_grad()
def occlusion(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    patch: int,
    stride: int,
    batch: int = 32,
    fill: float = 0.5,
    progress: Progress | None = None,
) -> torch.Tensor:
    """How much the class probability drops when a grey ``patch`` square covers each place (Zeiler & Fergus, 2014),
    averaged over the squares that cover each pixel; ``batch`` occluded copies go through the model at once, and
    ``progress`` hears of each pass.

    Shape: ``(H, W)``; positive where covering the picture costs the class confidence.
    """
    x = picture.to(view.device)
    h, w = x.shape[-2:]
    if not 0 < patch <= min(h, w) or stride <= 0:
        raise UserError(f"patch={patch} stride={stride} do not fit a {h}x{w} picture; use 0 < patch <= {min(h, w)}")
    clean = view(x, [LOGITS])[LOGITS].softmax(-1)[0, target]
    ys, xs = _starts(h, patch, stride), _starts(w, patch, stride)
    places = [(y, xx) for y in ys for xx in xs]
    drop = torch.zeros(h, w, device=x.device)
    count = torch.zeros(h, w, device=x.device)
    passes = math.ceil(len(places) / batch)
    if progress is not None:
        progress.on_start(passes, lambda: x)
    for start in range(0, len(places), batch):
        chunk = places[start : start + batch]
        copies = x.repeat(len(chunk), 1, 1, 1)
        for i, (y, xx) in enumerate(chunk):
            copies[i, :, y : y + patch, xx : xx + patch] = fill
        probs = view(copies, [LOGITS])[LOGITS].softmax(-1)[:, target]
        for (y, xx), p in zip(chunk, probs, strict=True):
            drop[y : y + patch, xx : xx + patch] += clean - p
            count[y : y + patch, xx : xx + patch] += 1
        if progress is not None:
            progress.on_step(start // batch, None, lambda: x)
    return drop / count.clamp_min(1)


def _starts(n: int, patch: int, stride: int) -> list[int]:
    """Where the squares start along a side of ``n`` pixels: every ``stride``, and one flush with the far edge when
    the stride does not land there, so every pixel is covered."""
    starts = list(range(0, n - patch + 1, stride))
    return starts if starts[-1] == n - patch else [*starts, n - patch]


BAR = 10
"""Width in pixels of the colour bar right of each heat map (low at the bottom, high at the top)."""


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


Explain = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
"""``explain(picture, target) -> (panel, raw map)``: the class's panel for the sheet ``(3, H, W + bar)`` and its map
before any scaling."""


def _heat_panel(picture: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    overlay = 0.5 * picture[0].to(heat.device) + 0.5 * colormap(_scaled(heat.clamp_min(0)))
    return _with_bar(overlay)


def _shifts(cfg: DictConfig) -> int:
    shifts = int(cfg.shifts)
    if not 1 <= shifts <= MAX_SHIFTS:
        raise UserError(f"shifts={shifts} is not valid; use 1 (no moved copies) to {MAX_SHIFTS} (4 is the default)")
    return shifts


def _over_photo(picture: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """A sparse map over the photo: the photo greyed and dimmed, the map's colour laid on as strongly as it is high."""
    scaled = _scaled(heat)
    grey = picture[0].to(heat.device).mean(0, keepdim=True).expand(3, -1, -1) * 0.6 + 0.2
    alpha = scaled.unsqueeze(0)
    return _with_bar(grey * (1 - alpha) + colormap(scaled) * alpha)


def _choice(cfg: DictConfig, key: str, choices: Iterable[str]) -> str:
    value = str(cfg[key])
    if value not in choices:
        raise UserError(f"{key}={cfg[key]} is not known; use one of {', '.join(choices)}")
    return value


def _saliency(cfg: DictConfig, view: ModelView, hw: tuple[int, int]) -> Explain:
    method, baseline = _choice(cfg, "method", SALIENCY_METHODS), _choice(cfg, "baseline", BASELINES)
    shifts = _shifts(cfg)

    def explain(picture: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        heat = saliency(
            view, picture, target, method, int(cfg.samples), float(cfg.sigma), None, shifts, int(cfg.steps), baseline
        )
        return _over_photo(picture, heat.abs()), heat

    return explain


def _guided(cfg: DictConfig, view: ModelView, hw: tuple[int, int]) -> Explain:
    if cfg.cam_layer:
        conv_layer(view, str(cfg.cam_layer), hw)
    rectified = rectifier_view(view, str(cfg.rule))  # one copy of the model for every class
    shifts = _shifts(cfg)

    def explain(picture: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        grad = input_gradient(rectified, picture, target, shifts)
        if cfg.cam_layer:
            grad = grad * gradcam(view, picture, target, str(cfg.cam_layer))
        shown = (grad / (3 * grad.std().clamp_min(1e-12)) * 0.5 + 0.5).clamp(0, 1)
        return torch.cat([shown, torch.ones(3, shown.shape[-2], 3 + BAR, device=shown.device)], dim=-1), grad

    return explain


def _gradcam(cfg: DictConfig, view: ModelView, hw: tuple[int, int]) -> Explain:
    conv_layer(view, str(cfg.layer), hw)
    method = _choice(cfg, "method", CAM_METHODS)

    def explain(picture: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        bar = Progress(f"{method} ") if method in ("scorecam", "ablationcam") else None  # many passes: seconds
        heat = cam(view, picture, target, str(cfg.layer), method, int(cfg.chunk), bar)
        return _heat_panel(picture, heat), heat

    return explain


def _occlusion(cfg: DictConfig, view: ModelView, hw: tuple[int, int]) -> Explain:
    def explain(picture: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        bar = Progress("occlusion ")
        heat = occlusion(view, picture, target, int(cfg.patch), int(cfg.stride), int(cfg.chunk), progress=bar)
        return _heat_panel(picture, heat), heat

    return explain


@recipe(
    numbers={key: (int, 0, True) for key in ("samples", "shifts", "steps")} | {"sigma": (float, 0, False)},
    penalties=False,
    ignores={"tile_size": "", **views("steps")},
)
def saliency_map(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Gradient saliency (Simonyan et al., 2014) and its kin by ``method=``: SmoothGrad, VarGrad, input × gradient,
    Integrated Gradients (see :func:`recipes.gradients.saliency`)."""
    return _attribute(cfg, folder, recipe, _saliency)


@recipe(numbers={"shifts": (int, 0, True)}, penalties=False, ignores={"tile_size": "", **views()})
def guided_backprop(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Guided backprop (Springenberg et al., 2015) or deconvnet (``rule=``); guided Grad-CAM with ``cam_layer=``."""
    return _attribute(cfg, folder, recipe, _guided)


@recipe(numbers={"chunk": (int, 0, True)}, penalties=False, ignores={"tile_size": "", **views()})
def gradcam_map(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The CAM family at ``layer`` by ``method=`` (Grad-CAM by default; at the last conv layer it equals CAM, Zhou et
    al., 2016): see :mod:`recipes.cams`."""
    return _attribute(cfg, folder, recipe, _gradcam)


@recipe(
    numbers={key: (int, 0, True) for key in ("patch", "stride", "chunk")},
    penalties=False,
    ignores={"tile_size": "", **views()},
)
def occlusion_map(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Occlusion (Zeiler & Fergus, 2014): the class probability's drop under a grey square slid over the picture."""
    return _attribute(cfg, folder, recipe, _occlusion)


def _attribute(cfg: DictConfig, folder: Path, recipe: str, explainer: Callable[..., Explain]) -> RunResult:
    """Explain the model's answer on ``input`` for the classes ``target`` names with ``explainer(cfg, view, hw)``,
    and write the sheet (the input, then one captioned panel per class), ``maps.npy`` and ``metrics.json``."""
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    hw = (picture.shape[-2], picture.shape[-1])
    explain = explainer(cfg, view, hw)
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
