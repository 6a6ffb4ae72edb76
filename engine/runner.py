"""Running a composed recipe: its function found by ``run._target_``, its keys checked, the optimization over
octaves that every optimizing recipe shares, and one-line answers to what can go wrong on the way.

A recipe function is ``fn(cfg, folder, recipe) -> RunResult``, marked with :func:`recipe`, which declares the keys it
adds beyond the shared ones: those that name files and those that must be numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from engine.callbacks import Callback, Diverged, Goal, Guard, Progress, Recorder, Snapshots
from engine.checkpoints import CHECKPOINT, Checkpointer, load_checkpoint, octave_checkpoint, restore
from engine.checks import absolute_paths, check_groups, check_list, check_number, check_numbers, rate_key
from engine.configs import recipe_defaults, refuse_missing
from engine.errors import WRITE_ERRORS, UserError, denied_elsewhere, out_of_memory, runtime_answer, unlocatable
from engine.images import MIN_SIDE
from engine.loop import Tiling, keep_freed_memory, optimize
from engine.models import ModelView, load_model
from engine.octaves import run_octaves
from engine.results import Rendered, RunResult, config_yaml, withdraw
from engine.scales import read
from engine.spec import RecipeSpec, plain, recipe, refuse_unread, unread_keys
from engine.stored import rebuild
from objectives.base import INPUT, Objective
from regularizers import l1, l2, total_variation
from regularizers.periodic import KEYS, periodic
from regularizers.transforms import Compose

__all__ = [
    "PENALTIES",
    "RecipeSpec",
    "build",
    "build_objective",
    "forget_unread",
    "load_view",
    "optimize_octaves",
    "penalized",
    "penalty_terms",
    "prepare_function",
    "recipe",
    "refuse_alpha",
    "run_recipe",
    "snapshots",
]

ALPHA, CPPN = "engine.params.alpha", "engine.cppn.cppn"  # treated apart: transparent, and drawn at any size
PATH_KEYS = ("input", "init", "model.checkpoint")
"""Shared keys that may name a file; a recipe adds its own with ``@recipe(paths=...)``."""
PENALTIES = {"tv": total_variation, "l1": l1, "l2": l2}
"""The penalty keys every optimizing recipe takes, each the weight of a term on the picture."""


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a :class:`UserError` raised by the target through unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        text, _, key = str(e).partition("full_key:")
        if text.startswith("Error locating target") and text.count("'") >= 2:
            raise UserError(unlocatable(text.split("'")[1], key.strip() or "a")) from None
        if e.__cause__ is None:  # Hydra refused the target itself (one it will not build): never relay its bypass
            target = text.split("'")[1] if text.count("'") >= 2 else "it"
            raise UserError(f"{key.strip() or 'a'}._target_={target} is not allowed; remove that override") from None
        what = (text.splitlines() or [""])[0].rstrip(":. ").removeprefix("Error in call to target ")
        why = f" ({type(e.__cause__).__name__}: {str(e.__cause__).splitlines()[0]})"
        raise UserError(f"could not build {what}{why}; check the keys given to it") from None


def snapshots(cfg: DictConfig) -> Snapshots:
    """The progress GIF's recorder, as the recipe's keys ask (``snapshot_every``, ``gif_size``, ``gif_frames``)."""
    every = int(cfg.snapshot_every)
    return Snapshots(every, int(cfg.gif_size), int(cfg.gif_frames)) if every else Snapshots(0)  # none: none read


def penalty_terms(cfg: DictConfig) -> Objective | None:
    """The recipe's ``tv``, ``l1`` and ``l2`` penalties on the picture (those set above 0), or None."""
    terms = [float(cfg[key]) * factory() for key, factory in PENALTIES.items() if cfg.get(key)]
    return Objective.sum(terms) if terms else None


def penalized(cfg: DictConfig, objective: Objective) -> Objective:
    """``objective`` plus the recipe's penalties (:func:`penalty_terms`)."""
    extra = penalty_terms(cfg)
    return objective if extra is None else objective + extra


