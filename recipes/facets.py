"""Multi-faceted feature visualization (Nguyen et al., 2016): the different kinds of picture that drive one class
(or one channel), one visualization for each.

The pictures of ``folder`` (default: crops of the packaged samples) that show the class (it is among their top 5;
for a channel, every picture), at most ``pool`` of them, those of highest probability (or mean activation) first,
are clustered by k-means on the classifier's features into ``k`` groups. Each facet starts from its group's mean
picture, as Nguyen et al. start theirs, and the k are optimized together with the class objective and the usual
regularizers, the batch-diversity term of Olah et al. (2017) pushing them apart (``diversity=``) and, for a class,
its log-probability beside its logit (``log_prob=``) so that pushed apart they stay the class rather than its
neighbours; ``stop_at`` ends them once the model is that sure of the class on random crops of every facet.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict
from PIL import Image

from engine.checks import seeded
from engine.errors import UserError
from engine.export import contact_sheet
from engine.images import checkerboard, composite, resize_to
from engine.measures import random_views
from engine.models import LOGITS, ModelView
from engine.octaves import octave_sizes
from engine.results import RunResult, finish
from engine.runner import build_objective, load_view, optimize_octaves, recipe
from objectives.activation import channel, diversified, mean_cosine
from objectives.base import Objective
from objectives.classes import class_logit, resolve_class
from recipes.folders import channel_map, load_folder, penultimate, square_side
from recipes.visualize import class_goal, goal_met

__all__ = ["class_on_crops", "facets", "kmeans"]

CLASS_DIVERSITY = 1600.0
"""A class's facets are pushed apart with this diversity weight unless ``diversity=`` says otherwise: without it
they end nearly as alike as pictures from different seeds (mean cosine 0.95-0.97), at it 0.82-0.86."""
CLASS_LOG_PROB = 30.0
"""A class's facets add this weight times the class's log-probability to its logit unless ``log_prob=`` says
otherwise: pushed apart on the logit alone, a hard class's facets drift toward its neighbours (tabby's to tiger cat;
crop probability 0.28-0.85), with it they stay the class (0.77-0.93)."""
SHOWN, VIEWS, MIN_SIDE = 3, 16, 32
"""Each facet's row shows its cluster's SHOWN pictures nearest to it; the class is checked on VIEWS random crops;
facets are at least MIN_SIDE pixels a side (the classifier's last grid at one cell)."""


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator, rounds: int = 50) -> torch.Tensor:
    """Cluster ``points`` into ``k`` groups (k-means++ start, then Lloyd's rounds); with ``k`` ≤ N points every group
    keeps at least one. Shape: ``(N, D) -> (N,)`` of 0 … k-1."""
    n = len(points)
    centres = points[torch.randint(n, (1,), generator=generator)]
    while len(centres) < k:
        near = torch.cdist(points, centres).min(dim=1).values.square()
        weights = near if float(near.sum()) > 0 else torch.ones(n)
        centres = torch.cat([centres, points[torch.multinomial(weights, 1, generator=generator)]])
    labels = _filled(torch.cdist(points, centres).argmin(dim=1), points, centres, k)
    for _ in range(rounds):
        centres = torch.stack([points[labels == j].mean(0) for j in range(k)])
        moved = _filled(torch.cdist(points, centres).argmin(dim=1), points, centres, k)
        if torch.equal(moved, labels):
            break
        labels = moved
    return labels


