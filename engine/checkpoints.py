"""Checkpoints of a long optimization, and resuming from one.

Every ``checkpoint_every`` steps the run folder gets ``checkpoint.pt``: the resolved config, the octave and step, the
picture's parameters, the optimizer's state, the random generator's state, what the recorder counted and the GIF
frames so far. ``resume=FOLDER`` runs that config again and, on reaching the saved octave, puts all of it back and
carries on from the saved step, so it ends on the same picture as a run that was never stopped. A checkpoint is
data from a file a user may have been given: every field is checked on loading, before any of it is used.
"""

from __future__ import annotations

import copy
import math
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

from engine.callbacks import Callback, Recorder, Snapshots
from engine.errors import RUN_NAME, UserError, missing_or
from engine.export import plain_yaml, read_metrics, save_state
from engine.images import is_folder
from engine.params import ImageFn

__all__ = [
    "CHECKPOINT",
    "Checkpointer",
    "check_checkpoint",
    "frames_state",
    "load_checkpoint",
    "octave_checkpoint",
    "restore",
    "restore_frames",
    "resume_name",
]

CHECKPOINT = "checkpoint.pt"
FORMAT = 1
OPTIONAL = frozenset({"frame_stride"})  # the fields an older checkpoint may lack
Fields = dict[str, tuple[Callable[[Any], bool], str]]


def _finished(folder: Path) -> bool:
    """Whether ``folder`` holds a run that ended normally (its metrics say it was not interrupted)."""
    return read_metrics(folder).get("interrupted") is False and (folder / "image.png").is_file()


def load_checkpoint(folder: str | Path, progress: bool = True) -> dict[str, Any]:
    """The checkpoint saved in a run folder, checked by :func:`check_checkpoint` (``progress``: its saved progress
    too, not only its config); one :class:`UserError` line when there is none or it cannot be trusted."""
    path = Path(folder) / CHECKPOINT
    if not is_folder(folder):
        how = missing_or(Path(folder), "is not a folder")
        raise UserError(f"resume={folder} {how}; pass the folder of an earlier run (outputs/<date>/<time>_…)")
    if not path.is_file():
        if _finished(Path(folder)):
            raise UserError(
                f"resume={folder} is a run that finished (a finished run keeps no {CHECKPOINT}); to run it again, "
                f"with any keys changed: dreamloom rerun {folder}"
            )
        raise UserError(
            f"resume={folder} holds no {CHECKPOINT}; runs save one every checkpoint_every steps "
            "(pass the folder of a run that got that far)"
        )
    foreign = UserError(
        f"{path} is not a checkpoint dreamloom can read (damaged, or written by something else); run the recipe "
        "again instead"
    )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # every entry's checksum, before anything of it is used
    except Exception:  # not a zip, or one Python cannot check: encrypted, compressed another way, names not UTF-8
        raise foreign from None
    if damaged:
        raise UserError(f"{path} is damaged (part of it fails its checksum); run the recipe again instead")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a truncated or foreign file: torch raises many kinds, with long messages
        raise foreign from None
    if not isinstance(state, dict) or not _whole(state.get("format"), FORMAT, FORMAT):
        raise UserError(f"{path} is not a dreamloom checkpoint of this version; start the run again")
    check_checkpoint(state, path, progress)
    return state


def octave_checkpoint(folder: str | Path | None, octaves: int, steps: int) -> dict[str, Any] | None:
    """The checkpoint ``resume=folder`` names (None without one), checked to carry on an optimization of ``octaves``
    octaves of ``steps`` steps each, as :func:`restore` needs."""
    if not folder:
        return None
    state, path = load_checkpoint(folder), Path(folder) / CHECKPOINT
    if _kind(state) != "octaves":
        raise _refused(path, "it holds no optimization over octaves to carry on")
    if state["octave"] >= octaves or state["step"] > steps:
        raise _refused(path, f"it stopped past the end of this run's {octaves} octave(s) of {steps} steps")
    return state


def resume_name(folder: str | Path) -> str:
    """The name of the run whose checkpoint ``folder`` holds (checked whole first), fit to pass on the command line:
    ``run`` for one with other characters than letters, digits, ``_``, ``-`` and ``.``."""
    name = plain_yaml(load_checkpoint(folder)["config"]).get("name")
    return name if isinstance(name, str) and RUN_NAME.fullmatch(name) else "run"


def _refused(path: Path, why: str) -> UserError:
    return UserError(f"{path} is not a checkpoint dreamloom wrote ({why}); start the run again")


