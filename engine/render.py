"""``dreamloom render FOLDER size=…``: a ``param=cppn`` run's picture drawn again at another size, without
optimizing (its network of coordinates has no size of its own; see :mod:`engine.cppn`).

The run's config is rebuilt from the project's own configs and the plain values its picture carries, and the
weights are read as plain tensors (``torch.load(weights_only=True)``): nothing in the folder chooses code to run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig
from PIL import Image

from engine.errors import UserError, out_of_memory
from engine.export import read_png_config, save_png
from engine.images import expanded, is_file, is_folder, target_size
from engine.stored import rebuild

__all__ = ["USAGE", "render_folder"]

RENDER_PIXELS = 100_000_000
"""The most pixels one render draws (all the batch's pictures together): each is held as floats while drawn."""
USAGE = "dreamloom render FOLDER size=3840 (the long side) or size=[2160,3840]"


def _size(args: list[str]) -> object:
    """The ``size=`` value among ``args``; one line for anything else."""
    sizes = [a.split("=", 1)[1] for a in args if a.startswith("size=")]
    others = [a for a in args if not a.startswith("size=")]
    if others or len(sizes) != 1:
        raise UserError(f"render takes a run folder and one size=; use: {USAGE}")
    try:
        return yaml.safe_load(sizes[0])
    except yaml.YAMLError:
        return sizes[0]


def _weights(path: Path, source: str) -> list[torch.Tensor]:
    """The run's CPPN weights as plain tensors; one line when the file is missing or not what a run writes."""
    if not path.is_file():
        raise UserError(f"'{source}' holds no {path.name}; only finished param=cppn runs can be rendered again")
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign file's pickle protocol: the line below says it
            warnings.simplefilter("ignore")
            weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: whatever torch raised, it is not a run's weights
        raise UserError(
            f"'{path}' could not be read as a run's weights ({type(e).__name__}); run the recipe again"
        ) from None
    plain = isinstance(weights, list) and all(isinstance(t, torch.Tensor) and t.dim() >= 2 for t in weights)
    if not plain or len(weights) < 4:
        raise UserError(f"'{path}' is not a param=cppn run's weights; run the recipe again")
    return [t.float() for t in weights]


def _check_shapes(weights: list[torch.Tensor], cfg: DictConfig, path: Path) -> None:
    """The weights must be the network the run's own keys describe (its batch, ``param.width``, ``param.depth``)."""
    from engine.cppn import MAX_DEPTH, MAX_WIDTH, weight_shapes

    batch, width, depth = cfg.get("batch"), cfg.param.get("width"), cfg.param.get("depth")
    sizes = (batch, width, depth)
    fits = all(isinstance(n, int) and not isinstance(n, bool) for n in sizes)
    fits = fits and 1 <= width <= MAX_WIDTH and 1 <= depth <= MAX_DEPTH and batch >= 1
    if not fits or [tuple(t.shape) for t in weights] != weight_shapes(batch, width, depth):
        raise UserError(f"'{path}' is not the network its run's keys describe; run the recipe again")


def _shape(first: Path, folder: Path) -> tuple[int, int]:
    """The run's own aspect ratio, from its first picture, for a size given as the long side."""
    if not first.is_file():
        raise UserError(f"'{folder}' has lost {first.name} of its batch's pictures; run the recipe again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(first) as img:
                return img.height, img.width
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"'{first}' is damaged or no picture of this run; run the recipe again") from None


def render_folder(args: list[str]) -> list[Path]:
    """Render the ``param=cppn`` run in ``args[0]`` at the ``size=`` in ``args[1:]``; returns the pictures written
    beside its ``image.png`` (``image_WxH.png``, or ``image_WxH_N.png`` for each picture of a batch)."""
    from engine.cppn import render_large
    from engine.results import WEIGHTS

    if not args or ("=" in args[0] and not is_folder(args[0]) and not is_file(args[0])):  # a folder named lr=0.1
        raise UserError(f"render needs the folder of a param=cppn run; use: {USAGE}")
    folder = expanded(args[0], "folder")
    if folder.name == "image.png" and is_file(folder):  # the run's picture stands for its folder, as for rerun
        folder = folder.parent
    picture = folder / "image.png"
    if not is_folder(folder) or not is_file(picture):
        raise UserError(f"'{folder}' is not a run folder (it has no image.png); use: {USAGE}")
    size = _size(args[1:])
    try:
        text = read_png_config(picture)
    except (OSError, ValueError, SyntaxError):  # not a picture PIL can read: it carries no config either
        text = None
    if not text:
        raise UserError(f"'{picture}' carries no dreamloom config; pass the folder of a param=cppn run")
    cfg = rebuild(text, str(picture))
    if cfg.param.get("_target_") != "engine.cppn.cppn":
        raise UserError(
            f"'{folder}' was not made with param=cppn, so its picture has a fixed size; run it again at that size: "
            f"dreamloom rerun {folder} size=…"
        )
    weights = _weights(folder / WEIGHTS, str(folder))
    _check_shapes(weights, cfg, folder / WEIGHTS)
    first = picture if weights[0].shape[0] == 1 else folder / "images" / "000.png"
    h, w = target_size(size, _shape(first, folder))  # type: ignore[arg-type]
    names = (
        [f"image_{w}x{h}.png"]
        if weights[0].shape[0] == 1
        else [f"image_{w}x{h}_{i}.png" for i in range(len(weights[0]))]
    )
    if h * w * len(names) > RENDER_PIXELS:
        side = int((RENDER_PIXELS / len(names)) ** 0.5)
        raise UserError(
            f"size={size} is {h * w * len(names) / 1e6:.0f} megapixels to draw, more than the {RENDER_PIXELS // 10**6} "
            f"a render holds in memory; use a size up to about {side}×{side}"
        )
    taken = [n for n in names if (folder / n).exists()]
    if taken:
        raise UserError(f"'{folder / taken[0]}' exists already; move it away to render that size again")
    try:
        pictures = render_large(weights, h, w)
    except RuntimeError as e:
        if out_of_memory(e):
            raise UserError(f"size={size} needs more memory than this machine has; use a smaller size=") from None
        raise UserError(
            f"'{folder / WEIGHTS}' does not fit the run's keys ({str(e)[:60]}); run the recipe again"
        ) from None
    return [save_png(folder / name, one, text) for name, one in zip(names, pictures, strict=True)]
