"""Turning a composed recipe config into built parts, running it, and writing the run folder."""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from PIL import Image

from engine.callbacks import Callback, Diverged, Guard, Progress, Recorder, Snapshots
from engine.checkpoints import CHECKPOINT, Checkpointer, load_checkpoint, restore, resumed_config
from engine.errors import UserError
from engine.export import atomic_write, contact_sheet, save_gif, save_json, save_png, write_text
from engine.images import load_image, resize_to, target_size
from engine.loop import Tiling, optimize
from engine.models import LOGITS, ModelView, keep_freed_memory, layer_table, load_model
from engine.octaves import octave_sizes, run_octaves
from objectives.activation import channel_list
from objectives.base import INPUT, Objective
from regularizers import l1, l2, total_variation
from regularizers.transforms import Compose

__all__ = [
    "Interrupted",
    "Rendered",
    "RunResult",
    "all_tasks",
    "build",
    "build_objective",
    "check_gif",
    "check_number",
    "check_numbers",
    "config_yaml",
    "finish",
    "input_picture",
    "load_view",
    "optimize_octaves",
    "probabilities",
    "run_recipe",
    "snapshots",
    "top5",
    "write_view",
]

MIN_SIDE = 16


class Interrupted(Exception):
    """The user pressed Ctrl-C; the partial results were written to ``folder``."""

    def __init__(self, folder: Path, steps: int, unit: str = "step") -> None:
        done = f"{steps} {unit}" + ("" if steps == 1 else "s")
        again = f"; carry on with: dreamloom resume={folder}" if (folder / "checkpoint.pt").is_file() else ""
        super().__init__(f"interrupted after {done}; the picture so far and metrics.json are in {folder}{again}")


@dataclass
class RunResult:
    """What a finished run wrote."""

    folder: Path
    metrics: dict[str, Any]


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
        raise UserError(str(e).splitlines()[0]) from None


def config_yaml(cfg: DictConfig) -> str:
    """The resolved config a picture carries (and a checkpoint saves): all that is needed to run it again from the
    start, so without ``resume``, which a resumed run's own picture does not need."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(plain, DictConfig)
    with open_dict(plain):
        if plain.get("resume") is not None:
            plain.resume = None
        for key in PATH_KEYS:  # files named from the working folder: found again from any folder
            value = OmegaConf.select(plain, key)
            if isinstance(value, ListConfig):
                OmegaConf.update(plain, key, [_absolute(v) for v in value])
            elif value is not None:
                OmegaConf.update(plain, key, _absolute(value))
    return OmegaConf.to_yaml(plain)


PATH_KEYS = ("input", "content", "style", "mask", "init", "folder", "query", "model.checkpoint")
"""Keys that may name a file or folder; a rerun from another working folder must still find it."""


def _absolute(value: Any) -> Any:
    """A relative path that exists, made absolute; anything else (a sample name, ``noise``, a number) as it is."""
    if not isinstance(value, str) or Path(value).is_absolute() or not Path(value).expanduser().exists():
        return value
    return str(Path(value).expanduser().resolve())


def check_number(cfg: DictConfig, key: str, kind: type = float, low: float = 0, strict: bool = True) -> float:
    """``cfg[key]`` as a number of ``kind`` above ``low`` (or at least ``low``); else one :class:`UserError` line."""
    value = cfg.get(key)
    ok = isinstance(value, kind | int) if kind is float else isinstance(value, int)
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        need = "a whole number" if kind is int else ("a finite number" if math.isinf(low) else "a number")
        need += "" if math.isinf(low) else f" {'>' if strict else '>='} {low:g}"
        raise UserError(f"{key}={value} is not valid; {key} must be {need}")
    return float(value)


def check_numbers(cfg: DictConfig) -> None:
    """Reject impossible numbers (zero steps, negative sizes, NaN rates …) with one line each."""
    for key in ("steps", "batch", "octaves"):
        check_number(cfg, key, int, 0)
    check_number(cfg, "lr", float, 0)
    check_number(cfg, "snapshot_every", int, 0, strict=False)
    check_gif(cfg)
    check_number(cfg, "checkpoint_every", int, 0, strict=False)
    for key in ("tv", "l1", "l2"):
        check_number(cfg, key, float, 0, strict=False)
    if cfg.octaves > 1:
        check_number(cfg, "octave_scale", float, 1)
    if cfg.get("tile_size") is not None:
        check_number(cfg, "tile_size", int, 63)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise UserError(f"seed={cfg.seed} is not valid; seed must be a whole number")
    for key in ("channel", "x", "y"):  # the channel and neuron recipes' indices
        if cfg.get(key) is not None:
            check_number(cfg, key, int, 0, strict=False)
    for key, (kind, low, strict) in RECIPE_NUMBERS.items():
        if cfg.get(key) is not None:
            check_number(cfg, key, kind, low, strict)


RECIPE_NUMBERS: dict[str, tuple[type, float, bool]] = {
    "chunk": (int, 0, True),  # occlusion: copies per forward pass
    "patch": (int, 0, True),
    "stride": (int, 0, True),
    "samples": (int, 0, True),  # SmoothGrad's noisy copies
    "sigma": (float, 0, False),
    "magnify": (float, 0, True),  # adversarial: how much the difference is enlarged
    "top": (int, 0, True),  # max_patches
    "k": (int, 0, True),  # neighbours
    "thumb": (int, 7, True),  # embedding's cell size in pixels
    "perplexity": (float, 0, True),
}
"""Keys some recipes have, with the kind of number each must be and its bound: ``(kind, low, strict)``."""


GIF_MS = (20, 10_000)
"""The shortest and longest time a GIF frame may show, in milliseconds (browsers show faster frames at 100 ms)."""


def check_gif(cfg: DictConfig) -> None:
    """The progress GIF's keys: ``gif_ms`` per frame, at most ``gif_frames`` frames of ``gif_size`` pixels."""
    ms = cfg.get("gif_ms")
    if isinstance(ms, bool) or not isinstance(ms, int) or not GIF_MS[0] <= ms <= GIF_MS[1]:
        raise UserError(f"gif_ms={ms} is not valid; use whole milliseconds per frame from {GIF_MS[0]} to {GIF_MS[1]}")
    check_number(cfg, "gif_frames", int, 1)
    check_number(cfg, "gif_size", int, 15)


