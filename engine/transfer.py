"""Recipes that match other pictures' features: style transfer, texture synthesis and feature inversion.

Each builds its objective per octave size (the targets are computed once per size, without a graph), hands it to
:func:`engine.runner.optimize_octaves`, and writes the run folder with :func:`engine.runner.finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from engine.callbacks import Recorder
from engine.colors import COLOR_MODES, keep_chroma, luminance, match_colors, match_luminance, region_masks
from engine.errors import UserError
from engine.images import load_image, resize_to, target_size
from engine.measures import feature_distance
from engine.models import ModelView
from engine.octaves import octave_sizes
from engine.runner import (
    Rendered,
    RunResult,
    check_number,
    finish,
    input_picture,
    load_view,
    optimize_octaves,
    snapshots,
)
from objectives.base import Objective
from objectives.transfer import SMOOTHING, blend_weights, content, feature_targets, inversion, style, style_grams
from regularizers import l2, total_variation

__all__ = ["invert", "invert_sweep", "transfer"]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return list(value)
    return [value]


def _cached(make: Callable[[tuple[int, int]], Objective]) -> Callable[[tuple[int, int]], Objective]:
    made: dict[tuple[int, int], Objective] = {}

    def at(hw: tuple[int, int]) -> Objective:
        if hw not in made:
            made[hw] = make(hw)
        return made[hw]

    return at


def _priors(cfg: DictConfig, objective: Objective) -> Objective:
    if cfg.tv:
        objective = objective + float(cfg.tv) * total_variation()
    if cfg.l2:
        objective = objective + float(cfg.l2) * l2()
    return objective


def _style_layers(cfg: DictConfig, view: ModelView) -> tuple[str | None, list[str], list[float] | None]:
    layers = [str(layer) for layer in _as_list(cfg.style_layers)]
    if not layers:
        raise UserError(
            f"model {view.name} has no default style layers; pass style_layers=[...] and content_layer=... "
            "(list the layers with: dreamloom recipe=layers)"
        )
    weights = _as_list(cfg.layer_weights) or None
    if weights is not None and len(weights) != len(layers):
        raise UserError(f"{len(weights)} layer_weights for {len(layers)} style_layers; give one weight per layer")
    content_layer = str(cfg.content_layer) if cfg.content_layer else None
    view.check_layers([*layers, *([content_layer] if content_layer else [])])
    if cfg.smoothing not in SMOOTHING:
        raise UserError(f"smoothing={cfg.smoothing} is not known; use one of {', '.join(SMOOTHING)}")
    return content_layer, layers, [float(w) for w in weights] if weights else None


def _start(cfg: DictConfig, content_picture: torch.Tensor | None) -> torch.Tensor | None:
    if cfg.init == "content":
        if content_picture is None:
            raise UserError("init=content needs a content picture; pass content=photo.jpg or use init=noise")
        return content_picture
    if cfg.init in ("noise", "zeros"):
        return None
    return load_image(cfg.init, "init")


def transfer(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Style transfer (with ``content``) or texture synthesis (without), following Gatys et al. (2016).

    Keys: ``content``, ``style`` (one or a list), ``style_weights``, ``style_scale``, ``colors``, ``mask``,
    ``mask_colors``, ``content_layer``, ``style_layers``, ``layer_weights``, ``smoothing``, ``content_weight``,
    ``style_weight`` and the shared ones (``size``, ``octaves``, ``steps``, ``lr``, ``tv`` …).
    """
    _untiled(cfg, recipe)
    view = load_view(cfg)
    if cfg.get("tile"):
        view.wrap_edges()
    style_scale = check_number(cfg, "style_scale")
    content_weight = check_number(cfg, "content_weight", strict=False)
    style_weight = check_number(cfg, "style_weight")
    if cfg.colors not in COLOR_MODES:
        raise UserError(f"colors={cfg.colors} is not known; use colors=style, luminance or histogram")
    sources = _as_list(cfg.style)
    if not sources:
        raise UserError("no style picture; pass style=painting.jpg (or style=[a.jpg,b.jpg])")
    blend = blend_weights([float(w) for w in _as_list(cfg.style_weights)] or None, len(sources))
    content_layer, layers, layer_weights = _style_layers(cfg, view)
    photo = load_image(cfg.content, "content") if cfg.content else None
    hw = target_size(cfg.size, None if photo is None else (photo.shape[-2], photo.shape[-1]))
    styles = [load_image(s, "style") for s in sources]
    if photo is not None:
        photo = resize_to(photo, hw)
        if cfg.colors == "luminance":
            styles = [match_luminance(s, photo) for s in styles]
        elif cfg.colors == "histogram":
            styles = [match_colors(s, photo) for s in styles]
    elif cfg.colors != "style":
        raise UserError(f"colors={cfg.colors} keeps a content picture's colours; pass content=photo.jpg")
    seen = luminance(photo) if photo is not None and cfg.colors == "luminance" else photo
    masks = None
    if cfg.mask:
        colors = [str(c) for c in _as_list(cfg.mask_colors)] or None
        # regions are found at the mask's own size, then resized: a mask of any size fits, with soft borders
        regions = region_masks(load_image(cfg.mask, "mask"), len(styles), colors)
        masks = [resize_to(m, hw).to(view.device) for m in regions]
    smoothing = str(cfg.smoothing)
    dev = view.device

    def objective_at(size: tuple[int, int]) -> Objective:
        side = max(1, round(style_scale * max(size)))
        scaled = [resize_to(s, target_size(side, (s.shape[-2], s.shape[-1]))).to(dev) for s in styles]
        if masks is None:
            grams: dict[str, Any] = style_grams(view, scaled, layers, blend, smoothing)
        else:
            each = [style_grams(view, [s], layers, smoothing=smoothing) for s in scaled]
            grams = {layer: [g[layer] for g in each] for layer in layers}
        objective = style_weight * style(
            grams, dict(zip(layers, layer_weights, strict=True)) if layer_weights else None, smoothing, masks, blend
        )
        if seen is not None and content_layer and content_weight > 0:
            target = feature_targets(view, resize_to(seen, size).to(dev), [content_layer])[content_layer]
            objective = objective + content(content_layer, target, content_weight)
        return _priors(cfg, objective)

    sizes = octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))
    first = _start(cfg, seen)
    start = None if first is None else first.to(dev)
    out = optimize_octaves(cfg, view, sizes, _cached(objective_at), first=start, folder=folder)
    if photo is not None and cfg.colors == "luminance":
        out.picture = keep_chroma(out.picture, photo.to(dev).expand_as(out.picture))
    extra = {"styles": [str(s) for s in sources], "style_weights": blend, "colors": cfg.colors}
    return finish(cfg, folder, recipe, view, out, objective_at(sizes[-1]).name, **extra)


