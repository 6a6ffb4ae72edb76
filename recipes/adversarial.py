"""Adversarial pictures (Goodfellow et al., 2015; Kurakin et al., 2017) and fooling pictures (Nguyen et al., 2015).

``attack`` changes every pixel of a photo by at most ``eps`` so that the model calls it ``target`` (or anything but
its own answer); ``fool`` grows a picture from noise until the model gives ``target`` a chosen confidence.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from engine.callbacks import Callback, Diverged, Guard, Progress
from engine.checks import seeded
from engine.errors import UserError
from engine.export import contact_sheet, save_png
from engine.images import check_side, input_picture, quantize, target_size
from engine.loop import STOP
from engine.models import LOGITS, ModelView
from engine.results import Interrupted, RunResult, config_yaml, probabilities, top5, write_view
from engine.runner import load_view, penalty_terms, recipe, snapshots
from engine.spec import NO_PICTURE, unread
from objectives.base import INPUT, Objective
from objectives.classes import resolve_class
from regularizers.periodic import KEYS

__all__ = ["ATTACKS", "adversarial", "attack", "fool", "fooling", "parse_eps"]

ATTACKS = ("fgsm", "iterative")


def parse_eps(value: Any) -> float:
    """``eps`` as a number in (0, 1]; fractions such as ``2/255`` are accepted."""
    top, _, bottom = str(value).strip().partition("/")
    try:  # each side a plain number: 0.5/255 too, which Fraction refuses
        eps = float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        eps = float("nan")
    if not 0 < eps <= 1:
        raise UserError(f"eps={value} is not valid; eps is the largest change per pixel in (0, 1], e.g. eps=2/255")
    return eps


def attack(
    view: ModelView,
    picture: torch.Tensor,
    eps: float,
    target: int | None = None,
    method: str = "iterative",
    steps: int = 10,
    callbacks: Sequence[Callback] = (),
    magnify: float = 10.0,
) -> torch.Tensor:
    """The picture within ``eps`` (L∞) of ``picture`` that the model calls ``target``.

    ``fgsm`` takes one signed-gradient step of size ``eps``; ``iterative`` takes ``steps`` steps of ``2.5 · eps /
    steps``, projecting back into the ``eps`` box each time. Without ``target`` the attack pushes away from the
    model's own answer. The result is rounded to 8-bit levels (and stays within ``eps`` of the 8-bit original).
    The ``callbacks`` (progress bar, snapshots) see the change so far, enlarged ``magnify`` times about grey.

    Shape: ``(1, 3, H, W)`` in [0, 1] in and out.
    """
    if method not in ATTACKS:
        raise UserError(f"method={method} is not known; use method=fgsm or iterative")
    x0 = quantize(picture.to(view.device))
    with torch.no_grad():
        own = int(view(x0, [LOGITS])[LOGITS].argmax())
    label = torch.tensor([own if target is None else target], device=x0.device)
    sign = -1.0 if target is not None else 1.0  # toward the target, or away from the model's answer
    n, alpha = (1, eps) if method == "fgsm" else (steps, 2.5 * eps / steps)
    x = x0.clone()

    def change() -> torch.Tensor:
        return (0.5 + magnify * (x.detach() - x0)).clamp(0, 1)

    for cb in callbacks:
        cb.on_start(n, change)
    for step in range(n):
        x.requires_grad_(True)
        loss = F.cross_entropy(view(x, [LOGITS])[LOGITS], label)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + sign * alpha * grad.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
        for cb in callbacks:
            cb.on_step(step, loss.detach(), change)
    low = (((x0 - eps) * 255 - 1e-4).ceil() / 255).clamp(0, 1)  # the 8-bit levels inside the eps box
    high = (((x0 + eps) * 255 + 1e-4).floor() / 255).clamp(0, 1)
    return torch.min(torch.max(quantize(x.detach()), low), high)


class StoppedEarly(Exception):
    """Ctrl-C or SIGTERM during :func:`fool`: the picture so far (8-bit) and the steps taken."""

    def __init__(self, picture: torch.Tensor, taken: int) -> None:
        super().__init__(f"stopped after {taken} steps")
        self.picture, self.taken = picture, taken


def fool(
    view: ModelView,
    target: int,
    hw: tuple[int, int],
    confidence: float,
    steps: int,
    lr: float,
    generator: torch.Generator | None = None,
    callbacks: Sequence[Callback] = (),
    penalty: Objective | None = None,
) -> tuple[torch.Tensor, int]:
    """Grow a picture from noise until the model gives ``target`` at least ``confidence`` (or ``steps`` run out),
    minimizing the target's cross-entropy plus ``penalty`` on the picture (tv, l1, l2).

    Returns the 8-bit picture ``(1, 3, H, W)`` and the number of steps taken.

    Raises:
        StoppedEarly: on Ctrl-C or SIGTERM, with the picture so far.
    """
    noise = torch.rand((1, 3, *hw), generator=generator).to(view.device)
    logit = (noise.clamp(0.01, 0.99) / (1 - noise.clamp(0.01, 0.99))).log().requires_grad_(True)
    optimizer = torch.optim.Adam([logit], lr=lr)
    label = torch.tensor([target], device=view.device)
    for cb in callbacks:
        cb.on_start(steps, logit.sigmoid)
    taken = _fool_steps(view, logit, optimizer, label, confidence, steps, callbacks, penalty)
    return quantize(logit.detach().sigmoid()), taken


def _fool_steps(
    view: ModelView,
    logit: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    label: torch.Tensor,
    confidence: float,
    steps: int,
    callbacks: Sequence[Callback],
    penalty: Objective | None,
) -> int:
    """:func:`fool`'s steps on ``logit`` (in place); returns how many were taken, or raises :class:`StoppedEarly`
    with the picture so far on Ctrl-C or SIGTERM."""
    target, taken = int(label[0]), 0
    try:
        for step in range(steps):
            if STOP.is_set():
                raise KeyboardInterrupt
            x = logit.sigmoid()
            logits = view(x, [LOGITS])[LOGITS]
            taken = step
            if float(logits.detach().softmax(-1)[0, target]) >= confidence:
                for cb in callbacks:
                    cb.on_end(step, logit.sigmoid)
                break
            loss = F.cross_entropy(logits, label)
            if penalty is not None:
                loss = loss + penalty({INPUT: x})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            taken = step + 1
            for cb in callbacks:
                cb.on_step(step, loss.detach(), logit.sigmoid)
    except KeyboardInterrupt:
        raise StoppedEarly(quantize(logit.detach().sigmoid()), taken) from None
    return taken


def _answer(view: ModelView, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The model's class and its probabilities for one picture (one forward pass)."""
    probs = probabilities(view, x)
    return int(probs.argmax()), probs


