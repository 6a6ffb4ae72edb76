"""Checkpoints of a long optimization, and resuming from one.

Every ``checkpoint_every`` steps the run folder gets ``checkpoint.pt``: the resolved config, the octave and step, the
picture's parameters, the optimizer's state, the random generator's state, what the recorder counted and the GIF
frames so far. ``resume=FOLDER`` runs that config again and, on reaching the saved octave, puts all of it back and
carries on from the saved step, so it ends on the same picture as a run that was never stopped.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.callbacks import Callback, Recorder, Snapshots
from engine.errors import UserError
from engine.export import atomic_write
from engine.images import is_folder
from engine.params import ImageFn

__all__ = ["CHECKPOINT", "Checkpointer", "frames_state", "load_checkpoint", "restore", "restore_frames"]

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def _finished(folder: Path) -> bool:
    """Whether ``folder`` holds a run that ended normally (its metrics say it was not interrupted)."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and metrics.get("interrupted") is False and (folder / "image.png").is_file()


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The checkpoint saved in a run folder; one :class:`UserError` line when there is none or it cannot be read."""
    path = Path(folder) / CHECKPOINT
    if not is_folder(folder):
        raise UserError(f"resume={folder} is not a folder; pass the folder of an earlier run (outputs/<date>/<time>_…)")
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
    except (zipfile.BadZipFile, OSError):
        raise foreign from None
    if damaged:
        raise UserError(f"{path} is damaged (a checksum fails in {damaged}); run the recipe again instead")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a truncated or foreign file: torch raises many kinds, with long messages
        raise foreign from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a dreamloom checkpoint of this version; start the run again")
    return state


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
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))


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
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    rec = state["record"]
    record.loss_first, record.steps, record.seconds = rec["loss_first"], rec["steps"], rec["seconds"]
    if rec["loss_last"] is not None:
        record.last_loss = torch.tensor(rec["loss_last"])
    restore_frames(state, frames)
    return int(state["step"])


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