def build_objective(cfg: DictConfig, view: ModelView, objective: Objective | None = None) -> Objective:
    """The recipe's ``objective`` (or one made in code) with its penalties, its layers checked against the model."""
    objective = build(cfg.objective) if objective is None else objective
    if not isinstance(objective, Objective):
        raise UserError("the recipe's objective does not build an Objective; check its _target_")
    objective = penalized(cfg, objective)
    view.check_layers(layer for layer in objective.layers if layer != INPUT)
    return objective


def _probe(view: ModelView, objective: Objective, transforms: Compose, hw: tuple[int, int], batch: int) -> None:
    """Evaluate the objective once on a grey picture of the smallest size, to fail early on sizes and indices."""
    if min(hw) < MIN_SIDE:
        fix = "give both sides, such as size=[64,64]" if max(hw) > 4 * min(hw) else "use a larger size="  # thin
        raise UserError(
            f"size {list(hw)} is too small (the smallest picture the run makes: its first octave, or a tile's cut "
            f"edge); pictures need at least {MIN_SIDE} pixels a side, so {fix} (or fewer octaves=)"
        )
    layers = [layer for layer in objective.layers if layer != INPUT]
    img = torch.full((batch, 3, *hw), 0.5, device=view.device)
    try:
        with torch.no_grad():
            acts = read(view, transforms(img), layers)
            acts[INPUT] = img
            for layer in layers:
                if acts[layer].dim() == 4 and min(acts[layer].shape[-2:]) < 1:
                    raise RuntimeError("empty activation")
            objective(acts)
    except (RuntimeError, AssertionError) as e:  # a model that takes one size only asserts it
        if out_of_memory(e):
            raise  # answered as memory, not size, by run_recipe
        what, why = ", ".join(layers) or "the output", str(e).splitlines()[0][:80]
        if not isinstance(e, RuntimeError):
            raise UserError(f"size {list(hw)} does not suit {view.name} ({why}); use the size it takes") from None
        raise UserError(
            f"size {list(hw)} is too small for {what} of {view.name} ({why}); use a larger size= or fewer octaves="
        ) from None