def _inversion_at(cfg: DictConfig, view: ModelView, picture: torch.Tensor, layer: str) -> Callable:  # type: ignore[type-arg]
    def make(size: tuple[int, int]) -> Objective:
        target = feature_targets(view, resize_to(picture, size).to(view.device), [layer])[layer]
        return _priors(cfg, inversion(layer, target))

    return _cached(make)


def _feature_error(view: ModelView, picture: torch.Tensor, result: torch.Tensor, layer: str) -> float:
    return round(feature_distance(view, layer, result, picture), 5)


def _untiled(cfg: DictConfig, recipe: str) -> None:
    if cfg.get("tile_size") is not None:
        raise UserError(
            f"recipe={recipe} compares whole feature maps, so it cannot run tile by tile; drop tile_size= "
            "(tiles work for deepdream, class, channel and neuron) or use a smaller size="
        )


def _inversion_setup(cfg: DictConfig, recipe: str) -> tuple[ModelView, torch.Tensor, list[tuple[int, int]]]:
    _untiled(cfg, recipe)
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    hw = (picture.shape[-2], picture.shape[-1])
    return view, picture, octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))


def invert(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Reconstruct ``input`` from one layer's activations (Mahendran & Vedaldi, 2015)."""
    view, picture, sizes = _inversion_setup(cfg, recipe)
    view.check_layers([str(cfg.layer)])
    make = _inversion_at(cfg, view, picture, str(cfg.layer))
    out = optimize_octaves(cfg, view, sizes, make, folder=folder)
    error = _feature_error(view, picture, out.picture, str(cfg.layer))
    return finish(cfg, folder, recipe, view, out, make(sizes[-1]).name, feature_error=error)


def invert_sweep(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Inversions from shallow to deep layers side by side, after the picture itself, on one captioned sheet."""
    if cfg.get("resume"):
        raise UserError("recipe=inversion_sweep runs one optimization per layer and cannot be resumed; run it again")
    view, picture, sizes = _inversion_setup(cfg, recipe)
    layers = [str(layer) for layer in _as_list(cfg.layers)]
    if not layers:
        raise UserError("inversion_sweep needs layers=[...]; list them with: dreamloom recipe=layers")
    view.check_layers(layers)
    pictures, errors, record, frames = [picture.to(view.device)], {}, Recorder(), snapshots(cfg)
    interrupted, stopped = False, None
    for layer in layers:
        out = optimize_octaves(cfg, view, sizes, _inversion_at(cfg, view, picture, layer))
        pictures.append(out.picture)
        errors[layer] = _feature_error(view, picture, out.picture, layer)
        record.merge(out.record)
        for frame in out.frames.frames:  # one GIF for all the layers, as capped as any other
            frames.add(frame)
        if out.interrupted or out.stopped:
            interrupted, stopped = out.interrupted, out.stopped
            break
    combined = Rendered(torch.cat(pictures), record, frames, interrupted, stopped)
    labels = ["input", *layers]
    return finish(cfg, folder, recipe, view, combined, f"inversion sweep ({', '.join(layers)})", labels, errors=errors)


TRANSFER_TASKS = {"style": transfer, "inversion": invert, "inversion_sweep": invert_sweep}
"""Task name -> function, for the runner's dispatch table."""
