"""Feature inversion (Mahendran & Vedaldi, 2015): a picture rebuilt from one layer's activations of a photo, or
from each of several layers, shallow to deep, side by side."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from omegaconf import DictConfig

from engine.callbacks import Recorder
from engine.errors import UserError
from engine.images import input_picture, resize_to
from engine.measures import feature_distance
from engine.models import ModelView
from engine.octaves import octave_sizes
from engine.results import Rendered, RunResult, finish
from engine.runner import load_view, optimize_octaves, penalized, recipe, refuse_alpha, snapshots
from objectives.base import Objective
from objectives.transfer import feature_targets, inversion
from recipes.transfer import UNTILED, as_list

__all__ = ["invert", "invert_sweep"]


def _inversion_at(cfg: DictConfig, view: ModelView, picture: torch.Tensor, layer: str) -> Callable:  # type: ignore[type-arg]
    def make(size: tuple[int, int]) -> Objective:
        target = feature_targets(view, resize_to(picture, size).to(view.device), [layer])[layer]
        return penalized(cfg, inversion(layer, target))

    return cache(make)


def _feature_error(view: ModelView, picture: torch.Tensor, result: torch.Tensor, layer: str) -> float:
    return round(feature_distance(view, layer, result, picture), 5)


def _inversion_setup(cfg: DictConfig, recipe: str) -> tuple[ModelView, torch.Tensor, list[tuple[int, int]]]:
    refuse_alpha(cfg, f"recipe={recipe} rebuilds a whole photo, which has no transparent parts; drop param=alpha")
    view = load_view(cfg)
    picture = input_picture(cfg, recipe, view.device)
    hw = (picture.shape[-2], picture.shape[-1])
    return view, picture, octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))


@recipe(ignores=UNTILED)
def invert(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Reconstruct ``input`` from one layer's activations (Mahendran & Vedaldi, 2015)."""
    view, picture, sizes = _inversion_setup(cfg, recipe)
    view.check_layers([str(cfg.layer)])
    make = _inversion_at(cfg, view, picture, str(cfg.layer))
    out = optimize_octaves(cfg, view, sizes, make, folder=folder)
    error = _feature_error(view, picture, out.picture, str(cfg.layer))
    return finish(cfg, folder, recipe, view, out, make(sizes[-1]).name, feature_error=error)


@recipe(ignores=UNTILED)
def invert_sweep(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Inversions from shallow to deep layers side by side, after the picture itself, on one captioned sheet."""
    if cfg.get("resume"):
        raise UserError("recipe=inversion_sweep runs one optimization per layer and cannot be resumed; run it again")
    view, picture, sizes = _inversion_setup(cfg, recipe)
    layers = [str(layer) for layer in as_list(cfg.layers)]
    if not layers:
        raise UserError("inversion_sweep needs layers=[...]; list them with: dreamloom recipe=layers")
    view.check_layers(layers)
    pictures, errors, record, frames = [picture.to(view.device)], {}, Recorder(), snapshots(cfg)
    interrupted, stopped, names = False, None, []
    for layer in layers:
        make = _inversion_at(cfg, view, picture, layer)
        names.append(make(sizes[-1]).name)
        out = optimize_octaves(cfg, view, sizes, make)
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
    return finish(cfg, folder, recipe, view, combined, "; ".join(names), labels, errors=errors)
