"""Every recipe as a Python function, with the recipe's keys as its keyword arguments and their defaults.

    from engine import api

    result = api.deepdream(input="chelsea", layer="features.14", octaves=4)
    result.picture            # (1, 3, H, W) tensor in [0, 1]
    result.metrics["seconds"]
    api.channel(layer="features.10", channel=7, model="vgg16", out="runs/v7")
    api.run("style", content="grace_hopper", style=["ihc", "hubble_deep_field"], overrides=["model.weights=none"])

A key named after a config group (``model``, ``param``, ``transforms``, ``optimizer``) picks an option of it; deeper
keys go in ``overrides`` as on the command line. Bad keys and values raise :class:`engine.errors.UserError` with the
same one-line answer the command gives. Each call writes a run folder, ``outputs/<date>/<time>_<recipe>/`` unless
``out`` is given. ``api.run("class", target="flamingo")`` reaches the recipe whose name Python reserves, and
``api.interpolate(**{"from": 7, "to": 42})`` the keys it reserves.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.arguments import check_new_folder
from engine.configs import GROUPS, compose, override_value, recipes, refuse_interpolation
from engine.errors import UserError
from engine.images import load_image
from engine.results import MADE, claim, refuse_beside_resume, release, resumed_folder, unmake

__all__ = ["RECIPES", "Result", "recipe_keys", "render", "run"]

RECIPES = recipes()
"""Every recipe; each is also a function of this module (``api.deepdream(...)``)."""


@dataclass
class Result:
    """A finished run: its folder and metrics; ``picture`` reads its ``image.png``."""

    folder: Path
    metrics: dict[str, Any]

    @property
    def picture(self) -> torch.Tensor:
        """The run's picture in [0, 1]. Shape: ``(1, 3, H, W)``, or ``(1, 4, H, W)`` for a transparent one
        (``param=alpha``)."""
        if not (self.folder / "image.png").is_file():  # recipe=layers writes its table, layers.txt, and no picture
            raise UserError(f"recipe={self.metrics.get('recipe')} writes no picture; read its files in {self.folder}")
        with Image.open(self.folder / "image.png") as img:
            if img.mode == "RGBA":
                return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()
        return load_image(self.folder / "image.png")


def _check_overrides(overrides: Sequence[str]) -> None:
    """``overrides`` are keys of the recipe called: not another recipe, not Hydra's keys (the folder is ``out=``),
    and, as the keyword values, no interpolation to resolve."""
    if not isinstance(overrides, list | tuple) or not all(isinstance(line, str) for line in overrides):
        raise UserError(
            f"overrides={overrides!r} is not a list of 'key=value' texts; write overrides=['model.weights=none', …]"
        )
    for line in overrides:
        key = str(line).lstrip("+~").split("=", 1)[0]
        if key == "recipe" or key.startswith("hydra"):
            fix = "call that recipe's function instead" if key == "recipe" else "name the run's folder with out="
            raise UserError(f"overrides={line!r}: {key} is not a key of the recipe called; {fix}")
        refuse_interpolation(str(line), "overrides=")


def _override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's grammar; the key named in the line when the value cannot be written."""
    try:
        return f"{key}={override_value(value)}"
    except UserError as e:
        raise UserError(f"{key}: {e}") from None