def check_checkpoint(state: dict[str, Any], path: Path, progress: bool = True) -> None:
    """Refuse (:class:`UserError`, naming the first wrong field) a checkpoint whose fields are not what dreamloom
    writes, before anything of it is used: the config must be plain YAML holding a mapping; with ``progress``, every
    field of its kind (octaves, a style training, or the config alone) must have its written type and range."""
    config = _stored_config(state.get("config"), path)
    fields = _fields(_kind(state), config, path) if progress else {}
    missing = [key for key in fields if key not in state and key not in OPTIONAL]
    if missing:
        raise _refused(path, f"it lacks {', '.join(missing)}")
    for key, (fits, what) in fields.items():
        if key in state and not fits(state[key]):
            raise _refused(path, f"its {key!r} is not {what}")
    if not _stored_once(state):
        raise _refused(path, "its tensors are views of the same bytes, far larger once read than the file")


def _stored_once(state: dict[str, Any]) -> bool:
    """Whether the checkpoint's tensors together hold no more bytes than their storages do: many views of one
    storage would let a small file stand for gigabytes once each is copied out."""
    tensors: list[torch.Tensor] = []
    todo: list[Any] = [state]
    while todo:  # the fields are checked already: containers of tensors and plain values, a few levels deep
        value = todo.pop()
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif isinstance(value, dict | list | tuple):
            todo += value.values() if isinstance(value, dict) else value
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(t.numel() * t.element_size() for t in tensors) <= sum(storages.values())


def _stored_config(text: Any, path: Path) -> dict[str, Any]:
    """The checkpoint's config as plain data, once :func:`engine.export.check_plain_yaml` lets it through."""
    if not isinstance(text, str):
        raise _refused(path, "its config is not the text of a run's keys")
    try:
        config = plain_yaml(text)
    except ValueError as e:
        raise _refused(path, f"its config is refused: {e}") from None
    except yaml.YAMLError:
        raise _refused(path, "its config is not the YAML of a run's keys") from None
    if not isinstance(config, dict):
        raise _refused(path, "its config is not a mapping of keys to values")
    return config


def _kind(state: dict[str, Any]) -> str:
    """What a checkpoint carries on: a style network's training, an optimization over octaves, or (a run of
    frames, which keeps its progress in its frames folder) nothing but its config."""
    if "network" in state:
        return "training"
    return "octaves" if set(state) - {"format", "config"} else "config"


def _fields(kind: str, config: dict[str, Any], path: Path) -> Fields:
    """Each field a checkpoint of ``kind`` holds: a test of its value and what the value should be."""
    if kind == "config":
        return {}
    steps = _count(config, "steps", path)
    shared: Fields = {
        "step": (lambda v: _whole(v, 0, steps), f"a whole number from 0 to {steps}"),
        "optimizer": (_optimizer_state, "an optimizer's state"),
        "generator": (_generator_state, "a random generator's state as torch.Generator.get_state gives it"),
        "frames": (_frames, "a list of RGB frames, height x width x 3 bytes"),
        "frame_stride": (lambda v: _whole(v, 1) and v & (v - 1) == 0, "a power of two"),
    }
    if kind == "training":
        return {
            "network": (_network, "a network's weights by name"),
            **shared,
            "seconds": (lambda v: _real(v, 0), "a number of seconds"),
            "curves": (_curves, "a table of losses, steps x 2"),
        }
    octaves = _count(config, "octaves", path)
    return {
        "octave": (lambda v: _whole(v, 0, octaves - 1), f"a whole number from 0 to {octaves - 1}"),
        **shared,
        "params": (_params, "a list of floating-point tensors"),
        "record": (lambda v: _record(v, octaves * steps), "what the run counted: losses, steps and seconds"),
    }


def _count(config: dict[str, Any], key: str, path: Path) -> int:
    """A count from the stored config (``steps``, ``octaves``) that bounds the saved progress."""
    value = config.get(key, 0)
    if not _whole(value, 1):
        raise _refused(path, f"its config's {key} is not a whole number above 0")
    return int(value)


def _whole(value: Any, low: int, high: float = math.inf) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _real(value: Any, low: float = -math.inf) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value >= low


def _held(value: Any) -> bool:
    """Whether ``value`` is a plain tensor whose elements are all stored (no zero strides that let a few stored
    bytes stand for gigabytes once read)."""
    return (
        isinstance(value, torch.Tensor)
        and value.layout == torch.strided
        and not value.is_quantized
        and value.numel() * value.element_size() <= value.untyped_storage().nbytes()
    )


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made only of what an optimizer's state holds: numbers, strings, None and stored tensors,
    in lists, tuples and dicts a few levels deep."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, torch.Tensor):
        return _held(value)
    if depth > 4:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v, depth + 1) for k, v in value.items())
    return isinstance(value, (list, tuple)) and all(_plain(v, depth + 1) for v in value)


def _optimizer_state(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) != {"state", "param_groups"} or not _plain(value):
        return False
    groups = value["param_groups"]
    listed = isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    return listed and isinstance(value["state"], dict)


def _generator_state(value: Any) -> bool:
    """Whether ``value`` is a random state that a generator takes (of its size, passing its checks)."""
    if not _held(value) or value.dtype != torch.uint8:
        return False
    try:
        torch.Generator().set_state(value)
    except RuntimeError:
        return False
    return True