def snapshots(cfg: DictConfig) -> Snapshots:
    """The progress GIF's recorder, as the recipe's keys ask (``snapshot_every``, ``gif_size``, ``gif_frames``)."""
    return Snapshots(int(cfg.snapshot_every), int(cfg.gif_size), int(cfg.gif_frames))


def build_objective(cfg: DictConfig, view: ModelView) -> Objective:
    """The recipe's objective plus its tv, l1 and l2 penalties, its layers checked against the model."""
    objective: Objective = build(cfg.objective)
    if not isinstance(objective, Objective):
        raise UserError("the recipe's objective does not build an Objective; check its _target_")
    for key, factory in (("tv", total_variation), ("l1", l1), ("l2", l2)):
        if cfg[key]:
            objective = objective + float(cfg[key]) * factory()
    view.check_layers(layer for layer in objective.layers if layer != INPUT)
    return objective


def _probe(view: ModelView, objective: Objective, transforms: Compose, hw: tuple[int, int], batch: int) -> None:
    """Evaluate the objective once on a grey picture of the smallest size, to fail early on sizes and indices."""
    if min(hw) < MIN_SIDE:
        raise UserError(
            f"size {list(hw)} is too small; pictures need at least {MIN_SIDE} pixels a side, "
            "so use a larger size= (or fewer octaves=)"
        )
    layers = [layer for layer in objective.layers if layer != INPUT]
    img = torch.full((batch, 3, *hw), 0.5, device=view.device)
    try:
        with torch.no_grad():
            acts = dict(view(transforms(img), layers))
            acts[INPUT] = img
            for layer in layers:
                if acts[layer].dim() == 4 and min(acts[layer].shape[-2:]) < 1:
                    raise RuntimeError("empty activation")
            objective(acts)
    except RuntimeError as e:
        if _out_of_memory(e):
            raise  # answered as memory, not size, by run_recipe
        raise UserError(
            f"size {list(hw)} is too small for {', '.join(layers)} of {view.name} ({str(e).splitlines()[0][:80]}); "
            "use a larger size= or fewer octaves="
        ) from None


def top5(probs: torch.Tensor, categories: list[str]) -> list[list[Any]]:
    """The five likeliest classes of one probability vector, as ``[name, probability]`` pairs."""
    top = probs.topk(5)
    return [[categories[i], round(float(p), 4)] for p, i in zip(top.values, top.indices, strict=True)]


