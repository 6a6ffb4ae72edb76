"""The run folder's contract: ``image.png`` with its config, ``progress.gif``, ``metrics.json`` and nothing half-made.

Every recipe writes its results through :func:`finish` (an optimized picture) or :func:`write_view` (a view made
outside the loop); both write ``metrics.json`` through :func:`save_metrics`, its one writer.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image

from engine.callbacks import Recorder, Snapshots
from engine.checkpoints import CHECKPOINT
from engine.errors import UserError
from engine.export import atomic_write, contact_sheet, save_gif, save_json, save_png, save_state
from engine.images import checkerboard, composite, expanded, resize_long
from engine.models import LOGITS, ModelView

__all__ = [
    "MADE",
    "RESERVED",
    "SAVING",
    "WEIGHTS",
    "Interrupted",
    "Rendered",
    "RunResult",
    "claim",
    "config_yaml",
    "finish",
    "probabilities",
    "refuse_beside_resume",
    "release",
    "resumed_folder",
    "save_metrics",
    "saving",
    "top5",
    "unmake",
    "withdraw",
    "write_view",
]


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
    picture: torch.Tensor | None = None
    """The optimized picture or batch ``(B, 3, H, W)`` in [0, 1], for recipes that make one; None for views."""


RESERVED = ".dreamloom-run"
"""The file that marks a run folder as taken by a run in progress; made exclusively, so two runs never share one."""


MADE: dict[Path, Path] = {}
"""Run folders this process made, each with the nearest folder above it that was there before (see :func:`unmake`)."""


def unmake(folder: Path) -> None:
    """Remove an empty run folder, and the empty folders above it that were made for it (never through a link); a
    folder that was there before the run (a user's own, named by ``out=`` or ``hydra.run.dir=``) stays."""
    if folder.is_symlink():
        return
    here = folder.resolve()
    stop = MADE.pop(here, None)
    if stop is None:
        return
    above = list(here.parents)
    for p in [here, *(above[: above.index(stop)] if stop in above else [])]:
        try:
            p.rmdir()
        except OSError:
            return


def _reserve(folder: Path, key: str) -> bool:
    here = folder.resolve()
    MADE.pop(here, None)
    before = next((p for p in here.parents if p.is_dir()), None)
    if before is not None and not folder.exists() and not folder.is_symlink():
        MADE[here] = before
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way, a read-only or forbidden place
        MADE.pop(here, None)
        what = "a file is in the way" if isinstance(e, FileExistsError | NotADirectoryError) else e.strerror or str(e)
        raise UserError(f"cannot make the run folder '{shown(folder)}' ({what}); choose another {key}") from None
    if any(p.name != RESERVED for p in folder.iterdir()):
        return False  # it holds results, or anyone else's files
    try:
        os.close(os.open(folder / RESERVED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False  # another run took it first
    return True


def claim(folder: Path, chosen: bool, key: str) -> Path:
    """Take a run folder for this run alone, atomically, and return it.

    Args:
        folder: the folder the run asks for.
        chosen: whether the user named it; a default name that is taken gets ``_2``, ``_3`` … instead.
        key: the key that names the folder, for the error line (``hydra.run.dir=``, ``out=``).

    Raises:
        UserError: a folder the user named is taken or holds results.
    """
    if _reserve(folder, key):
        return folder
    if chosen:
        if any(p.name != RESERVED for p in folder.iterdir()):
            raise UserError(
                f"run folder '{folder}' already exists and is not empty; choose another {key} or move it away"
            )
        raise UserError(f"run folder '{folder}' is in use by another run; choose another {key}")
    for n in range(2, 10_000):
        other = folder.with_name(f"{folder.name}_{n}")
        if _reserve(other, key):
            return other
    raise UserError(f"no free run folder next to '{folder}'; choose one with {key}")


def resumed_folder(folder: str | Path) -> Path:
    """Where a resumed run goes by default: beside the run it carries on, as ``NAME_resumed`` (a resumed run's own
    ``_resumed`` and ``_2`` left off, so resuming it again gives ``NAME_resumed_2``, not ``NAME_resumed_resumed``)."""
    source = expanded(str(folder).rstrip("/") or "/", "resume=").resolve()  # resume=. from inside it too
    return source.with_name(re.sub(r"(_resumed)?(_\d+)?$", "", source.name, count=1) + "_resumed")


def refuse_beside_resume(others: Sequence[str], folder_key: str) -> None:
    """Refuse keys given with ``resume=`` (the command's ``k=v`` texts, the API's key names): the run carries on with
    its own keys, so they would be ignored."""
    if others:
        raise UserError(
            f"resume= carries on a run with its own keys, so {', '.join(others)} would be ignored; pass only "
            f"resume=FOLDER (and {folder_key}), or start a new run"
        )


def release(folder: Path) -> None:
    """Hand a claimed run folder back: the run is over, whatever it wrote stays."""
    (folder / RESERVED).unlink(missing_ok=True)


RESUMABLE = frozenset({CHECKPOINT, "frames"})
"""What a run keeps when its results cannot be written: the state ``resume=`` carries on from."""


def withdraw(folder: Path) -> bool:
    """Take back the results a run could not finish writing (a full disk), so the folder is never half complete:
    everything goes but hidden files (Hydra's, the run's mark), logs and what ``resume=`` needs.

    Returns:
        Whether something to resume from was kept.
    """
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name in RESUMABLE or entry.suffix == ".log":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return (folder / CHECKPOINT).is_file()


SAVING = threading.Event()
"""Set while a run's results are being written: a Ctrl-C or SIGTERM then waits until they are whole."""


@contextlib.contextmanager
def saving() -> Iterator[None]:
    """Mark the results as being written (see :data:`SAVING`)."""
    SAVING.set()
    try:
        yield
    finally:
        SAVING.clear()


def save_metrics(folder: Path, metrics: dict[str, Any]) -> RunResult:
    """Write ``metrics.json`` (atomically) and return the run's result: the one place that writes it."""
    save_json(folder / "metrics.json", metrics)
    return RunResult(folder, metrics)


def config_yaml(cfg: DictConfig) -> str:
    """The resolved config a picture carries (and a checkpoint saves): all that is needed to run it again from the
    start, so without ``resume``, which a resumed run's own picture does not need."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(plain, DictConfig)
    with open_dict(plain):
        if plain.get("resume") is not None:
            plain.resume = None
    return OmegaConf.to_yaml(plain)


def top5(probs: torch.Tensor, categories: list[str]) -> list[list[Any]]:
    """The five likeliest classes of one probability vector, as ``[name, probability]`` pairs."""
    top = probs.topk(5)
    return [[categories[i], round(float(p), 4)] for p, i in zip(top.values, top.indices, strict=True)]


def probabilities(view: ModelView, picture: torch.Tensor) -> torch.Tensor:
    """The model's class probabilities for the first picture of a batch, seen at most 1024 px on its long side (a
    classifier reads a 4K picture no better, and would need gigabytes for it). Shape: ``(classes,)``."""
    first = picture[:1]
    if max(first.shape[-2:]) > 1024:
        first = resize_long(first, 1024)
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


def _write_pictures(
    folder: Path,
    picture: torch.Tensor,
    frames: Snapshots,
    cfg: DictConfig,
    labels: list[str] | None = None,
    sheet: Image.Image | None = None,
) -> None:
    config_text = config_yaml(cfg)
    # a short captioned sheet is a sequence (shallow to deep …): one row reads left to right
    columns = len(labels) if labels and len(labels) <= 8 else None
    if picture.shape[0] == 1 and sheet is None:
        save_png(folder / "image.png", picture[0], config_text)
    else:
        for i, single in enumerate(picture):
            save_png(folder / "images" / f"{i:03d}.png", single, config_text)
        if sheet is None:
            sheet = contact_sheet(composite(picture, checkerboard(*picture.shape[-2:])), columns, labels=labels)
        save_png(folder / "image.png", sheet, config_text)
    if picture.shape[1] == 4:  # transparent: how it looks on black, on white and over the usual checkerboard
        h, w = picture.shape[-2:]
        for name, background in (("black", torch.zeros(1, 3, h, w)), ("white", torch.ones(1, 3, h, w))):
            save_png(folder / f"on_{name}.png", _sheet_or_one(composite(picture, background), columns))
        save_png(folder / "on_checkerboard.png", _sheet_or_one(composite(picture, checkerboard(h, w)), columns))
    if frames.frames:  # none taken (snapshot_every=0): gif_ms is not read
        save_gif(folder / "progress.gif", frames.frames, int(cfg.gif_ms))


def _sheet_or_one(picture: torch.Tensor, columns: int | None) -> torch.Tensor | Image.Image:
    return picture[0] if picture.shape[0] == 1 else contact_sheet(picture, columns)


@dataclass
class Rendered:
    """What :func:`optimize_octaves` hands back: the final picture and what the callbacks recorded."""

    picture: torch.Tensor
    record: Recorder
    frames: Snapshots
    interrupted: bool
    stopped: str | None = None
    """Why the numerical guard stopped the run (``picture`` is then the last good one), or None."""
    weights: list[torch.Tensor] | None = None
    """The finished parameters of a picture that renders at any size (``param=cppn``), written as ``WEIGHTS``."""


WEIGHTS = "cppn.pt"
"""A ``param=cppn`` run's network weights, for ``dreamloom render FOLDER size=…``: a plain list of tensors."""


def finish(
    cfg: DictConfig,
    folder: Path,
    recipe: str,
    view: ModelView,
    out: Rendered,
    objective: str,
    labels: list[str] | None = None,
    sheet: Image.Image | None = None,
    **extra: Any,
) -> RunResult:
    """Write the picture, progress GIF and metrics of a rendered run; raise :class:`Interrupted` after Ctrl-C.

    A batch of pictures is written one by one under ``images/`` and as a contact sheet captioned by ``labels``, or
    as the recipe's own ``sheet`` when it gives one.
    """
    final = out.picture
    metrics = _metrics(cfg, recipe, out.record, (final.shape[-2], final.shape[-1]), view.device)
    metrics.update(
        objective=objective,
        interrupted=out.interrupted,
        top5=top5(probabilities(view, composite(final, checkerboard(*final.shape[-2:]))), view.categories),
        **extra,
    )
    if out.stopped:
        metrics["stopped"] = out.stopped
    with saving():
        _write_pictures(folder, final.cpu(), out.frames, cfg, labels, sheet)
        if out.weights is not None and not out.interrupted and not out.stopped:
            save_state(folder / WEIGHTS, out.weights)
        save_metrics(folder, metrics)
    if out.interrupted:  # a video counts its frames, a picture its steps
        raise Interrupted(folder, *((extra["frames"], "frame") if "frames" in extra else (out.record.steps,)))
    if out.stopped:
        raise UserError(f"{out.stopped} and metrics.json are in {folder}")
    (folder / CHECKPOINT).unlink(missing_ok=True)  # finished: nothing left to resume
    return RunResult(folder, metrics, final)


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
    with saving():
        save_png(folder / "image.png", sheet, config_yaml(cfg))
        if gif is not None:
            save_gif(folder / "progress.gif", gif.frames, int(cfg.gif_ms))
        for name, data in (arrays or {}).items():
            atomic_write(folder / f"{name}.npy", partial(np.save, arr=data))
        metrics = {"recipe": recipe, "model": cfg.model.name, "seed": cfg.seed, "steps": 0, **extra}
        return save_metrics(folder, metrics)


def shown(path: Path | str) -> str:
    """A folder as the end of a command names it: relative to the working folder when it lies below it."""
    with contextlib.suppress(ValueError, OSError):
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    return str(path)
