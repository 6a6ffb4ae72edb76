"""Which attribution map can be trusted: each method's map is scored by what happens to the class probability when the
pixels it ranks highest are taken away or put back, against random maps of the same smoothness.

- Deletion and insertion (Petsiuk et al., 2018): pixels take the mean colour in the map's order (the zero of the
  model's normalized input, as the authors' code has it), or appear in that order on a blurred copy; the area under
  the probability curve is low for a faithful map on deletion and high on insertion.
- ROAD (Rong et al., 2022): removed pixels are filled by noisy linear imputation (each the weighted mean of its eight
  neighbours, solved together, plus a little noise), so removal leaves no hole shaped like the map for the model to
  notice. Most relevant first (MoRF, low is faithful) and least relevant first (LeRF, high is faithful).

Library functions first, then ``faithfulness`` (``recipe=faithfulness``), which writes the curves' plot as
``image.png``, every score in ``faithfulness.csv`` and the table per method in ``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig
from PIL import Image

from engine.callbacks import Progress
from engine.checks import seeded
from engine.errors import UserError
from engine.export import figure_picture, write_text
from engine.images import SAMPLES, is_input_folder, load_image, resize_to, target_size
from engine.models import LOGITS, ModelView
from engine.results import RunResult, write_view
from engine.runner import load_view, recipe
from engine.spec import views
from objectives.classes import resolve_class
from recipes.attribution import conv_layer
from recipes.cams import CAM_METHODS, cam
from recipes.folders import picture_files
from recipes.gradients import BASELINES, SALIENCY_METHODS, baseline_picture, saliency

__all__ = ["METHODS", "PHOTOS", "SCORES", "curve", "faithfulness", "impute", "random_map", "ranking", "road"]

PHOTOS = (
    *("chelsea", "coffee", "astronaut", "rocket", "grace_hopper"),
    *("hubble_deep_field", "ihc", "brick", "grass", "gravel"),
)
"""``input=photos``: the ten packaged sample photos."""
METHODS = (*CAM_METHODS, *SALIENCY_METHODS)
SCORES = ("deletion", "insertion", "road_morf", "road_lerf")
"""The four areas, each the mean class probability along its curve."""
MOST_RANDOM_MAPS = 256
"""The most random maps per picture: their mean is settled long before (each costs as much as a method's curves)."""
MIN_SIDE = 48
"""The smallest picture side scored: at 32 px and below a CNN's last grid (stride 32) is a single cell, and a CAM
ranks no pixel above another."""
NEIGHBOURS = [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
"""ROAD's imputation weights: 1/6 for the four direct neighbours, 1/12 for the diagonal ones."""


def ranking(heat: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each pixel's place when the map is read from its highest value down, equal values in random order.
    Shape: ``(H, W) -> (H, W)`` of 0 … H·W-1."""
    flat = heat.flatten().cpu()
    shuffle = torch.randperm(len(flat), generator=generator)
    order = shuffle[torch.argsort(flat[shuffle], descending=True, stable=True)]
    place = torch.empty_like(order)
    place[order] = torch.arange(len(flat))
    return place.view(heat.shape)


def random_map(hw: tuple[int, int], grid: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """The reference map: uniform noise on the CAM layer's ``grid``, enlarged as a CAM is. Shape: ``(H, W)``."""
    noise = torch.rand(1, 1, *grid, generator=generator)
    return F.interpolate(noise, size=hw, mode="bilinear", align_corners=False)[0, 0]


def _probability(view: ModelView, pictures: torch.Tensor, target: int, batch: int) -> torch.Tensor:
    parts = [view(p.to(view.device), [LOGITS])[LOGITS].softmax(-1)[:, target] for p in pictures.split(batch)]
    return torch.cat(parts).cpu()


@torch.no_grad()
def curve(
    view: ModelView,
    start: torch.Tensor,
    end: torch.Tensor,
    place: torch.Tensor,
    target: int,
    points: int = 32,
    batch: int = 32,
) -> torch.Tensor:
    """The class probability as pixels change from ``start`` to ``end`` in the order of ``place``, at ``points`` + 1
    even fractions from none to all. Deletion: start = the picture, end = the training data's mean colour;
    insertion: start = a blurred copy, end = the picture. Shape: ``(1, 3, H, W)`` twice -> ``(points + 1,)``."""
    count = place.numel()
    taken = torch.round(torch.linspace(0, count, points + 1)).long().view(-1, 1, 1, 1)
    masks = place.view(1, 1, *place.shape) < taken
    pictures = torch.where(masks, end.cpu(), start.cpu())
    return _probability(view, pictures, target, batch)


def impute(picture: torch.Tensor, removed: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """ROAD's noisy linear imputation: every removed pixel becomes the weighted mean of its eight neighbours (removed
    neighbours solved for together), plus Gaussian noise of spread ``noise``. Shape: ``(1, 3, H, W)`` and a boolean
    ``(H, W)`` -> ``(1, 3, H, W)``."""
    h, w = removed.shape
    flags = removed.cpu().numpy().ravel()
    if not flags.any():
        return picture.clone()
    if flags.all():
        raise UserError("ROAD cannot fill a picture with every pixel removed; keep each fraction below 1")
    known = picture[0].cpu().numpy().reshape(3, -1).T
    number = np.full(h * w, -1)
    where = np.flatnonzero(flags)
    number[where] = np.arange(len(where))
    ys, xs = np.divmod(where, w)
    neighbours = []
    for dy, dx, weight in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        neighbours.append((np.where(inside, ny * w + nx, 0), inside * weight))
    total = sum(wt for _, wt in neighbours)
    rows, cols, values, rhs = [np.arange(len(where))], [np.arange(len(where))], [np.ones(len(where))], 0.0
    for index, wt in neighbours:
        share = wt / total
        hidden = flags[index] & (share > 0)
        rows.append(np.flatnonzero(hidden))
        cols.append(number[index[hidden]])
        values.append(-share[hidden])
        rhs = rhs + (share * ~flags[index])[:, None] * known[index]
    system = scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))))
    solved = scipy.sparse.linalg.spsolve(system.tocsc(), rhs).reshape(len(where), 3)
    filled = known.copy()
    filled[where] = solved
    out = torch.from_numpy(filled.T.reshape(1, 3, h, w)).to(picture.dtype)
    out[:, :, removed.cpu()] += noise * torch.randn(1, 3, len(where), generator=generator)
    return out.clamp(0, 1)