def _tiling(
    cfg: DictConfig,
    view: ModelView,
    sizes: list[tuple[int, int]],
    objective: Objective,
    transforms: Compose,
    generator: torch.Generator,
) -> Tiling | None:
    """The tiling ``tile_size`` asks for (None: whole pictures), after a probe of the smallest piece the model sees."""
    tile = cfg.get("tile_size")
    tiling = Tiling(tile, generator) if tile else None
    if tiling is None or max(sizes[-1]) <= tile:  # a picture cut into tiles is there to bound memory
        keep_freed_memory()  # every step allocates the same activations again: keep them in the heap
    # the smallest piece a tiled run may hand the model is a quarter tile on a side that gets cut
    h, w = sizes[0] if tiling is None else (n if n <= tile else tile // 4 for n in sizes[0])
    _probe(view, objective, transforms, (h, w), cfg.batch)
    return tiling


def _optimizer(cfg: DictConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The recipe's optimizer on ``params``; one line when it refuses a value of its keys (``momentum=-1`` …)."""
    try:
        optimizer: torch.optim.Optimizer = build(cfg.optimizer)(params)
    except (ValueError, TypeError) as e:
        if isinstance(e, UserError):
            raise
        pick = (cfg.get("choices") or {}).get("optimizer") or cfg.optimizer.get("_target_")
        raise UserError(f"optimizer={pick} refuses its keys ({e}); fix the optimizer.* key it names") from None
    return optimizer


def _diverged(cfg: DictConfig, e: Diverged, rec: Recorder, frames: Snapshots) -> Rendered:
    """The last good picture of a run the numerical guard stopped; one error line when there is none."""
    key, lr = rate_key(cfg)
    if e.picture is None:
        raise UserError(f"{e} before any good picture; lower the learning rate ({key}={lr})") from None
    why = f"{e}; {key}={lr} is probably too high, try {key}={float(lr) / 10:g}"
    return Rendered(e.picture, rec, frames, False, f"{why}; the picture as it was at step {e.good_step}")


def _interrupted(rec: Recorder, frames: Snapshots) -> Rendered:
    """The picture so far after Ctrl-C or SIGTERM; the interrupt goes on when no step was taken yet."""
    current = rec.current_picture()
    if current is None:
        raise KeyboardInterrupt
    return Rendered(current, rec, frames, True)


def _listeners(
    cfg: DictConfig,
    octave: tuple[int, int],
    goal: Goal | None,
    params: list[torch.Tensor],
    rec: Recorder,
    frames: Snapshots,
    saver: Checkpointer | None,
    keys: dict[str, Any] | None,
) -> list[Callback]:
    """Octave ``(i, of)``'s callbacks in hearing order: recorder, periodic rules, snapshots, progress, guard, goal."""
    i, of = octave
    label = f"octave {i + 1}/{of} " if of > 1 else ""
    goal = goal if i == of - 1 else None
    rules = periodic(cfg, params, int(cfg.steps), keys)
    listed = [rec, rules, frames, Progress(label), Guard(label=label.strip()), goal]
    return [c for c in [*listed, saver] if c is not None]


def refuse_alpha(cfg: DictConfig, why: str) -> None:
    """Refuse ``param=alpha`` (a transparent picture) with the line ``why``, where the run has no use for one."""
    if cfg.param.get("_target_") == ALPHA:
        raise UserError(why)


def _refuse_alpha_dream(cfg: DictConfig, base: torch.Tensor | None) -> None:
    if base is not None:
        refuse_alpha(cfg, "param=alpha makes a picture from nothing, but this run dreams on input=; use init=noise")


def optimize_octaves(
    cfg: DictConfig,
    view: ModelView,
    sizes: list[tuple[int, int]],
    objective_at: Callable[[tuple[int, int]], Objective],
    base: torch.Tensor | None = None,
    first: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    folder: Path | None = None,
    goal: Goal | None = None,
    restart: Callable[[torch.Tensor], torch.Tensor] | None = None,
    keys: dict[str, Any] | None = None,
) -> Rendered:
    """Run the configured parameterization, transforms and optimizer over ``sizes``, smallest first.

    Args:
        cfg: the composed recipe (``param``, ``transforms``, ``optimizer``, ``steps``, ``batch``, ``init`` …).
        view, sizes: the model, and the octave sizes from :func:`engine.octaves.octave_sizes`.
        objective_at: the objective for one octave's size (targets that depend on the size are made here).
        base, first: a picture to dream on, carrying only the added detail upward (DeepDream); or else the first
            octave's starting picture (later octaves start from the one before).
        generator: the seeded random source of the transforms and the random start.
        folder: the run folder, where ``checkpoint.pt`` is saved every ``checkpoint_every`` steps (None: never);
            with ``cfg.resume``, the octaves before the saved one are skipped and the saved one carries on.
        goal: ends the last octave early once its test holds (``stop_at``).
        restart: without ``base``, each later octave's start passes through it (not a resumed octave's).
        keys: values the periodic regularizers take instead of the config's (a style's ``flatten=auto`` made plain).
    """
    _refuse_alpha_dream(cfg, base)
    generator = generator or torch.Generator().manual_seed(cfg.seed)
    transforms = build(cfg.transforms).set_generator(generator)
    tiling = _tiling(cfg, view, sizes, objective_at(sizes[0]), transforms, generator)
    make_param: Callable[..., Any] = partial(build(cfg.param), **({"sd": 0.0} if cfg.init == "zeros" else {}))
    rec, frames, state = Recorder(), snapshots(cfg), octave_checkpoint(cfg.get("resume"), len(sizes), cfg.steps)
    path = folder / CHECKPOINT if folder and (every := int(cfg.get("checkpoint_every") or 0)) else None  # none: unread
    text, last = config_yaml(cfg), list[torch.Tensor]()  # last: the newest octave's parameters

    def one_octave(start: torch.Tensor | None, i: int) -> torch.Tensor:
        nonlocal state
        shape = (cfg.batch, 3, *sizes[i])
        if state is not None and i < state["octave"]:
            return torch.zeros(shape, device=view.device)  # done before the checkpoint: its state replaces it
        params, image_fn = make_param(shape, init=start, generator=generator, device=view.device)  # zeros: flat
        last[:], optimizer = params, _optimizer(cfg, params)
        first_step = 0 if state is None else _carry_on(state, (params, optimizer, generator, rec, frames), cfg, sizes)
        state = None
        saver = None if path is None else Checkpointer(path, every, i, params, optimizer, generator, rec, frames, text)
        kept = _listeners(cfg, (i, len(sizes)), goal, params, rec, frames, saver, keys)
        objective = objective_at(sizes[i])
        return optimize(params, image_fn, objective, view, transforms, optimizer, cfg.steps, kept, tiling, first_step)

    try:
        again = None if restart is None else (lambda p: p if state is not None else restart(p))  # resumed: restored
        picture = run_octaves(base, sizes, one_octave, first, bool(cfg.get("seamless")), again)
        keep = cfg.param.get("_target_") == CPPN  # a picture drawn again at any size: its weights are kept
        return Rendered(picture, rec, frames, False, weights=[p.detach().cpu() for p in last] if keep else None)
    except Diverged as e:
        return _diverged(cfg, e, rec, frames)
    except KeyboardInterrupt:
        return _interrupted(rec, frames)


def _carry_on(state: dict[str, Any], parts: tuple[Any, ...], cfg: DictConfig, sizes: list[tuple[int, int]]) -> int:
    """Put a checkpoint back into the octave's ``parts`` (:func:`restore`'s), say where the run carries on, and
    return that step."""
    step = restore(state, *parts)
    where = f" of octave {int(state['octave']) + 1}/{len(sizes)}" if len(sizes) > 1 else ""
    print(f"dreamloom: carrying on from step {step} of {cfg.steps}{where}", file=sys.stderr)
    return step


def load_view(cfg: DictConfig, fold: bool = True) -> ModelView:
    """The recipe's model, with the seed set (``fold``: see :func:`load_model`)."""
    torch.manual_seed(cfg.seed)
    return load_model(cfg.model.name, cfg.model.weights, cfg.model.checkpoint, cfg.device, fold=fold)


def forget_unread(cfg: DictConfig, source: str, changes: Sequence[str] = ()) -> None:
    """Set to null, with a note, the keys a stored run gives that its recipe does not read (a run made before they
    were refused), unless ``changes`` gives them anew."""
    _, spec = prepare_function(cfg)
    given = {c.split("=", 1)[0].lstrip("+~").split(".")[0] for c in changes}  # param.decay=2 gives param anew
    defaults = recipe_defaults(cfg)
    old = [k for k in unread_keys(cfg, spec, defaults) if k not in given]
    if old:
        with open_dict(cfg):
            for key in old:
                cfg[key] = None if defaults is None else plain(defaults.get(key), resolve=False)
                if isinstance(cfg[key], DictConfig) and defaults is not None and "choices" in cfg:  # and its pick
                    cfg.choices[key] = defaults.choices[key]
        print(f"dreamloom: {source}: keys this recipe does not read were left out: {', '.join(old)}", file=sys.stderr)


def _resumed(cfg: DictConfig) -> DictConfig:
    """The run saved in ``cfg.resume``'s checkpoint, rebuilt from the project's configs, still pointing at it."""
    folder = str(cfg.resume)
    saved = rebuild(load_checkpoint(folder, progress=False)["config"], str(Path(folder) / CHECKPOINT))
    forget_unread(saved, str(Path(folder) / CHECKPOINT))
    with open_dict(saved):
        saved.resume = folder
    return saved


def prepare_function(cfg: DictConfig) -> tuple[Callable[..., RunResult], RecipeSpec]:
    """The recipe function ``cfg.run`` names (its module read now) and what it declares about its keys."""
    if not isinstance(cfg.get("run"), DictConfig):
        raise UserError("the recipe names no function; its YAML needs run: {_target_: recipes.FAMILY.FUNCTION}")
    fn = build(cfg.run)
    spec = getattr(getattr(fn, "func", fn), "recipe_spec", None)
    if not isinstance(spec, RecipeSpec):
        raise UserError(f"run._target_={cfg.run.get('_target_')} is not a recipe function (marked with @recipe)")
    return fn, spec


def _prepare(cfg: DictConfig, spec: RecipeSpec, recipe: str) -> None:
    """Check the recipe's own numbers and the groups' keys, refuse penalties where nothing is optimized, and make
    the file keys absolute (so the picture's stored config finds them from any folder)."""
    check_groups(cfg)
    defaults = recipe_defaults(cfg) or DictConfig({})
    for key, (kind, low, strict) in spec.numbers.items():
        if cfg.get(key) is not None or defaults.get(key) is not None:  # null only where the recipe's default is
            check_number(cfg, key, kind, low, strict)
    for key, (kind, low, strict) in spec.lists.items():
        check_list(cfg, key, kind, low, strict)
    if not spec.penalties:
        given = [f"{k}={cfg[k]}" for k in (*PENALTIES, *KEYS, "centre") if cfg.get(k)]
        if given:
            raise UserError(f"recipe={recipe} takes no penalties, so {' '.join(given)} would do nothing; drop it")
    refuse_unread(cfg, spec, recipe)
    absolute_paths(cfg, (*PATH_KEYS, *spec.paths))


def run_recipe(cfg: DictConfig, folder: Path, recipe: str | None = None, resumed_as: str | None = None) -> RunResult:
    """Run a composed config into ``folder``: its function is the one ``run._target_`` names.

    Args:
        cfg: the composed config (:func:`engine.configs.compose` or Hydra's); with ``resume``, the run saved there
            is rebuilt from the project's configs instead.
        folder: the run folder, made already.
        recipe: the recipe's name for ``metrics.json`` (default: the recipe the config picked).
        resumed_as: with ``resume``, the recipe the caller meant to carry on (``api.channel(resume=…)``): another
            recipe's run is refused.
    """
    if cfg.get("resume"):
        cfg = _resumed(cfg)
        recipe = None
    recipe = recipe or str((cfg.get("choices") or {}).get("recipe") or cfg.name)
    if resumed_as is not None and resumed_as != recipe:
        raise UserError(
            f"{cfg.resume} holds a recipe={recipe} run, not {resumed_as}; resume it with api.run({recipe!r}, resume=…)"
        )
    refuse_missing(cfg)  # ??? from anywhere: a stored run, a change, the Python API
    fn, spec = prepare_function(cfg)
    _prepare(cfg, spec, recipe)  # the recipe's own keys first: a shared key may follow one (facets: batch is k)
    check_numbers(cfg)
    try:
        return fn(cfg, folder, recipe)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        kept = withdraw(folder)
        raise UserError(
            denied_elsewhere(e, folder)
            or f"could not write the results into {folder} ({e.strerror}); "
            + (
                f"the run so far is kept there: free some space, then dreamloom resume={folder}"
                if kept
                else "nothing was kept: free some space or choose another hydra.run.dir="
            )
        ) from None
    except (torch.OutOfMemoryError, RuntimeError) as e:
        line = runtime_answer(
            e, rate_key(cfg), cfg.get("size"), cfg.get("batch") or 1, OmegaConf.select(cfg, "model.name")
        )
        if line is None:
            raise
        raise UserError(line) from None