@recipe(
    numbers={"magnify": (float, 0, True)},
    penalties=False,
    ignores={"tile_size": "", **unread(NO_PICTURE, "the attack moves the photo itself, within eps=", ["steps"])},
)
def adversarial(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Write the original, the difference ×``magnify`` and the adversarial picture, and their predictions."""
    view = load_view(cfg)
    eps = parse_eps(cfg.eps)
    target = None if cfg.target is None else resolve_class(cfg.target, view.categories)
    x0 = quantize(input_picture(cfg, recipe, view.device))
    t0 = time.perf_counter()
    frames = snapshots(cfg)
    adv = attack(view, x0, eps, target, str(cfg.method), int(cfg.steps), [Progress(), frames], float(cfg.magnify))
    seconds = time.perf_counter() - t0
    (clean, clean_probs), (after, probs) = _answer(view, x0), _answer(view, adv)
    diff = (0.5 + float(cfg.magnify) * (adv - x0)).clamp(0, 1)
    labels = [
        f"original: {view.categories[clean][:18]} {float(clean_probs[clean]):.0%}",
        f"difference x{cfg.magnify:g}",
        f"adversarial: {view.categories[after][:18]} {float(probs[after]):.0%}",
    ]
    save_png(folder / "adversarial.png", adv[0], config_yaml(cfg))
    return write_view(
        cfg,
        folder,
        recipe,
        contact_sheet(torch.cat([x0, diff, adv]).cpu(), 3, labels=labels),
        gif=frames,
        steps=1 if cfg.method == "fgsm" else int(cfg.steps),
        seconds=round(seconds, 3),
        image_size=list(x0.shape[-2:]),
        method=str(cfg.method),
        eps=eps,
        linf=round(float((adv - x0).abs().max()), 6),
        linf_255=round(float((adv - x0).abs().max()) * 255, 3),
        l2=round(float((adv - x0).norm()), 4),
        clean={"class": view.categories[clean], "probability": round(float(clean_probs[clean]), 4)},
        adversarial={"class": view.categories[after], "probability": round(float(probs[after]), 4)},
        target=None if target is None else view.categories[target],
        target_probability=None if target is None else round(float(probs[target]), 4),
        success=after == target if target is not None else after != clean,
    )


@recipe(
    numbers={"confidence": (float, 0, True)},
    ignores={
        **dict.fromkeys(("input", "tile_size", *KEYS, "centre"), ""),
        **unread(NO_PICTURE, "it grows pixels from noise by its own steps= and lr=", ["steps", "lr"]),
    },
)
def fooling(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Write a picture grown from noise that the model calls ``target`` with ``confidence``."""
    view = load_view(cfg)
    confidence = float(cfg.confidence)
    if not 0 < confidence < 1:
        raise UserError(f"confidence={cfg.confidence} is not valid; use a probability between 0 and 1, e.g. 0.99")
    target = resolve_class(cfg.target, view.categories)
    hw = target_size(cfg.size)
    check_side(cfg, hw)
    t0 = time.perf_counter()
    generator = seeded(cfg.seed)
    frames = snapshots(cfg)
    guard = [Progress(), frames, Guard()]
    penalty = penalty_terms(cfg)
    name = f"cross_entropy({view.categories[target]})" + (f" + {penalty.name}" if penalty is not None else "")
    stopped: dict[str, Any] = {}
    try:
        picture, taken = fool(view, target, hw, confidence, int(cfg.steps), float(cfg.lr), generator, guard, penalty)
    except Diverged as e:
        raise UserError(f"{e}; lr={cfg.lr} is probably too high, try lr={float(cfg.lr) / 10:g}") from None
    except StoppedEarly as e:  # the picture so far is written, as the optimizing recipes write theirs
        picture, taken, stopped = e.picture, e.taken, {"interrupted": True}
    seconds = time.perf_counter() - t0
    probs = probabilities(view, picture)
    caption = f"{view.categories[target][:22]} {float(probs[target]):.1%}"
    result = write_view(
        cfg,
        folder,
        recipe,
        contact_sheet(picture.cpu(), 1, labels=[caption]),
        gif=frames,
        steps=taken,
        seconds=round(seconds, 3),
        image_size=list(hw),
        objective=name,
        target=view.categories[target],
        target_probability=round(float(probs[target]), 4),
        reached=float(probs[target]) >= confidence,
        top5=top5(probs, view.categories),
        **stopped,
    )
    if stopped:
        raise Interrupted(folder, taken)
    if float(probs[target]) < confidence:  # written, and said: the picture falls short of what was asked
        short = f"{view.categories[target]} at p={float(probs[target]):.4f} after {taken} steps"
        print(f"dreamloom: {short}, short of confidence={confidence:g}; raise steps= or lr=", file=sys.stderr)
    return result