@torch.no_grad()
def road(
    view: ModelView,
    picture: torch.Tensor,
    place: torch.Tensor,
    target: int,
    fractions: list[float],
    most_first: bool,
    generator: torch.Generator,
    noise: float = 0.01,
) -> torch.Tensor:
    """The class probability after removing each fraction of the pixels, most relevant (``most_first``) or least
    relevant first, and imputing them (:func:`impute`). Shape: ``(len(fractions),)``."""
    count = place.numel()
    filled = []
    for fraction in fractions:
        n = min(round(fraction * count), count - 1)  # a tiny picture keeps at least one pixel to fill from
        removed = place < n if most_first else place >= count - n
        filled.append(impute(picture, removed, noise, generator))
    return _probability(view, torch.cat(filled), target, len(filled))


def attribution(view: ModelView, picture: torch.Tensor, target: int, method: str, cfg: DictConfig) -> torch.Tensor:
    """``method``'s map of class ``target``: a CAM at ``cfg.layer`` or a saliency map with the recipe's keys."""
    if method in CAM_METHODS:
        return cam(view, picture, target, str(cfg.layer), method, int(cfg.chunk))
    return saliency(
        view, picture, target, method, int(cfg.samples), float(cfg.sigma), None, 1, int(cfg.steps), str(cfg.baseline)
    )


def scores(
    view: ModelView, picture: torch.Tensor, heat: torch.Tensor, target: int, cfg: DictConfig, seed: int
) -> dict[str, object]:
    """The four areas and the curves of one map: deletion to the mean colour, insertion onto a blur, ROAD both
    ways."""
    generator = seeded(seed)
    place = ranking(heat, generator)
    x = picture.cpu()
    points, chunk, fractions = int(cfg.points), int(cfg.chunk), [float(f) for f in cfg.fractions]
    curves = {
        "deletion": curve(view, x, view.mean.cpu().expand_as(x), place, target, points, chunk),
        "insertion": curve(view, baseline_picture(x, "blur"), x, place, target, points, chunk),
        "road_morf": road(view, x, place, target, fractions, True, generator, float(cfg.noise)),
        "road_lerf": road(view, x, place, target, fractions, False, generator, float(cfg.noise)),
    }
    areas = {k: _area(v) if k in ("deletion", "insertion") else float(v.mean()) for k, v in curves.items()}
    return {**areas, "curves": {k: [round(float(p), 5) for p in v] for k, v in curves.items()}}


def _area(values: torch.Tensor) -> float:
    """The trapezoid area under a curve sampled at even steps from 0 to 1."""
    return float(torch.trapezoid(values, dx=1 / (len(values) - 1)))