def probabilities(view: ModelView, picture: torch.Tensor) -> torch.Tensor:
    """The model's class probabilities for the first picture of a batch, seen at most 1024 px on its long side (a
    classifier reads a 4K picture no better, and would need gigabytes for it). Shape: ``(classes,)``."""
    first = picture[:1]
    if max(first.shape[-2:]) > 1024:
        first = resize_to(first, target_size(1024, (first.shape[-2], first.shape[-1])))
    with torch.no_grad():
        return view(first.to(view.device), [LOGITS])[LOGITS].softmax(-1)[0]


def _metrics(cfg: DictConfig, recipe: str, rec: Recorder, hw: tuple[int, int], device: torch.device) -> dict[str, Any]:
    return {
        "recipe": recipe,
        "model": cfg.model.name,
        "steps": rec.steps,
        "seconds": round(rec.seconds, 3),
        "iterations_per_second": round(rec.steps / rec.seconds, 3) if rec.seconds else 0.0,
        "loss_first": rec.loss_first,
        "loss_last": rec.loss_last,
        "seed": cfg.seed,
        "image_size": list(hw),
        "device": str(device),
    }


def _write(
    folder: Path,
    picture: torch.Tensor,
    frames: Snapshots,
    cfg: DictConfig,
    metrics: dict[str, Any],
    labels: list[str] | None = None,
) -> None:
    config_text = config_yaml(cfg)
    if picture.shape[0] == 1:
        save_png(folder / "image.png", picture[0], config_text)
    else:
        for i, single in enumerate(picture):
            save_png(folder / "images" / f"{i:03d}.png", single, config_text)
        # a short captioned sheet is a sequence (shallow to deep …): one row reads left to right
        columns = len(labels) if labels and len(labels) <= 8 else None
        save_png(folder / "image.png", contact_sheet(picture, columns, labels=labels), config_text)
    save_gif(folder / "progress.gif", frames.frames, int(cfg.gif_ms))
    save_json(folder / "metrics.json", metrics)


def _picture_and_size(cfg: DictConfig) -> tuple[torch.Tensor | None, tuple[int, int]]:
    if cfg.init not in ("input", "noise", "zeros"):
        raise UserError(f"init={cfg.init} is not valid; use init=input, noise or zeros")
    picture = load_image(cfg.input) if cfg.get("input") else None
    if picture is None:
        if cfg.init == "input":
            raise UserError("init=input needs a picture; pass input=photo.jpg or use init=noise")
        return None, target_size(cfg.size if cfg.size is not None else 224)
    h, w = picture.shape[-2:]
    return picture, target_size(cfg.size if cfg.size is not None else max(h, w), (h, w))


@dataclass
class Rendered:
    """What :func:`optimize_octaves` hands back: the final picture and what the callbacks recorded."""

    picture: torch.Tensor
    record: Recorder
    frames: Snapshots
    interrupted: bool
    stopped: str | None = None
    """Why the numerical guard stopped the run (``picture`` is then the last good one), or None."""