def _params(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_held(t) and t.is_floating_point() for t in value)


def _network(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _held(t) for k, t in value.items())


def _curves(value: Any) -> bool:
    return _held(value) and value.is_floating_point() and value.dim() == 2 and value.shape[1] == 2


def _frames(value: Any) -> bool:
    return isinstance(value, list) and all(
        _held(f) and f.dtype == torch.uint8 and f.dim() == 3 and f.shape[2] == 3 and f.shape[0] * f.shape[1] > 0
        for f in value
    )


def _loss(value: Any) -> bool:
    """A loss as the recorder keeps it: None before the first step, else a float (NaN too: the guard looks late)."""
    return value is None or isinstance(value, float)


def _record(value: Any, most: int) -> bool:
    """Whether ``value`` is what the recorder counted: the first and last loss (or None), steps and seconds."""
    return (
        isinstance(value, dict)
        and {"loss_first", "loss_last", "steps", "seconds"} <= set(value)
        and _loss(value["loss_first"])
        and _loss(value["loss_last"])
        and _whole(value["steps"], 0, most)
        and _real(value["seconds"], 0)
    )


class Checkpointer(Callback):
    """Saves the state of one octave's optimization every ``every`` steps of the whole run (atomically, so a kill
    never leaves half a checkpoint). It must come after ``record`` and ``frames`` in the callbacks."""

    def __init__(
        self,
        path: Path,
        every: int,
        octave: int,
        params: Sequence[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        record: Recorder,
        frames: Snapshots,
        config_text: str,
    ) -> None:
        self.path, self.every, self.octave = path, every, octave
        self.params, self.optimizer, self.generator = params, optimizer, generator
        self.record, self.frames, self.config_text = record, frames, config_text

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        if not self.every or self.record.steps % self.every:  # counted over all octaves
            return
        state = {
            "format": FORMAT,
            "config": self.config_text,
            "octave": self.octave,
            "step": step + 1,
            "params": [p.detach().cpu() for p in self.params],  # written out at once: no copy needed
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "record": {
                "loss_first": self.record.loss_first,
                "loss_last": self.record.loss_last,
                "steps": self.record.steps,
                "seconds": self.record.seconds,
            },
            **frames_state(self.frames),
        }
        save_state(self.path, state)


def restore(
    state: dict[str, Any],
    params: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    record: Recorder,
    frames: Snapshots,
) -> int:
    """Put a checkpoint's state back into a freshly built octave; returns the step to carry on from."""
    saved = state["params"]
    if len(saved) != len(params) or any(s.shape != p.shape for s, p in zip(saved, params, strict=False)):
        raise UserError("the checkpoint does not fit this run's picture; start the run again")
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    _restore_optimizer(optimizer, state["optimizer"])
    generator.set_state(state["generator"])  # one that torch takes: checked on loading
    rec = state["record"]
    record.loss_first, record.steps, record.seconds = rec["loss_first"], rec["steps"], rec["seconds"]
    if rec["loss_last"] is not None:
        record.last_loss = torch.tensor(rec["loss_last"])
    restore_frames(state, frames)
    return int(state["step"])


def _restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load ``saved`` into ``optimizer`` once a copy of both has taken one step with it: a state of the wrong
    groups, sizes or settings then fails here, in one line, rather than part way through the run."""
    groups = [  # the same settings on copies of the parameters: the picture is not touched
        {**group, "params": [p.detach().clone().requires_grad_(True) for p in group["params"]]}
        for group in optimizer.param_groups
    ]
    copies = [p for group in groups for p in group["params"]]
    trial = type(optimizer)(groups, **optimizer.defaults)

    def closure() -> float:
        trial.zero_grad()
        loss = torch.stack([p.sum() for p in copies]).sum()
        loss.backward()
        return float(loss.detach())

    try:
        trial.load_state_dict(copy.deepcopy(saved))
        trial.step(closure)
        optimizer.load_state_dict(saved)
    except Exception:  # a foreign state fails in torch's code in many ways
        name = type(optimizer).__name__
        raise UserError(f"the saved optimizer state does not fit this run's {name}; start the run again") from None


def frames_state(frames: Snapshots) -> dict[str, Any]:
    """The progress GIF's frames so far as a checkpoint holds them: plain tensors, and how often they come."""
    return {
        "frames": [torch.from_numpy(np.asarray(f.convert("RGB")).copy()) for f in frames.frames],
        "frame_stride": frames.stride,
    }


def restore_frames(state: dict[str, Any], frames: Snapshots) -> None:
    """Put the frames of :func:`frames_state` back into ``frames``."""
    frames.frames = [Image.fromarray(f.numpy()) for f in state["frames"]]
    frames.stride = int(state.get("frame_stride", 1))