def run(recipe: str, /, out: str | Path | None = None, overrides: Sequence[str] = (), **keys: Any) -> Result:
    """Compose ``recipe`` with ``keys`` (and command-line style ``overrides``), run it into the folder ``out``."""
    from engine.runner import run_recipe

    if "recipe" in keys:  # api.channel(recipe="class"): the function names its recipe
        raise UserError(
            f"recipe={keys['recipe']} is not a key of the recipe called; call that recipe's function instead"
        )
    _check_overrides(overrides)
    if isinstance(recipe, str | os.PathLike) and str(recipe) not in RECIPES and Path(recipe).is_dir():  # render(FOLDER)
        raise UserError(
            f"'{recipe}' is a folder, not a recipe; to draw a param=cppn run again at another size use "
            f"engine.render.render_folder(['{recipe}', 'size=1024'])"
        )
    if out is not None and (not isinstance(out, str | os.PathLike) or not str(out).strip()):
        raise UserError(f"out={out!r} is not a folder path; pass text or a Path, such as out='runs/mine'")
    resume = keys.get("resume")
    resuming = resume not in (None, "")
    if resuming:
        refuse_beside_resume([*(k for k in keys if k != "resume"), *overrides], "out=")
    cfg = compose([f"recipe={recipe}", *(_override(k, v) for k, v in keys.items()), *overrides])
    if resuming:
        default = resumed_folder(str(resume))  # beside the run it carries on, as the command puts it
    else:
        default = Path("outputs") / time.strftime(f"%Y-%m-%d/%H-%M-%S_{cfg.name}")
    wanted = Path(os.fspath(out)) if out is not None else default
    check_new_folder(wanted, "run", "out=")  # a place that cannot be written: one line, as on the command line
    target = claim(wanted, out is not None, "out=")
    try:
        done = run_recipe(cfg, target, recipe, resumed_as=recipe if resuming else None)
    finally:
        release(target)
        if not any(target.iterdir()):
            unmake(target)  # nothing was written: leave no empty folder behind, nor the ones made above it
        MADE.pop(target.resolve(), None)
    return Result(done.folder, done.metrics)


render = run
"""``render("channel", layer="features.10", channel=7)``: another name for :func:`run`."""


@functools.cache
def _defaults(recipe: str) -> dict[str, Any]:
    """The recipe's top-level keys and defaults as Hydra composes them (its ``defaults:`` list included), with the
    option each config group takes and interpolations kept as written (``${layer}``)."""
    from omegaconf import OmegaConf

    cfg = compose([f"recipe={recipe}"])
    choices = {g: cfg.choices[g] for g in GROUPS[1:]}
    keys = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(keys, dict)
    own = {str(k): v for k, v in keys.items() if k not in ("choices", "objective", "run", "name", *GROUPS)}
    return {**choices, **own}


def recipe_keys(recipe: str) -> set[str]:
    """Every key ``recipe`` has: its own, the shared ones and its config groups."""
    return set(_defaults(recipe))


def _recipe_function(recipe: str) -> Callable[..., Result]:
    name = f"{recipe}_" if keyword.iskeyword(recipe) else recipe

    def fn(*args: Any, out: str | Path | None = None, overrides: Sequence[str] = (), **keys: Any) -> Result:
        if args:
            raise UserError(
                f"api.{name}() takes keywords only, not {', '.join(repr(a) for a in args)}; name each key, as in "
                f"api.{name}(key=value) (help(api.{name}) lists them)"
            )
        return run(recipe, out, overrides, **keys)

    params = [
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("overrides", inspect.Parameter.KEYWORD_ONLY, default=()),
        *(
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
            for k, v in _defaults(recipe).items()
            if k.isidentifier() and not keyword.iskeyword(k)
        ),
        inspect.Parameter("keys", inspect.Parameter.VAR_KEYWORD),  # and keys Python reserves: **{"from": 7}
    ]
    fn.__signature__ = inspect.Signature(params, return_annotation=Result)  # type: ignore[attr-defined]
    fn.__name__ = fn.__qualname__ = recipe
    fn.__doc__ = f"Run recipe={recipe} (recipes/recipe/{recipe}.yaml); keyword arguments are its keys."
    return fn


def __getattr__(name: str) -> Any:
    """``api.deepdream`` and every other recipe's function, made on first use (composing the recipe once for its
    keys and defaults); a clear error on a mistyped recipe. A recipe named by a Python word takes a trailing
    underscore, as PEP 8 spells it: ``api.class_``."""
    recipe = name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name
    if recipe in RECIPES:
        made = globals()[name] = _recipe_function(recipe)
        return made
    from engine.errors import close_matches

    hint = close_matches(name, RECIPES)
    raise AttributeError(f"engine.api has no recipe '{name}'" + (f"; {hint}" if hint else ""))


def __dir__() -> list[str]:
    return sorted({*globals(), *(f"{r}_" if keyword.iskeyword(r) else r for r in RECIPES)})
