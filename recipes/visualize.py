"""The visualizations that optimize a picture for one objective: DeepDream, class, channel and neuron pictures
(``render``), and a layer's atlas of channels (``layer_atlas``).

A plain render names its objective in its YAML (``objective: {_target_: objectives.channel, ...}``); the penalties
and transforms are the engine's, shared with every optimizing recipe.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from engine.callbacks import Goal
from engine.checks import seeded
from engine.errors import UserError
from engine.images import checkerboard, composite, load_image, resize_long, target_size
from engine.measures import random_views
from engine.models import LOGITS, ModelView, require_map
from engine.octaves import octave_sizes
from engine.results import RunResult, finish
from engine.runner import build_objective, load_view, optimize_octaves, recipe
from objectives.activation import GUIDE_PULLS, channel_list, guided_dream, inner_positions
from objectives.base import Objective
from objectives.classes import resolve_class

__all__ = ["class_goal", "dream", "layer_atlas", "render"]

INDICES = {key: (int, 0, False) for key in ("channel", "x", "y")}
"""The channel and neuron recipes' indices: whole numbers from 0."""


def _picture_and_size(cfg: DictConfig) -> tuple[torch.Tensor | None, tuple[int, int]]:
    if cfg.init not in ("input", "noise", "zeros"):
        raise UserError(f"init={cfg.init} is not valid; use init=input, noise or zeros")
    picture = load_image(cfg.input) if cfg.get("input") else None  # a missing file is the first thing to fix
    if picture is not None and cfg.init != "input":
        raise UserError(
            f"input={cfg.input} would only set the picture's shape while init={cfg.init}; set init=input to start "
            "from it, or input=null (size=[h,w] gives the shape)"
        )
    if picture is None:
        if cfg.init == "input":
            raise UserError(
                "init=input needs a picture; pass input=PICTURE (a path or a sample such as input=chelsea) or "
                "use init=noise"
            )
        return None, target_size(cfg.size if cfg.size is not None else 224)
    h, w = picture.shape[-2:]
    return picture, target_size(cfg.size if cfg.size is not None else max(h, w), (h, w))


ObjectiveMaker = Callable[[ModelView, tuple[int, int]], Objective]
"""Makes a render's objective in code, from the model and the picture's final size, instead of from its YAML."""


@recipe(numbers={**INDICES, "diversity": (float, 0, False), "log_prob": (float, 0, False)}, objective=True)
def render(
    cfg: DictConfig, folder: Path, recipe: str, labels: list[str] | None = None, make: ObjectiveMaker | None = None
) -> RunResult:
    """Optimize a picture (or a batch) for the recipe's ``objective`` (or the one ``make`` makes) over its octaves,
    and write the run folder.

    With ``init=input`` the picture is dreamed on (DeepDream, Mordvintsev et al., 2015): only the added detail is
    carried from octave to octave; otherwise it grows from noise (Olah et al., 2017).
    """
    picture, hw = _picture_and_size(cfg)
    view = load_view(cfg)
    _check_diversity(cfg, view)
    objective = build_objective(cfg, view, None if make is None else make(view, hw))
    sizes = octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))
    base = picture.to(view.device) if picture is not None and cfg.init == "input" else None
    goal = class_goal(cfg, view) if cfg.get("stop_at") is not None else None
    out = optimize_octaves(cfg, view, sizes, lambda hw: objective, base=base, folder=folder, goal=goal)
    return finish(cfg, folder, recipe, view, out, objective.name, labels, **goal_met(cfg, goal))


def _check_diversity(cfg: DictConfig, view: ModelView) -> None:
    """``diversity`` needs a batch to push apart, and its layer named as such when the model lacks it."""
    if not float(cfg.get("diversity") or 0):
        return
    if int(cfg.batch) == 1:
        raise UserError(f"diversity={cfg.diversity} pushes a batch's pictures apart, and batch=1 is one; add batch=4")
    layer = str(cfg.get("diversity_layer") or cfg.get("layer"))
    try:
        view.check_layers([layer])
    except UserError as e:  # said of the key that named it, not of a layer the user never typed
        raise UserError(f"diversity_layer={layer}: {e}; set diversity_layer= to one of its layers") from None


STOP_VIEWS, STOP_SHARE = 16, 0.9
"""``stop_at``'s test: the share of random views of the picture that must each give the class that confidence."""