def _pictures(cfg: DictConfig, side: tuple[int, int]) -> list[tuple[str, torch.Tensor]]:
    source = str(cfg.input) if cfg.get("input") else ""
    if not source:
        raise UserError("recipe=faithfulness needs pictures; pass input=PICTURE, input=FOLDER or input=photos")
    if source == "photos":
        names = list(PHOTOS)
    elif is_input_folder(source):
        folder = Path(source).expanduser()
        names = [str(p) for p in picture_files(folder)[0]]
        if not names:
            raise UserError(
                f"input folder '{source}' holds no pictures; put PNG or JPEG files in it or pass input=photos"
            )
    else:
        names = [source]
    out = []
    for name in names:
        picture = load_image(name)
        out.append((Path(name).name if name not in SAMPLES else name, resize_to(picture, side)))
    return out


def _methods(cfg: DictConfig) -> list[str]:
    if cfg.methods == "all":
        return list(METHODS)
    asked = list(cfg.methods) if isinstance(cfg.methods, ListConfig | list) else [cfg.methods]
    methods = [str(m) for m in asked]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(
            f"methods={list(asked)} names {', '.join(unknown) or 'no method'}; choose from {', '.join(METHODS)} "
            "or all (random maps are always scored beside them)"
        )
    return list(dict.fromkeys(methods))


