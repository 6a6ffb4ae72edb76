"""Views over a folder of pictures: max-activating patches, a feature-space embedding, nearest neighbours.

Their default folder, ``folder=samples``, is 60 crops of the packaged sample pictures made on first use
(:mod:`engine.samples`), so every view here runs without a dataset from any working folder.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image
from torch import nn

from engine.errors import UserError, missing_or
from engine.export import check_sheet, contact_sheet
from engine.images import check_side, is_folder, load_image, resize_to, target_size, to_pil
from engine.layers import receptive_field
from engine.models import ModelView, require_map
from engine.results import RunResult, write_view
from engine.runner import load_view, recipe
from engine.samples import FOLDER, sample_folder
from engine.spec import views

__all__ = [
    "PICTURE_SUFFIXES",
    "channel_map",
    "embedding",
    "load_folder",
    "max_patches",
    "neighbours",
    "penultimate",
    "picture_files",
    "square_crop",
]

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def picture_files(folder: Path) -> tuple[list[Path], int]:
    """The picture files of ``folder`` (not its subfolders, no hidden files), sorted, and how many others it holds."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    pictures = [p for p in files if p.suffix.lower() in PICTURE_SUFFIXES]
    return pictures, len(files) - len(pictures)


def square_crop(picture: torch.Tensor, side: int) -> torch.Tensor:
    """The centre square of a picture, resized to ``side``. Shape: ``(1, 3, H, W) -> (1, 3, side, side)``."""
    h, w = picture.shape[-2:]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return resize_to(picture[..., y : y + s, x : x + s], (side, side))


def load_folder(folder: Any, side: int) -> tuple[list[str], torch.Tensor, int]:
    """Every picture file of ``folder`` (not its subfolders), centre-cropped to ``side`` squares.

    Returns the file names, the pictures ``(N, 3, side, side)`` and how many files were skipped as not pictures.
    """
    if not folder:
        raise UserError("this recipe reads a folder of pictures; pass folder=DIR (or folder=samples)")
    path = Path(str(folder)).expanduser()
    if str(folder) == FOLDER and not is_folder(path):
        path = sample_folder()
    if not is_folder(path):
        raise UserError(
            f"folder '{folder}' {missing_or(path, 'is not a folder')}; pass folder=DIR (or folder=samples, the "
            "packaged samples)"
        )
    names, pictures = [], []
    files, skipped = picture_files(path)
    for file in files:
        try:
            pictures.append(square_crop(load_image(file), side))
        except UserError:
            skipped += 1
            continue
        names.append(file.name)
    if not pictures:
        raise UserError(
            f"folder '{folder}' holds no pictures ({skipped} other files); add PNG or JPEG files, "
            "or pass folder=samples"
        )
    return names, torch.cat(pictures), skipped


def square_side(cfg: DictConfig) -> int:
    """The side of the square crops a folder view reads: ``size`` (``[n, n]`` too; a size that is not square is
    refused rather than squared without a word)."""
    h, w = target_size(cfg.size if cfg.size is not None else 224)
    if h != w:
        raise UserError(f"size=[{h},{w}]: this recipe reads square pictures; give one side, such as size={max(h, w)}")
    side = h
    check_side(cfg, (side, side))
    return side


def channel_map(acts: torch.Tensor, layer: str, channel: int) -> torch.Tensor:
    """One channel of a batch of ``layer``'s activations; one line when the layer gives no spatial map or has no
    such channel. Shape: ``(N, C, H, W) -> (N, H, W)``."""
    require_map(acts, layer, "pick a convolutional layer")
    if not 0 <= channel < acts.shape[1]:
        raise UserError(f"channel {channel} is out of range for layer {layer}; use 0 to {acts.shape[1] - 1}")
    return acts[:, channel]


def _batches(pictures: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(pictures), size):
        yield pictures[start : start + size]


def penultimate(view: ModelView, pictures: torch.Tensor) -> torch.Tensor:
    """The input of the model's last ``Linear`` layer: the features the classifier reads. Shape: ``(N, D)``."""
    linears = [m for m in view.model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"model {view.name} has no Linear head to read features from")
    found: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda m, args: found.append(args[0].detach().flatten(1)))
    try:
        with torch.no_grad():
            for chunk in _batches(pictures, 32):
                view(chunk.to(view.device))
    finally:
        handle.remove()
    return torch.cat(found).float().cpu()