def class_goal(cfg: DictConfig, view: ModelView) -> Goal:
    """The class recipe's ``stop_at``: stop once the model gives ``target`` at least ``stop_at`` on most of
    :data:`STOP_VIEWS` random crops of every picture of the batch (new crops each time, from their own seeded
    source, so the run's own randomness is untouched), tested every 8 steps."""
    confidence = cfg.stop_at
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise UserError(f"stop_at={confidence} is not valid; stop_at is a confidence between 0 and 1, like 0.9")
    target = resolve_class(cfg.target, view.categories)
    generator = seeded(cfg.seed, 1)  # apart from the run's own source

    def reached(picture: torch.Tensor) -> bool:
        flat = composite(picture, checkerboard(*picture.shape[-2:]).to(picture))
        for one in flat:
            views = random_views(one[None], STOP_VIEWS, generator, side=min(224, *one.shape[-2:]))
            sure = view(views, [LOGITS])[LOGITS].softmax(-1)[:, target] >= confidence
            if float(sure.float().mean()) < STOP_SHARE:
                return False
        return True

    return Goal(reached)


def goal_met(cfg: DictConfig, goal: Goal | None) -> dict[str, Any]:
    """Say so when ``stop_at`` ended the run (the step of its last octave), and give it to ``metrics.json``."""
    if goal is None or goal.done_at is None:
        return {}
    octave = " of the last octave" if int(cfg.octaves) > 1 else ""
    print(f"dreamloom: stop_at={cfg.stop_at} held after step {goal.done_at}{octave}; stopped there", file=sys.stderr)
    return {"stop_at_step": goal.done_at}


MAX_GAIN = 100.0
"""The largest guide_gain: far past it the pull overflows the loss instead of dreaming."""
GUIDE_SIDE = 512
"""The longest side the guide picture is seen at: its motifs at the scale they have in a picture of that size."""


@recipe(paths=("guide",), numbers={"guide_gain": (float, 0, True)}, objective=True)
def dream(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """DeepDream, guided by ``guide=PICTURE`` when it is given: the guide's motifs grow in the picture
    (:func:`objectives.guided_dream` at ``layer`` instead of the recipe's own objective)."""
    pull, gain = cfg.get("guide_pull"), cfg.get("guide_gain")  # None: guided_dream's own defaults
    if pull is not None and pull not in GUIDE_PULLS:
        raise UserError(f"guide_pull={pull} is not known; use guide_pull=along or guide_pull=toward")
    if gain is not None and float(gain) > MAX_GAIN:
        raise UserError(f"guide_gain={gain} is too large; use a gain above 0 and at most {MAX_GAIN:g} (3 by default)")
    if pull == "along" and gain is not None:
        raise UserError("guide_gain sets how far guide_pull=toward pulls; guide_pull=along takes none, so drop it")
    if not cfg.get("guide"):
        if pull is not None or gain is not None:
            raise UserError("guide_pull and guide_gain shape a guided dream; add guide=PICTURE (or leave them out)")
        return render(cfg, folder, recipe)
    shape: dict[str, Any] = {"pull": str(pull)} if pull is not None else {}
    shape |= {"gain": float(gain)} if gain is not None else {}
    guide = load_image(cfg.guide, "guide")
    layer = str(cfg.layer)

    def guided(view: ModelView, hw: tuple[int, int]) -> Objective:
        seen = resize_long(guide, min(max(hw), GUIDE_SIDE))
        view.check_layers([layer])
        with torch.no_grad():
            out = view(seen.to(view.device), [layer])[layer]
        use = "a guided dream matches the guide position by position"
        features = inner_positions(require_map(out, layer, use)[0]).flatten(1)
        return guided_dream(layer, features, **shape)

    return render(cfg, folder, recipe, make=guided)


def one_each(cfg: DictConfig, count: int, key: str) -> None:
    """Make the batch ``count`` pictures, one per item of ``key``; a ``batch=`` of another size is refused, since it
    would be ignored (the default, 1, stands for not given)."""
    if int(cfg.batch) not in (1, count):
        raise UserError(f"batch={cfg.batch} would be ignored: {key}= makes one picture each ({count}); drop batch=")
    with open_dict(cfg):
        cfg.batch = count


@recipe(objective=True)
def layer_atlas(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Channel visualizations of one layer side by side: picture ``i`` of a batch maximizes the ``i``-th channel."""
    picked = channel_list(cfg.channels if isinstance(cfg.channels, int | str) else list(cfg.channels))
    one_each(cfg, len(picked), "channels")
    return render(cfg, folder, recipe, [f"{cfg.layer}:{c}" for c in picked])