@recipe(
    numbers={key: (int, 0, True) for key in ("points", "chunk", "samples", "steps", "random_maps")}
    | {"sigma": (float, 0, False), "noise": (float, 0, False)},
    lists={"fractions": (float, 0, True)},
    penalties=False,
    ignores={"tile_size": "", **views("steps")},
)
def faithfulness(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Score ``methods`` on every picture of ``input`` for the model's top class (or ``target``): deletion,
    insertion and ROAD areas beside random maps'; write the mean curves' plot, ``faithfulness.csv`` and the table."""
    methods = _methods(cfg)
    _check_keys(cfg, methods)
    view = load_view(cfg)
    pictures = _pictures(cfg, target_size(cfg.size))
    first = pictures[0][1]
    conv_layer(view, str(cfg.layer), (first.shape[-2], first.shape[-1]))
    with torch.no_grad():
        grid = view(first.to(view.device), [str(cfg.layer)])[str(cfg.layer)].shape[-2:]
    rows: list[dict[str, object]] = []
    bar = Progress("faithfulness ")
    bar.on_start(len(pictures) * (len(methods) + 1), lambda: first)
    for i, (name, picture) in enumerate(pictures):
        target = _target(cfg, view, picture)
        for j, method in enumerate(["random", *methods]):
            t0, seconds = time.perf_counter(), 0.0
            if method == "random":
                found = _random_scores(view, picture, target, (grid[0], grid[1]), cfg, cfg.seed + i)
            else:
                heat = attribution(view, picture, target, method, cfg)
                seconds = time.perf_counter() - t0  # the map's own cost, not its scoring's
                found = scores(view, picture, heat, target, cfg, cfg.seed + i)
            rows.append(
                {"picture": name, "class": view.categories[target], "method": method, "seconds": seconds, **found}
            )
            bar.on_step(i * (len(methods) + 1) + j, None, lambda: first)
    bar.on_end(len(rows), lambda: first)
    table = summary(rows, ["random", *methods])
    write_text(folder / "faithfulness.csv", _csv(rows))
    plot = curves_plot(rows, ["random", *methods], [float(f) for f in cfg.fractions])
    return write_view(cfg, folder, recipe, plot, None, pictures=len(pictures), methods=table, layer=str(cfg.layer))


def _check_keys(cfg: DictConfig, methods: list[str]) -> None:
    """One line for a key that would fail or mean nothing, before any picture is scored."""
    if not cfg.fractions or any(not 0 < float(f) < 1 for f in cfg.fractions):
        raise UserError(f"fractions={list(cfg.fractions)} is not valid; use fractions between 0 and 1, such as 0.5")
    h, w = target_size(cfg.size)
    pixels = h * w
    if not 2 <= int(cfg.points) <= pixels:
        raise UserError(
            f"points={cfg.points} is not valid; a curve takes from 2 points to one per pixel ({pixels}); "
            "32 is the default"
        )
    if int(cfg.random_maps) > MOST_RANDOM_MAPS:
        raise UserError(
            f"random_maps={cfg.random_maps} is more than needed; use at most {MOST_RANDOM_MAPS} (8 is the default)"
        )
    if float(cfg.noise) > 1:
        raise UserError(f"noise={cfg.noise} is not valid; ROAD's noise is in pixel units from 0 to 1, such as 0.01")
    if min(target_size(cfg.size)) < MIN_SIDE:
        raise UserError(f"size={cfg.size} is too small to score; use pictures of {MIN_SIDE} px a side or more")
    if "integrated" in methods and str(cfg.baseline) not in BASELINES:
        raise UserError(f"baseline={cfg.baseline} is not known; use one of {', '.join(BASELINES)}")


def _random_scores(
    view: ModelView, picture: torch.Tensor, target: int, grid: tuple[int, int], cfg: DictConfig, seed: int
) -> dict[str, object]:
    """The reference: the areas and curves of ``random_maps`` random maps, averaged (one map's areas scatter widely)."""
    hw = (picture.shape[-2], picture.shape[-1])
    found = [
        scores(view, picture, random_map(hw, grid, seeded(seed * 1000, k)), target, cfg, seed)
        for k in range(int(cfg.random_maps))
    ]
    areas = {key: float(np.mean([f[key] for f in found])) for key in SCORES}  # type: ignore[misc]
    curves = {key: np.mean([f["curves"][key] for f in found], axis=0).round(5).tolist() for key in SCORES}  # type: ignore[index]
    return {**areas, "curves": curves}


def _target(cfg: DictConfig, view: ModelView, picture: torch.Tensor) -> int:
    text = str(cfg.target).strip().lower()
    if text.startswith("top") and text != "top1":
        raise UserError(
            f"target={cfg.target}: faithfulness scores one class per picture; use target=top1 (each picture's top "
            "class), a class name or an index"
        )
    if text != "top1":
        return resolve_class(cfg.target, view.categories)
    with torch.no_grad():
        return int(view(picture.to(view.device), [LOGITS])[LOGITS][0].argmax())


def summary(rows: list[dict[str, object]], methods: list[str]) -> dict[str, dict[str, object]]:
    """Per method: each area's mean over the pictures, how often its deletion area is below the random maps' mean on
    the same picture, and the mean seconds per map."""
    table: dict[str, dict[str, object]] = {}
    reference = {r["picture"]: r["deletion"] for r in rows if r["method"] == "random"}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        entry: dict[str, object] = {k: round(float(np.mean([r[k] for r in mine])), 4) for k in SCORES}  # type: ignore[misc]
        if method != "random":
            below = sum(float(r["deletion"]) < float(reference[r["picture"]]) for r in mine)  # type: ignore[arg-type]
            entry["deletion_below_random"] = f"{below}/{len(mine)}"
        entry["seconds"] = round(float(np.mean([r["seconds"] for r in mine])), 3)  # type: ignore[misc]
        table[method] = entry
    return table


def _csv(rows: list[dict[str, object]]) -> str:
    head = ["picture", "class", "method", *SCORES, "seconds"]
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")  # quotes a name holding a comma or a quote as CSV readers expect
    table.writerow(head)
    for r in rows:
        table.writerow([str(r[k]) if k in ("picture", "class", "method") else f"{float(r[k]):.5f}" for k in head])  # type: ignore[arg-type]
    return text.getvalue()


def curves_plot(rows: list[dict[str, object]], methods: list[str], fractions: list[float]) -> Image.Image:
    """Four panels (deletion, insertion, ROAD MoRF and LeRF), each method's curve averaged over the pictures, its
    area in the legend; the random map dashed black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), dpi=100)
    titles = {"deletion": "deletion (low is faithful)", "insertion": "insertion (high is faithful)"}
    titles |= {"road_morf": "ROAD, most relevant removed first (low)", "road_lerf": "ROAD, least relevant first (high)"}
    tab20 = plt.get_cmap("tab20")
    colours = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # each pair's strong colour, then the light
    for ax, key in zip(axes.flat, SCORES, strict=True):
        for k, method in enumerate(methods):
            mine = [r for r in rows if r["method"] == method]
            mean = np.mean([r["curves"][key] for r in mine], axis=0)  # type: ignore[index]
            xs = np.linspace(0, 1, len(mean)) if key in ("deletion", "insertion") else np.array(fractions)
            area = np.mean([r[key] for r in mine])  # type: ignore[misc]
            style = {"color": "black", "ls": "--"} if method == "random" else {"color": colours[(k - 1) % 20]}
            ax.plot(xs, mean, label=f"{method} {area:.3f}", lw=1.4, **style)
        ax.set_title(titles[key])
        ax.set_xlabel("fraction of pixels changed")
        ax.set_ylabel("class probability")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return figure_picture(fig)