def optimize_octaves(
    cfg: DictConfig,
    view: ModelView,
    sizes: list[tuple[int, int]],
    objective_at: Callable[[tuple[int, int]], Objective],
    base: torch.Tensor | None = None,
    first: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    folder: Path | None = None,
) -> Rendered:
    """Run the configured parameterization, transforms and optimizer over ``sizes``, smallest first.

    Args:
        cfg: the composed recipe (``param``, ``transforms``, ``optimizer``, ``steps``, ``batch``, ``init`` …).
        view: the model.
        sizes: octave sizes from :func:`engine.octaves.octave_sizes`.
        objective_at: the objective for one octave's size (targets that depend on the size are made here).
        base: a picture to dream on, carrying only the added detail upward (DeepDream).
        first: without ``base``, the first octave's starting picture; later octaves start from the one before.
        generator: the seeded random source of the transforms and the random start.
        folder: the run folder, where ``checkpoint.pt`` is saved every ``checkpoint_every`` steps (None: never);
            with ``cfg.resume``, the octaves before the saved one are skipped and the saved one carries on.
    """
    generator = generator or torch.Generator().manual_seed(cfg.seed)
    transforms = build(cfg.transforms).set_generator(generator)
    tile = cfg.get("tile_size")
    tiling = Tiling(tile, generator) if tile else None
    if tiling is None or max(sizes[-1]) <= tile:  # a picture cut into tiles is there to bound memory
        keep_freed_memory()  # every step allocates the same activations again: keep them in the heap
    # the smallest piece a tiled run may hand the model is a quarter tile on a side that gets cut
    h, w = sizes[0] if tiling is None else (n if n <= tile else tile // 4 for n in sizes[0])
    _probe(view, objective_at(sizes[0]), transforms, (h, w), cfg.batch)
    make_param: Callable[..., Any] = build(cfg.param)
    param_args = {"sd": 0.0} if cfg.init == "zeros" else {}
    rec, frames = Recorder(), snapshots(cfg)
    state = load_checkpoint(cfg.resume) if cfg.get("resume") else None
    every = int(cfg.get("checkpoint_every") or 0) if folder is not None else 0
    config_text = config_yaml(cfg)

    def one_octave(start: torch.Tensor | None, i: int) -> torch.Tensor:
        nonlocal state
        shape = (cfg.batch, 3, *sizes[i])
        if state is not None and i < state["octave"]:
            return torch.zeros(shape, device=view.device)  # done before the checkpoint: its state replaces it
        params, image_fn = make_param(shape, init=start, generator=generator, device=view.device, **param_args)
        optimizer = build(cfg.optimizer)(params)
        first_step = 0
        if state is not None:
            first_step, state = restore(state, params, optimizer, generator, rec, frames), None
        label = f"octave {i + 1}/{len(sizes)} " if len(sizes) > 1 else ""
        callbacks: list[Callback] = [rec, frames, Progress(label), Guard(label=label.strip())]
        if every and folder is not None:
            saver = Checkpointer(folder / CHECKPOINT, every, i, params, optimizer, generator, rec, frames, config_text)
            callbacks.append(saver)
        objective = objective_at(sizes[i])
        steps = cfg.steps
        return optimize(params, image_fn, objective, view, transforms, optimizer, steps, callbacks, tiling, first_step)

    try:
        return Rendered(run_octaves(base, sizes, one_octave, first, bool(cfg.get("tile"))), rec, frames, False)
    except Diverged as e:
        if e.picture is None:
            raise UserError(f"{e} before any good picture; lower the learning rate (lr={cfg.lr})") from None
        why = f"{e}; lr={cfg.lr} is probably too high, try lr={float(cfg.lr) / 10:g}"
        return Rendered(e.picture, rec, frames, False, f"{why}; the picture as it was at step {e.good_step}")
    except KeyboardInterrupt:
        current = rec.current_picture()
        if current is None:
            raise
        return Rendered(current, rec, frames, True)


def finish(
    cfg: DictConfig,
    folder: Path,
    recipe: str,
    view: ModelView,
    out: Rendered,
    objective: str,
    labels: list[str] | None = None,
    **extra: Any,
) -> RunResult:
    """Write the picture, progress GIF and metrics of a rendered run; raise :class:`Interrupted` after Ctrl-C.

    A batch of pictures is written one by one under ``images/`` and as a contact sheet captioned by ``labels``.
    """
    final = out.picture
    metrics = _metrics(cfg, recipe, out.record, (final.shape[-2], final.shape[-1]), view.device)
    metrics.update(
        objective=objective,
        interrupted=out.interrupted,
        top5=top5(probabilities(view, final), view.categories),
        **extra,
    )
    if out.stopped:
        metrics["stopped"] = out.stopped
    _write(folder, final.cpu(), out.frames, cfg, metrics, labels)
    if out.interrupted:
        raise Interrupted(folder, out.record.steps)
    if out.stopped:
        raise UserError(f"{out.stopped} and metrics.json are in {folder}")
    (folder / CHECKPOINT).unlink(missing_ok=True)  # finished: nothing left to resume
    return RunResult(folder, metrics)


def load_view(cfg: DictConfig, fold: bool = True) -> ModelView:
    """The recipe's model, after its numbers were checked and the seed set (``fold``: see :func:`load_model`)."""
    check_numbers(cfg)
    torch.manual_seed(cfg.seed)
    return load_model(cfg.model.name, cfg.model.weights, cfg.model.checkpoint, cfg.device, fold=fold)


def input_picture(cfg: DictConfig, recipe: str, device: torch.device) -> torch.Tensor:
    """The recipe's ``input`` picture at ``size`` (its long side), on ``device``; one error line when there is none."""
    if not cfg.get("input"):
        raise UserError(f"recipe={recipe} needs a picture; pass input=photo.jpg")
    picture = load_image(cfg.input)
    return resize_to(picture, target_size(cfg.size, (picture.shape[-2], picture.shape[-1]))).to(device)


def write_view(
    cfg: DictConfig,
    folder: Path,
    recipe: str,
    sheet: Image.Image,
    arrays: dict[str, np.ndarray] | None = None,
    gif: Snapshots | None = None,
    **extra: Any,
) -> RunResult:
    """Write a view made outside the optimization loop (analysis, adversarial, folder views): ``image.png`` with the
    config, each of ``arrays`` as ``NAME.npy``, ``progress.gif`` from ``gif`` and ``metrics.json`` (the run's
    keys, then ``extra``)."""
    save_png(folder / "image.png", sheet, config_yaml(cfg))
    if gif is not None:
        save_gif(folder / "progress.gif", gif.frames, int(cfg.gif_ms))
    for name, data in (arrays or {}).items():
        atomic_write(folder / f"{name}.npy", partial(np.save, arr=data))
    metrics = {"recipe": recipe, "model": cfg.model.name, "seed": cfg.seed, "steps": 0, **extra}
    save_json(folder / "metrics.json", metrics)
    return RunResult(folder, metrics)


def render(cfg: DictConfig, folder: Path, recipe: str, labels: list[str] | None = None) -> RunResult:
    """Run an optimization recipe (deepdream, class, channel, neuron …) and write its run folder."""
    check_numbers(cfg)
    picture, hw = _picture_and_size(cfg)
    view = load_view(cfg)
    objective = build_objective(cfg, view)
    sizes = octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))
    base = picture.to(view.device) if picture is not None and cfg.init == "input" else None
    out = optimize_octaves(cfg, view, sizes, lambda hw: objective, base=base, folder=folder)
    return finish(cfg, folder, recipe, view, out, objective.name, labels)


