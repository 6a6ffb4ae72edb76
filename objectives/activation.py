"""Objectives on hidden activations: channel, neuron, DeepDream, direction and diversity."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engine.errors import UserError, digits
from objectives.base import Activations, Objective, batch_slice

__all__ = [
    "MOST_CHANNELS",
    "channel",
    "channel_list",
    "channels",
    "deepdream",
    "direction",
    "diversity",
    "endpoint",
    "guided_dream",
    "inner_positions",
    "interpolation",
    "mean_cosine",
    "neuron",
]


def _conv_act(acts: Activations, layer: str, channel: int | None = None) -> torch.Tensor:
    t = acts[layer]
    t = t if t.dim() == 4 else t[..., None, None]
    if channel is not None and not 0 <= channel < t.shape[1]:
        raise UserError(
            f"channel {channel} is out of range for layer {layer}, which has {t.shape[1]} channels; "
            f"pick a channel from 0 to {t.shape[1] - 1}"
        )
    return t


MOST_CHANNELS = 256
"""The most channels one atlas or :func:`channels` objective takes: each is one picture of the batch."""


def channel(layer: str, channel: int, batch: int | None = None) -> Objective:
    """Maximize the mean of one channel over all positions (Olah et al., 2017).

    Shape: ``acts[layer]`` is ``(B, C, H, W)``; the loss is ``-Σ_b mean_{h,w} acts[b, channel]``.
    """

    def fn(acts: Activations) -> torch.Tensor:
        t = batch_slice(_conv_act(acts, layer, channel), batch)
        return -t[:, channel].mean(dim=(-2, -1)).sum()

    return Objective(fn, [layer], f"channel({layer}:{channel})")


def channel_list(spec: int | str | Sequence[int], most: int = MOST_CHANNELS) -> list[int]:
    """Channels from ``7``, ``"0:32"`` (a Python range, end excluded) or a list ``[1, 5, 9]``; at most ``most``
    (one picture each, optimized together)."""
    picked: Sequence[int]
    if isinstance(spec, str) and ":" in spec:
        parts = spec.split(":")
        try:
            picked = range(*(int(p) for p in parts))  # its length known before any list is made
        except (TypeError, ValueError):
            picked = []
    elif isinstance(spec, int | str):
        picked = [int(spec)] if digits(str(spec).strip()) else []
    else:
        picked = [int(c) for c in spec] if all(digits(str(c)) for c in spec) else []
    if not picked:
        raise UserError(f"channels={spec} picks no channels; use channels=0:16, channels=[1,5,9] or channels=7")
    try:
        count = len(picked)
    except OverflowError:  # a range longer than the largest index
        count = sys.maxsize
    if count > most:
        raise UserError(f"channels={spec} picks {count} channels; pick at most {most} per sheet")
    return list(picked)


def channels(layer: str, channels: int | str | Sequence[int]) -> Objective:
    """Picture ``i`` of the batch maximizes the ``i``-th of ``channels`` (see :func:`channel_list`): a layer atlas."""
    picked = channel_list(channels)
    total = Objective.sum(channel(layer, c, batch=i) for i, c in enumerate(picked))
    return Objective(total, total.layers, f"channels({layer}: {channels})")


def neuron(layer: str, channel: int, x: int | None = None, y: int | None = None, batch: int | None = None) -> Objective:
    """Maximize one channel at one position, the centre unless ``x``/``y`` are given (Erhan et al., 2009).

    Shape: ``acts[layer]`` is ``(B, C, H, W)``.
    """

    def fn(acts: Activations) -> torch.Tensor:
        t = batch_slice(_conv_act(acts, layer, channel), batch)
        h, w = t.shape[-2:]
        row = h // 2 if y is None else y
        col = w // 2 if x is None else x
        if not (0 <= row < h and 0 <= col < w):
            raise UserError(
                f"position x={col}, y={row} is outside layer {layer}, which is {w} wide and {h} high at this size; "
                f"use x=0 to {w - 1} and y=0 to {h - 1}, or leave them out for the centre"
            )
        return -t[:, channel, row, col].sum()

    return Objective(
        fn, [layer], f"neuron({layer}:{channel} at {'centre' if x is None else x},{'centre' if y is None else y})"
    )


def endpoint(spec: int | str, layer: str, batch: int | None = None) -> Objective:
    """One end of an interpolation: ``7`` is channel 7 of ``layer``, ``features.14:42`` channel 42 of another layer,
    ``class:flamingo`` (or ``class:130``) a class logit."""
    text = str(spec).strip()
    if digits(text):
        return channel(layer, int(text), batch=batch)
    head, _, tail = text.rpartition(":")
    if head == "class" and tail:
        from objectives.classes import class_logit

        return class_logit(tail, batch=batch)
    if head and digits(tail):
        return channel(head, int(tail), batch=batch)
    raise UserError(
        f"'{text}' is not an objective to interpolate; give a channel of layer= (7), a channel of another layer "
        "(features.14:42) or a class (class:flamingo)"
    )


def interpolation(layer: str, start: int | str, end: int | str, frames: int) -> Objective:
    """Picture ``i`` of a batch of ``frames`` maximizes ``(1 - t) · start + t · end``, with ``t = i / (frames - 1)``:
    a blend from one objective to another (Olah et al., 2017, "interpolation"). Each end is a channel of ``layer``
    (``7``), a channel of another layer (``features.14:42``) or a class (``class:flamingo``); see :func:`endpoint`.
    """
    if frames < 2:
        raise UserError(f"frames={frames} is too few to interpolate; use frames=2 or more")
    steps = [i / (frames - 1) for i in range(frames)]
    total = Objective.sum(
        (1 - t) * endpoint(start, layer, batch=i) + t * endpoint(end, layer, batch=i) for i, t in enumerate(steps)
    )
    first, last = endpoint(start, layer).name, endpoint(end, layer).name
    return Objective(total.fn, total.layers, f"interpolation({first} -> {last}, {frames} frames)")


def deepdream(layer: str, batch: int | None = None) -> Objective:
    """Maximize the mean squared activation of a whole layer (Mordvintsev et al., 2015).

    Shape: ``acts[layer]`` is ``(B, C, H, W)``.
    """

    def fn(acts: Activations) -> torch.Tensor:
        t = batch_slice(acts[layer], batch)
        return -t.pow(2).flatten(1).mean(dim=1).sum()

    return Objective(fn, [layer], f"deepdream({layer})")


def inner_positions(x: torch.Tensor) -> torch.Tensor:
    """A feature map without its outermost ring of positions, which see the convolutions' zero padding (kept whole
    when it is 4 positions or fewer a side). A guided dream matches and pulls only these: pulled toward the guide,
    the ring's odd vectors print a band of coloured grain along the picture's edges and over its flat parts. (A
    transformer's token grid has no padding; there it only leaves out the border tokens.)
    Shape: ``(..., H, W) -> (..., H - 2, W - 2)``."""
    return x[..., 1:-1, 1:-1] if min(x.shape[-2:]) > 4 else x


GUIDE_PULLS = ("along", "toward")
"""How a guided dream moves each position: along its matched guide vector, or toward it."""


def guided_dream(
    layer: str, guide: torch.Tensor, batch: int | None = None, pull: str = "toward", gain: float = 3.0
) -> Objective:
    """DeepDream toward a guide picture: each position of the layer is matched with the guide's feature vector that
    points most nearly its way (largest cosine), so the guide's motifs grow where the picture already half shows them.

    ``pull="toward"``: half the mean squared distance to ``gain`` times the match, so each position's features move
    to it, amplified as a dream amplifies (``gain=1``: to the match itself, the guide's own statistics).
    ``pull="along"``: minus the mean dot product with the match; its gradient at each position is the matched guide
    vector, as the DeepDream notebook's guide objective has it (which matched by the dot product: a few guide vectors
    of large norm then win everywhere). ``gain`` does not change it. Only :func:`inner_positions` are matched.

    Shape: ``guide`` is ``(C, M)``, the guide picture's ``M`` feature vectors at ``layer``; ``acts[layer]`` is
    ``(B, C, H, W)``.
    """
    if guide.dim() != 2 or guide.shape[1] == 0:
        raise ValueError(f"guide features must be (C, M) with M > 0, got {tuple(guide.shape)}")
    if pull not in GUIDE_PULLS:
        raise UserError(f"guide_pull={pull} is not known; use guide_pull=along or guide_pull=toward")
    vectors = guide.detach().float()
    units = F.normalize(vectors, dim=0)

    def fn(acts: Activations) -> torch.Tensor:
        x = inner_positions(batch_slice(acts[layer], batch)).flatten(2)  # (B, C, N)
        g = vectors.to(x)
        with torch.no_grad():
            cosines = torch.einsum("bcn,cm->bnm", F.normalize(x, dim=1), units.to(x))
            best = cosines.argmax(dim=-1)  # (B, N): the guide vector each position matches
        matched = g.t()[best].transpose(1, 2)  # (B, C, N)
        if pull == "toward":
            return 0.5 * (x - gain * matched).square().sum(dim=1).mean(dim=1).sum()
        return -(x * matched).sum(dim=1).mean(dim=1).sum()

    name = f"{pull}, gain {gain:g}" if pull == "toward" else pull
    return Objective(fn, [layer], f"guided_dream({layer}, {vectors.shape[1]} guide vectors, {name})")


def direction(layer: str, vector: Sequence[float] | torch.Tensor, batch: int | None = None) -> Objective:
    """Maximize the dot product with a direction in the layer's channel space, averaged over positions.

    Shape: ``vector`` is ``(C,)``; ``acts[layer]`` is ``(B, C, H, W)``.
    """
    vec = torch.as_tensor(vector, dtype=torch.float32)
    vec = vec / vec.norm().clamp_min(1e-8)

    def fn(acts: Activations) -> torch.Tensor:
        t = batch_slice(_conv_act(acts, layer), batch)
        v = vec.to(t).view(1, -1, 1, 1)
        return -(t * v).sum(dim=1).mean(dim=(-2, -1)).sum()

    return Objective(fn, [layer], f"direction({layer}, {vec.numel()} channels)")


def diversity(layer: str) -> Objective:
    """Penalize pictures of a batch whose Gram matrices point the same way (Olah et al., 2017, "Diversity").

    The loss is the mean cosine similarity between the flattened Gram matrices of every pair of pictures; a batch
    of one has nothing to compare and gives zero. Shape: ``acts[layer]`` is ``(B, C, H, W)``.
    """

    def fn(acts: Activations) -> torch.Tensor:
        t = _conv_act(acts, layer)
        b = t.shape[0]
        if b < 2:
            return t.sum() * 0.0
        flat = t.flatten(2)
        return mean_cosine((flat @ flat.transpose(1, 2)).flatten(1))

    return Objective(fn, [layer], f"diversity({layer})")


def mean_cosine(rows: torch.Tensor) -> torch.Tensor:
    """The mean cosine similarity over every pair of rows (differentiable). Shape: ``(N, D) -> ()``, N ≥ 2."""
    unit = F.normalize(rows.float(), dim=1)
    sim = unit @ unit.T
    n = len(rows)
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def diversified(objective: Objective, weight: float = 0.0, layer: str = "features.10") -> Objective:
    """``objective`` plus ``weight`` × :func:`diversity` at ``layer``, so the pictures of a batch (``batch=4``) find
    different ways to satisfy it (Olah et al., 2017); at weight 0 the objective is returned as it is."""
    return objective + float(weight) * diversity(layer) if weight else objective