def _filled(labels: torch.Tensor, points: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    """Give each empty group the point farthest from its centre among those whose group has others."""
    for j in range(k):
        if (labels == j).any():
            continue
        spare = torch.bincount(labels, minlength=k)[labels] > 1
        far = (points - centres[labels]).norm(dim=1).masked_fill(~spare, -1.0)
        labels[far.argmax()] = j
    return labels


def _refuse(cfg: DictConfig) -> None:
    """One line for every key facets would ignore or could not use, before the model loads."""
    given = {key: cfg.get(key) for key in ("target", "layer", "channel", "input", "stop_at", "log_prob")}
    if given["input"]:
        raise UserError(
            f"recipe=facets starts from folder='s pictures, so input={given['input']} would be ignored; drop input="
        )
    if cfg.init != "noise":
        raise UserError(
            f"init={cfg.init} would be ignored: facets start from their clusters' mean pictures; drop init="
        )
    if square_side(cfg) < MIN_SIDE:
        raise UserError(f"size={cfg.size} is too small for facets; use size={MIN_SIDE} or more (224 is the default)")
    if int(cfg.pool) < int(cfg.k):
        raise UserError(f"pool={cfg.pool} is smaller than k={cfg.k}; cluster at least as many pictures as facets")
    if int(cfg.batch) != int(cfg.k):
        raise UserError(
            f"recipe=facets makes one picture per facet, so batch={cfg.batch} would be ignored; set k= instead"
        )
    if given["channel"] is None:
        if given["layer"]:
            raise UserError(
                f"layer={given['layer']} picks the layer of a channel's facets; add channel=N (or drop layer=)"
            )
        if given["target"] is None:
            raise UserError("recipe=facets needs an aim: target=CLASS (a class's facets) or layer=LAYER channel=N")
        return
    if not given["layer"]:
        raise UserError("channel= needs its layer; pass layer=LAYER channel=N (recipe=layers lists them)")
    if given["target"] is not None:
        raise UserError(
            f"target={given['target']} names a class; a channel's facets (channel=) take none, so drop target="
        )
    for key in ("stop_at", "log_prob"):
        if given[key] is not None:
            raise UserError(f"{key}= is about a class's probability; leave it out for a channel's facets")


def _aim(cfg: DictConfig, view: ModelView) -> tuple[Objective, str, int | None]:
    """The class (or channel) objective, its label, and the class index (None for a channel)."""
    if cfg.get("channel") is not None:
        view.check_layers([str(cfg.layer)])
        return channel(str(cfg.layer), int(cfg.channel)), f"{cfg.layer}:{cfg.channel}", None
    index = resolve_class(cfg.target, view.categories)
    return class_logit(index, view.categories, log_prob=_log_prob(cfg)), view.categories[index], index


def _log_prob(cfg: DictConfig) -> float:
    """A class's ``log_prob`` weight: as given, else :data:`CLASS_LOG_PROB`."""
    return CLASS_LOG_PROB if cfg.log_prob is None else float(cfg.log_prob)


@torch.no_grad()
def _drive(
    view: ModelView, pictures: torch.Tensor, cfg: DictConfig, index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each picture drives the aim (the class's probability, or the channel's mean activation) and whether
    it shows it (the class among the picture's top 5; every picture, for a channel)."""
    scores, shown = [], []
    for chunk in pictures.split(32):
        x = chunk.to(view.device)
        if index is not None:
            p = view(x, [LOGITS])[LOGITS].softmax(-1).cpu()
            scores.append(p[:, index])
            shown.append((p.topk(5, dim=1).indices == index).any(dim=1))
        else:
            maps = channel_map(view(x, [str(cfg.layer)])[str(cfg.layer)], str(cfg.layer), int(cfg.channel))
            scores.append(maps.mean(dim=(-2, -1)).cpu())
            shown.append(torch.ones(len(x), dtype=torch.bool))
    return torch.cat(scores), torch.cat(shown)


@dataclass
class _Clusters:
    """The folder's pictures, the indices of each facet's cluster among them, and the classifier's features of every
    clustered picture (by index), read once."""

    names: list[str]
    pictures: torch.Tensor
    groups: list[list[int]]
    features: dict[int, torch.Tensor]

    def of(self, group: list[int]) -> torch.Tensor:
        """The features of one cluster's pictures. Shape: ``(len(group), D)``."""
        return torch.stack([self.features[i] for i in group])


def _groups(cfg: DictConfig, view: ModelView, index: int | None, label: str) -> _Clusters:
    """The folder's pictures and, for each facet, its cluster among the pictures that show the class (at most
    ``pool``, those that drive it most)."""
    k, pool = int(cfg.k), int(cfg.pool)
    names, pictures, skipped = load_folder(cfg.folder, square_side(cfg))
    if skipped:
        print(f"dreamloom: skipped {skipped} files in {cfg.folder} that are not pictures", file=sys.stderr)
    need = f"{k} facets need {k}" if k > 1 else "a facet needs one"
    if index is None and len(names) < k:
        raise UserError(
            f"folder '{cfg.folder}' holds {len(names)} pictures; {need}: use k={len(names)} or fewer, "
            "or a folder with more pictures"
        )
    scores, shown = _drive(view, pictures, cfg, index)
    if int(shown.sum()) == 0:
        raise UserError(
            f"none of the {len(names)} pictures in folder '{cfg.folder}' shows {label} among its top 5 classes; "
            f"give a folder of pictures of it with folder=PATH (or draw one picture with recipe=class target={label})"
        )
    if int(shown.sum()) < k:
        raise UserError(
            f"{int(shown.sum())} of the {len(names)} pictures in folder '{cfg.folder}' show {label} among their top 5 "
            f"classes; {need}: use k={int(shown.sum())} or fewer, or a folder with more of them"
        )
    order = scores.argsort(descending=True)
    top = order[shown[order]][:pool]
    features = penultimate(view, pictures[top])
    labels = kmeans(F.normalize(features, dim=1), k, seeded(cfg.seed))
    groups = sorted([top[labels == j].tolist() for j in range(k)], key=len, reverse=True)
    return _Clusters(names, pictures, groups, dict(zip(top.tolist(), features, strict=True)))


@recipe(
    paths=("folder",),
    numbers={
        "k": (int, 1, False),
        "pool": (int, 1, False),
        "channel": (int, 0, False),
        "diversity": (float, 0, False),
        "log_prob": (float, 0, False),
    },
)
def facets(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Visualize the ``k`` facets of a class (or channel): cluster the pictures that drive it, start a picture from
    each cluster's mean and optimize them together; write the facets beside their clusters' nearest pictures."""
    _refuse(cfg)
    t0 = time.perf_counter()
    view = load_view(cfg)
    aim, label, index = _aim(cfg, view)
    apart = _diversity(cfg, view, index)
    with open_dict(cfg):  # the weights as used, so the stored config reruns the same picture whatever the defaults
        cfg.diversity, cfg.log_prob = apart, None if index is None else _log_prob(cfg)
    found = _groups(cfg, view, index, label)
    starts = torch.cat([found.pictures[g].mean(0, keepdim=True) for g in found.groups])
    objective = build_objective(cfg, view, diversified(aim, apart, str(cfg.diversity_layer)))
    side = square_side(cfg)
    sizes = octave_sizes((side, side), int(cfg.octaves), float(cfg.octave_scale))
    goal = class_goal(cfg, view) if cfg.get("stop_at") is not None else None
    out = optimize_octaves(
        cfg, view, sizes, lambda hw: objective, first=starts.to(view.device), folder=folder, goal=goal
    )
    seen = composite(out.picture.detach().cpu(), checkerboard(side, side))
    seen_features = penultimate(view, seen)
    checks = {} if index is None else class_on_crops(view, seen, index, int(cfg.seed) + 1)
    extra: dict[str, Any] = {"aim": label, "clusters": [[found.names[i] for i in g] for g in found.groups]}
    extra |= goal_met(cfg, goal)
    extra |= {**_similarities(found, seen_features), **checks, "seconds_total": round(time.perf_counter() - t0, 2)}
    sheet = _sheet(found, seen, seen_features, checks)
    return finish(cfg, folder, recipe, view, out, objective.name, sheet=sheet, **extra)


def _diversity(cfg: DictConfig, view: ModelView, index: int | None) -> float:
    """The diversity weight: ``diversity=`` when given (its layer checked now, before the folder is read); else
    :data:`CLASS_DIVERSITY` for a class on a model that has ``diversity_layer``, and 0 otherwise."""
    layer = str(cfg.diversity_layer)
    if cfg.diversity is not None:
        if float(cfg.diversity) > 0:
            view.check_layers([layer])
        return float(cfg.diversity)
    try:
        view.check_layers([layer])
    except UserError:
        if layer != "features.10":  # a layer the user named: say it is not there
            raise
        return 0.0  # a model without the default layer: facets from their clusters alone, as diversity=0 gives
    return CLASS_DIVERSITY if index is not None else 0.0


def _similarities(found: _Clusters, seen_features: torch.Tensor) -> dict[str, float | None]:
    """The facets' mean pairwise cosine similarity of the classifier's features, and that of their clusters' mean
    features (how different the kinds of picture themselves are)."""
    if len(found.groups) < 2:
        return {"similarity": None, "cluster_similarity": None}
    means = torch.stack([found.of(g).mean(0) for g in found.groups])
    return {
        "similarity": round(float(mean_cosine(seen_features)), 4),
        "cluster_similarity": round(float(mean_cosine(means)), 4),
    }


@torch.no_grad()
def class_on_crops(view: ModelView, pictures: torch.Tensor, index: int, seed: int) -> dict[str, list[float]]:
    """Per picture, the class's mean probability on :data:`VIEWS` random crops (``crop_probability``) and the share
    of those crops where it is at least 0.9 (``crops_sure``); the crops drawn from ``seed``."""
    generator = seeded(seed)
    means, sure = [], []
    for one in pictures:
        views = random_views(one[None], VIEWS, generator, side=min(224, *one.shape[-2:]))
        p = view(views.to(view.device), [LOGITS])[LOGITS].softmax(-1)[:, index].cpu()
        means.append(round(float(p.mean()), 4))
        sure.append(round(float((p >= 0.9).float().mean()), 4))
    return {"crop_probability": means, "crops_sure": sure}


def _sheet(
    found: _Clusters, seen: torch.Tensor, seen_features: torch.Tensor, checks: dict[str, list[float]]
) -> Image.Image:
    """One row per facet: the facet, then the pictures of its cluster nearest to it (by the classifier's features)."""
    facet_features = F.normalize(seen_features, dim=1)
    tiles, labels = [], []
    side, shown = seen.shape[-1], min(SHOWN, max(len(g) for g in found.groups))
    for j, group in enumerate(found.groups):
        own = F.normalize(found.of(group), dim=1)
        nearest = [group[i] for i in (own @ facet_features[j]).argsort(descending=True)[:shown].tolist()]
        score = f" p={checks['crop_probability'][j]:.2f}" if checks else ""
        tiles.append(seen[j : j + 1])
        labels.append(f"facet {j + 1}{score}")
        for i in [*nearest, *[None] * (shown - len(nearest))]:
            blank = torch.ones(1, 3, side, side)
            tiles.append(blank if i is None else resize_to(found.pictures[i : i + 1], (side, side)))
            labels.append("" if i is None else found.names[i])
    return contact_sheet(torch.cat(tiles), shown + 1, labels=labels)