def layer_atlas(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Channel visualizations of one layer side by side: picture ``i`` of a batch maximizes the ``i``-th channel."""
    picked = channel_list(cfg.channels if isinstance(cfg.channels, int | str) else list(cfg.channels))
    if len(picked) > 256:
        raise UserError(f"channels={cfg.channels} picks {len(picked)} channels; pick at most 256 per sheet")
    with open_dict(cfg):
        cfg.batch = len(picked)
    return render(cfg, folder, recipe, [f"{cfg.layer}:{c}" for c in picked])


def list_layers(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
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
    save_json(folder / "metrics.json", metrics)
    return RunResult(folder, metrics)


TASKS: dict[str, Callable[[DictConfig, Path, str], RunResult]] = {
    "render": render,
    "layers": list_layers,
    "layer_atlas": layer_atlas,
}


def all_tasks() -> dict[str, Callable[[DictConfig, Path, str], RunResult]]:
    """Every task by name. The task modules import this one, so they are read on first use; the command line calls
    this before Hydra makes the run folder, so that a Ctrl-C during those imports meets no half-made run."""
    from engine.analysis import ANALYSIS_TASKS
    from engine.folders import FOLDER_TASKS
    from engine.motion import MOTION_TASKS
    from engine.transfer import TRANSFER_TASKS

    return {**TASKS, **TRANSFER_TASKS, **ANALYSIS_TASKS, **FOLDER_TASKS, **MOTION_TASKS}


def run_recipe(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Dispatch a composed config to its task (``render``, ``layers``, ``style``, ``inversion`` …)."""
    tasks = all_tasks()
    if cfg.get("resume"):
        cfg = resumed_config(cfg)
        recipe = str(cfg.name)
    task = tasks.get(str(cfg.task))
    if task is None:
        raise UserError(f"task={cfg.task} is not known; use one of {', '.join(tasks)}")
    try:
        return task(cfg, folder, recipe)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        raise UserError(
            f"could not write the results into {folder} ({e.strerror}); free some space or choose another "
            "hydra.run.dir="
        ) from None
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if "converted to type float without overflow" in str(e):  # the optimizer's step size overflows
            raise UserError(
                f"lr={cfg.lr} is too high: the optimizer's step overflowed; try lr={float(cfg.lr) / 1e6:g} or lower"
            ) from None
        if not _out_of_memory(e):
            raise
        batch = cfg.get("batch") or 1
        many = isinstance(batch, int) and batch > 1  # then the batch is the likelier culprit
        raise UserError(
            (f"batch={batch} at " if many else "")
            + f"size={cfg.size} needs more memory than the device has; "
            + ("use a smaller batch= or size=" if many else "use a smaller size= (or a smaller batch=)")
        ) from None


WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES}
"""The errors of a write that the user can fix: disk full, file too large, quota, read-only or forbidden place."""


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text
