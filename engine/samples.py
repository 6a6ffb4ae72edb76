"""Sample data made from the packaged pictures on first use: a folder of crops and a short clip.

They are written once into dreamloom's cache folder (``$DREAMLOOM_CACHE``, else ``$XDG_CACHE_HOME/dreamloom``, else
``~/.cache/dreamloom``), so ``folder=samples`` and ``input=clip`` work from any working folder. Each is built in a
temporary folder and renamed into place, so runs started together never see half of one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import UserError
from engine.export import save_png
from engine.images import SAMPLE_PHOTOS, SAMPLES, load_image, resize_to

__all__ = ["CLIP", "FOLDER", "cache_dir", "make_clip", "make_samples", "sample_clip", "sample_folder"]

FOLDER = "samples"
"""The name that stands for the sample picture folder (``folder=samples``)."""
CLIP = "clip"
"""The name that stands for the sample clip (``input=clip``): the Chelsea photo, panned from left to right."""
CLIP_FRAMES, CLIP_STEP = 16, 10
"""Frames of the sample clip, and pixels the view moves right between two of them."""


def cache_dir() -> Path:
    """dreamloom's cache folder (not made here)."""
    if os.environ.get("DREAMLOOM_CACHE"):
        return Path(os.environ["DREAMLOOM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dreamloom"


def make_samples(folder: Path, per_picture: int = 6, side: int = 160, seed: int = 0) -> list[Path]:
    """Write ``per_picture`` random crops (with flips) of every sample photo as ``NAME_K.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for name in SAMPLE_PHOTOS:
        picture = load_image(name)[0]
        h, w = picture.shape[-2:]
        for k in range(per_picture):
            crop = int(min(h, w) * rng.uniform(0.55, 1.0))
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            piece = resize_to(picture[None, :, y : y + crop, x : x + crop], (side, side))[0]
            if rng.random() < 0.5:
                piece = piece.flip(-1)
            path = folder / f"{name}_{k}.png"
            save_png(path, piece)
            written.append(path)
    return written


def make_clip(path: Path, frames: int = CLIP_FRAMES, step: int = CLIP_STEP, size: tuple[int, int] = (225, 300)) -> Path:
    """Write a GIF of a ``size`` (h, w) view panning right across the Chelsea photo by ``step`` pixels a frame: a
    clip whose motion is known exactly."""
    photo = np.asarray(SAMPLES["chelsea"]())
    h, w = size
    top = (photo.shape[0] - h) // 2
    if w + step * (frames - 1) > photo.shape[1] or h > photo.shape[0]:
        raise ValueError(f"a {frames}-frame pan of {step} px does not fit the {photo.shape[1]}-px photo")
    views = [Image.fromarray(photo[top : top + h, k * step : k * step + w]) for k in range(frames)]
    views[0].save(path, save_all=True, append_images=views[1:], duration=100, loop=0, optimize=False)
    return path


def _built(final: Path, build: object) -> Path:
    """``final``, made by ``build(temporary_path)`` and renamed into place unless another run made it first."""
    if final.exists():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    except OSError as e:  # not the run's folder: said so, and the run's folder is left alone
        raise UserError(
            f"cannot make the sample data in {final.parent} ({e.strerror}); point DREAMLOOM_CACHE at a writable folder"
        ) from None
    try:
        made = build(work / final.name)  # type: ignore[operator]
        with contextlib.suppress(OSError):  # another run renamed its copy first: keep that one
            os.rename(made, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def sample_folder() -> Path:
    """The sample picture folder (60 crops of the packaged photos), made on first use."""
    return _built(cache_dir() / FOLDER, lambda p: (make_samples(p), p)[1])


def sample_clip() -> Path:
    """The sample clip (16 frames panning across the Chelsea photo), made on first use."""
    return _built(cache_dir() / f"{CLIP}.gif", make_clip)