def _setup(cfg: DictConfig) -> tuple[ModelView, list[str], torch.Tensor, int]:
    view = load_view(cfg)
    names, pictures, skipped = load_folder(cfg.folder, square_side(cfg))
    return view, names, pictures, skipped


def _write(cfg: DictConfig, folder: Path, recipe: str, sheet: Image.Image, data: np.ndarray, **extra: Any) -> RunResult:
    """:func:`engine.runner.write_view` with the data as ``RECIPE.npy``, then the count of skipped files, if any."""
    result = write_view(cfg, folder, recipe, sheet, {recipe: data}, **extra)
    if extra.get("skipped"):
        print(f"dreamloom: skipped {extra['skipped']} files in {cfg.folder} that are not pictures", file=sys.stderr)
    return result


@recipe(
    paths=("folder",),
    numbers={"channel": (int, 0, False), "top": (int, 0, True)},
    penalties=False,
    ignores={"input": "", "tile_size": "", **views()},
)
def max_patches(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The ``top`` pictures where one channel fires most, each cropped to the receptive field of its strongest unit."""
    t0 = time.perf_counter()
    view, names, pictures, skipped = _setup(cfg)
    layer, channel = str(cfg.layer), int(cfg.channel)
    view.check_layers([layer])
    peaks = []
    with torch.no_grad():
        for chunk in _batches(pictures, 32):
            maps = channel_map(view(chunk.to(view.device), [layer])[layer], layer, channel)
            a = maps.flatten(1)
            value, where = a.max(1)
            peaks += [
                (float(v), int(i) // maps.shape[-1], int(i) % maps.shape[-1]) for v, i in zip(value, where, strict=True)
            ]
    size, jump, start = receptive_field(view, layer)
    order = sorted(range(len(names)), key=lambda i: -peaks[i][0])[: int(cfg.top)]
    if int(cfg.top) > len(names):
        print(f"dreamloom: top={cfg.top} but {cfg.folder} holds {len(names)} pictures; showing all", file=sys.stderr)
    side = square_side(cfg)
    crop = min(size, side)
    patches, boxes = [], []
    for i in order:
        _, row, col = peaks[i]
        cy, cx = start + row * jump, start + col * jump
        y0 = round(min(max(cy - crop / 2, 0), side - crop))
        x0 = round(min(max(cx - crop / 2, 0), side - crop))
        boxes.append([y0, x0, crop])
        patches.append(resize_to(pictures[i : i + 1, :, y0 : y0 + crop, x0 : x0 + crop], (96, 96)))
    labels = [f"{names[i]} {peaks[i][0]:.1f}" for i in order]
    columns = math.ceil(math.sqrt(len(order)))
    sheet = contact_sheet(torch.cat(patches), columns, labels=labels)
    return _write(
        cfg,
        folder,
        recipe,
        sheet,
        np.array([peaks[i][0] for i in order]),
        seconds=round(time.perf_counter() - t0, 3),
        pictures=len(names),
        skipped=skipped,
        receptive_field=size,
        jump=jump,
        top=[
            {"file": names[i], "activation": round(peaks[i][0], 4), "box_yxs": b}
            for i, b in zip(order, boxes, strict=True)
        ],
    )


def _pca(features: torch.Tensor, dims: int = 2) -> torch.Tensor:
    centred = features - features.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:dims].T


def _grid_layout(points: np.ndarray, cells: int) -> list[tuple[int, int]]:
    """Give every point its own cell of a ``cells`` × ``cells`` grid, the free cell nearest its scaled position,
    placing the points nearest the centre first."""
    lo, hi = points.min(0), points.max(0)
    scaled = (points - lo) / np.maximum(hi - lo, 1e-12) * (cells - 1)
    free = {(r, c) for r in range(cells) for c in range(cells)}
    order = np.argsort(np.linalg.norm(scaled - (cells - 1) / 2, axis=1))
    spots: dict[int, tuple[int, int]] = {}
    for i in order:
        y, x = scaled[i][1], scaled[i][0]
        spot = min(free, key=lambda rc: (rc[0] - y) ** 2 + (rc[1] - x) ** 2)
        free.remove(spot)
        spots[int(i)] = spot
    return [spots[i] for i in range(len(points))]


@recipe(
    paths=("folder",),
    numbers={"thumb": (int, 7, True), "perplexity": (float, 0, True)},
    penalties=False,
    ignores={"input": "", "tile_size": "", **views()},
)
def embedding(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The pictures laid out by their classifier features, reduced to 2-D by PCA or t-SNE, one thumbnail per cell."""
    t0 = time.perf_counter()
    if cfg.method not in ("pca", "tsne"):
        raise UserError(f"method={cfg.method} is not known; use method=tsne or method=pca")
    view, names, pictures, skipped = _setup(cfg)
    if len(names) < 2:
        raise UserError(f"folder '{cfg.folder}' holds {len(names)} picture; an embedding needs 2 or more")
    features = penultimate(view, pictures)
    if cfg.method == "pca" or len(names) < 4:
        points = _pca(features).numpy()
    else:
        try:
            from sklearn.manifold import TSNE  # type: ignore[import-untyped]
        except ImportError:
            raise UserError(
                "method=tsne needs scikit-learn, an optional part: pip install 'dreamloom[tsne]' (or use method=pca)"
            ) from None

        perplexity = float(min(cfg.perplexity, (len(names) - 1) / 3))
        points = TSNE(2, perplexity=perplexity, init="pca", random_state=int(cfg.seed)).fit_transform(features.numpy())
    cells = math.ceil(math.sqrt(len(names) * 1.3))
    thumb = int(cfg.thumb)
    check_sheet(cells * cells, (thumb, thumb), thumb)
    canvas = Image.new("RGB", (cells * thumb, cells * thumb), "white")
    small = resize_to(pictures, (thumb - 2, thumb - 2))
    for i, (r, c) in enumerate(_grid_layout(points, cells)):
        canvas.paste(to_pil(small[i]), (c * thumb + 1, r * thumb + 1))
    return _write(
        cfg,
        folder,
        recipe,
        canvas,
        points.astype(np.float32),
        seconds=round(time.perf_counter() - t0, 3),
        pictures=len(names),
        skipped=skipped,
        method=str(cfg.method),
        feature_size=int(features.shape[1]),
    )


@recipe(
    paths=("folder", "query"),
    numbers={"k": (int, 0, True)},
    penalties=False,
    ignores={"input": "", "tile_size": "", **views()},
)
def neighbours(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The ``k`` pictures nearest ``query`` in the classifier's feature space (cosine) and in pixel space (L2 on
    32-px copies), as two captioned rows."""
    t0 = time.perf_counter()
    view, names, pictures, skipped = _setup(cfg)
    if not cfg.query:
        raise UserError(
            "recipe=neighbours compares one picture with the folder; pass query=PICTURE (a path or a sample such as "
            "query=chelsea)"
        )
    query = square_crop(load_image(cfg.query, "query"), square_side(cfg))
    k = min(int(cfg.k), len(names))
    if k < int(cfg.k):
        print(f"dreamloom: k={cfg.k} but {cfg.folder} holds {len(names)} pictures; showing all {k}", file=sys.stderr)
    feats = F.normalize(penultimate(view, torch.cat([query, pictures])), dim=1)
    by_features = (feats[1:] @ feats[0]).topk(k).indices.tolist()
    tiny = resize_to(torch.cat([query, pictures]), (32, 32)).flatten(1)
    by_pixels = (tiny[1:] - tiny[0]).norm(dim=1).topk(k, largest=False).indices.tolist()
    rows = [query[0], *(pictures[i] for i in by_features), query[0], *(pictures[i] for i in by_pixels)]
    labels = ["query", *(f"features {names[i]}" for i in by_features)]
    labels += ["query", *(f"pixels {names[i]}" for i in by_pixels)]
    sheet = contact_sheet(resize_to(torch.stack(rows), (128, 128)), k + 1, labels=labels)
    return _write(
        cfg,
        folder,
        recipe,
        sheet,
        np.array([by_features, by_pixels]),
        seconds=round(time.perf_counter() - t0, 3),
        pictures=len(names),
        skipped=skipped,
        by_features=[names[i] for i in by_features],
        by_pixels=[names[i] for i in by_pixels],
    )
