"""Regularizers that act on the picture itself between optimizer steps, not through the loss (Yosinski et al., 2015,
"Understanding Neural Networks Through Deep Visualization"; Nguyen et al., 2016, "Multifaceted Feature
Visualization"): every few steps the picture is blurred, decayed toward grey, or has its weakest pixels set to grey,
and the region being optimized may start at the centre and grow; or it is flattened into flat colours with sharp edges
(:mod:`regularizers.flat`), as a flat graphic style asks.

They work on the pixels of ``param=pixel``, whose value 0 is mid-grey (the sigmoid's middle), as the mean-subtracted
picture's 0 is in the papers. Each key is ``[every, strength]``: the period in steps, then how strong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from engine.callbacks import Callback
from engine.errors import UserError
from engine.params import ImageFn, from_rgb
from regularizers.flat import flatten
from regularizers.transforms import GaussianBlur

__all__ = ["KEYS", "Periodic", "periodic"]

KEYS = {
    "blur": (0.0, 10.0),
    "decay": (0.0, 1.0),
    "clip_norm": (0.0, 100.0),
    "clip_contribution": (0.0, 100.0),
    "flatten": (0.0, 1.0),
}
"""The ``[every, strength]`` keys and the open range each strength lies in: blur's σ in pixels, the fraction the
picture decays by, the percentile of pixels set to grey by norm or by contribution, and the share of pixels left
flat (flatten also acts at the last step, so the result is flat)."""


def _pair(key: str, value: Any) -> tuple[int, float] | None:
    """``[every, strength]`` of one key, checked; None when the key is off (null)."""
    if value is None:
        return None
    low, high = KEYS[key]
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    every, strength = (value[0], value[1]) if ok else (None, None)
    if not (isinstance(every, int) and not isinstance(every, bool) and 1 <= every <= 10_000):
        ok = False
    if not (isinstance(strength, int | float) and not isinstance(strength, bool) and low < strength < high):
        ok = False
    if not ok:
        what, other = ("share", "; style also takes auto") if key == "flatten" else ("strength", "")
        raise UserError(
            f"{key}={value} is not valid; {key} is [every, {what}]: a whole number of steps from 1, then a number "
            f"above {low:g} and below {high:g} (or null: off{other})"
        )
    return int(every), float(strength)  # type: ignore[arg-type]


class Periodic(Callback):
    """The periodic regularizers on one pixel picture (``params[0]`` of ``param=pixel``), applied after each step.

    Args:
        picture: the optimized pixels ``(B, 3, H, W)``, changed in place.
        steps: the loop's length (for ``centre``).
        blur, decay, clip_norm, clip_contribution, flatten: ``(every, strength)`` or None (see :data:`KEYS`).
        centre: the share of the steps over which the optimized region grows from the picture's central half to all
            of it (outside the region the picture stays as it started); None: all of it from the start.
        decorrelate: the pixels are in decorrelated colour (``param.decorrelate``; flatten works on the colours).
    """

    def __init__(
        self,
        picture: torch.Tensor,
        steps: int,
        blur: tuple[int, float] | None = None,
        decay: tuple[int, float] | None = None,
        clip_norm: tuple[int, float] | None = None,
        clip_contribution: tuple[int, float] | None = None,
        centre: float | None = None,
        flatten: tuple[int, float] | None = None,
        decorrelate: bool = False,
    ) -> None:
        self.picture, self.steps, self.centre = picture, steps, centre
        self.blur, self.decay, self.clip_norm, self.clip_contribution = blur, decay, clip_norm, clip_contribution
        self.flatten, self.decorrelate = flatten, decorrelate
        self.start = picture.detach().clone() if centre else None

    @staticmethod
    def _due(rule: tuple[int, float] | None, done: int) -> float | None:
        return rule[1] if rule is not None and done % rule[0] == 0 else None

    @staticmethod
    def _grey_below(picture: torch.Tensor, score: torch.Tensor, percentile: float) -> None:
        """Set to 0 (grey) the pixels whose ``score`` ``(B, 1, H, W)`` is below its ``percentile`` in their picture."""
        cut = torch.quantile(score.flatten(1), percentile / 100, dim=1)[:, None, None, None]
        picture.mul_((score >= cut).to(picture))

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        p, done = self.picture, step + 1
        with torch.no_grad():
            if (amount := self._due(self.decay, done)) is not None:
                p.mul_(1 - amount)
            if (sigma := self._due(self.blur, done)) is not None:
                p.copy_(GaussianBlur(sigma)(p))
            if (percentile := self._due(self.clip_norm, done)) is not None:
                self._grey_below(p, p.norm(dim=1, keepdim=True), percentile)
            if (percentile := self._due(self.clip_contribution, done)) is not None and p.grad is not None:
                self._grey_below(p, (p * p.grad).abs().sum(dim=1, keepdim=True), percentile)
            if self.start is not None and self.centre:
                self._hold_outside(min(1.0, done / (self.centre * self.steps)))
            if self.flatten is not None and (done % self.flatten[0] == 0 or done == self.steps):
                self._flatten(image_fn)

    def on_end(self, done: int, image_fn: ImageFn) -> None:
        """A loop stopped early (a goal reached) still ends on a flattened picture."""
        if self.flatten is not None and done % self.flatten[0] != 0 and done != self.steps:
            with torch.no_grad():
                self._flatten(image_fn)

    def _flatten(self, image_fn: ImageFn) -> None:
        """The picture's colours smoothed to ``flatten``'s share of flat pixels, written back to its pixels."""
        assert self.flatten is not None
        self.picture.copy_(from_rgb(flatten(image_fn(), self.flatten[1]), self.decorrelate))

    def _hold_outside(self, grown: float) -> None:
        """Keep the picture as it started outside the centred box of ``1/2 + grown/2`` of each side."""
        assert self.start is not None
        h, w = self.picture.shape[-2:]
        side = 0.5 + 0.5 * grown
        top, left = round(h * (1 - side) / 2), round(w * (1 - side) / 2)
        inside = torch.zeros((h, w), dtype=torch.bool, device=self.picture.device)
        inside[top : h - top, left : w - left] = True
        self.picture.copy_(torch.where(inside, self.picture, self.start))


def periodic(
    cfg: Any, params: Sequence[torch.Tensor], steps: int, keys: Mapping[str, Any] | None = None
) -> Periodic | None:
    """The periodic regularizers the run's keys ask for (``blur``, ``decay``, ``clip_norm``, ``clip_contribution``,
    ``flatten``, ``centre``; ``keys`` in place of the config's), on its pixel picture; None when none is on. One line
    when a key is wrong or the picture is not ``param=pixel``."""
    given = {key: (keys or {}).get(key, cfg.get(key)) for key in KEYS}
    if given["flatten"] == "auto":
        raise UserError("flatten=auto takes the style's flat share, so only style transfer has it; "
                        "give flatten=[every, share] (such as [30,0.7]) or null")  # fmt: skip
    rules = {key: _pair(key, value) for key, value in given.items()}
    centre = cfg.get("centre")
    if centre is not None and (isinstance(centre, bool) or not isinstance(centre, int | float) or not 0 < centre <= 1):
        raise UserError(f"centre={centre} is not valid; centre is the share of the steps (above 0, at most 1) "
                        "over which the region grows from the middle to the whole picture, or null")  # fmt: skip
    if not any(rules.values()) and centre is None:
        return None
    if cfg.param.get("_target_") != "engine.params.pixel":
        on = " ".join(f"{k}={v}" for k, v in [*given.items(), ("centre", centre)] if v is not None)
        raise UserError(f"{on} works on the picture's pixels; add param=pixel (Fourier pictures are smooth already)")
    decorrelate = bool(cfg.param.get("decorrelate", False))
    return Periodic(params[0], steps, centre=centre, decorrelate=decorrelate, **rules)  # type: ignore[arg-type]
