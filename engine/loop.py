"""The optimization loop: one short function over already-built parts."""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from engine.callbacks import Callback, Goal
from engine.models import ModelView
from engine.params import ImageFn
from engine.scales import read
from objectives.base import INPUT, Objective

__all__ = ["STOP", "NormalizedGradient", "Tiling", "keep_freed_memory", "optimize"]

STOP = threading.Event()
"""Set by the command line when Ctrl-C or SIGTERM arrives. The loop checks it before every step, so a run stops even
when the ``KeyboardInterrupt`` raised with the signal was lost on its way (CPython drops an exception raised while
some of its C functions, such as dictionary lookups, run Python code)."""


class NormalizedGradient(torch.optim.Optimizer):
    """Gradient descent with each step's gradient divided by its mean absolute value (Mordvintsev et al., 2015).

    The step size is then ``lr`` in parameter units whatever the layer's scale, which is what DeepDream needs.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.01, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:  # stays on the device (no host sync) and makes no picture-sized temporary
                    mean_abs = torch.linalg.vector_norm(p.grad, ord=1) / p.grad.numel()
                    p.addcdiv_(p.grad, mean_abs + group["eps"], value=-group["lr"])
        return loss


class Tiling:
    """Split a large picture into tiles of about ``size`` pixels a side, at a new random offset every step.

    The loss and gradient are then computed one tile at a time, so memory follows the tile, not the picture;
    moving the cuts each step keeps the tile edges from printing a grid into the result (as in the DeepDream
    notebook's random roll, but without wrapping the picture's opposite edges together).

    Args:
        size: the tile side; a picture no larger than this on a side is not cut along it.
        generator: the random source of the offsets.
    """

    def __init__(self, size: int, generator: torch.Generator | None = None) -> None:
        self.size, self.generator = int(size), generator

    def spans(self, n: int) -> list[tuple[int, int]]:
        """Cuts of ``[0, n)`` into pieces between a quarter and one and a quarter tiles long, at a random offset."""
        if n <= self.size:
            return [(0, n)]
        offset = int(torch.randint(self.size, (1,), generator=self.generator))
        margin = self.size // 4
        cuts = [c for c in range(offset, n, self.size) if margin <= c <= n - margin]
        return list(itertools.pairwise([0, *cuts, n]))

    def tiles(self, h: int, w: int) -> list[tuple[slice, slice]]:
        """This step's tiles of an ``h`` by ``w`` picture, as (rows, columns) slices covering it once."""
        rows, cols = self.spans(h), self.spans(w)
        return [(slice(*r), slice(*c)) for r in rows for c in cols]


def _tiled_backward(image_fn: ImageFn, loss_of: Callable[[torch.Tensor], torch.Tensor], tiling: Tiling) -> torch.Tensor:
    """Back-propagate the loss tile by tile, each weighted by its share of the picture's area, and gather the tiles'
    gradients into one for the whole picture; returns the summed loss."""
    with torch.no_grad():
        whole = image_fn()
    grad = torch.zeros_like(whole)
    total = whole.new_zeros(())
    h, w = whole.shape[-2:]
    for rows, cols in tiling.tiles(h, w):
        piece = whole[..., rows, cols].detach().requires_grad_(True)
        loss = loss_of(piece) * (piece.shape[-2] * piece.shape[-1] / (h * w))
        loss.backward()
        assert piece.grad is not None
        grad[..., rows, cols] = piece.grad
        total += loss.detach()
    del whole, piece  # the picture is rebuilt with its graph next: keep one copy alive, not two
    image_fn().backward(grad)
    return total


def optimize(
    params: Sequence[torch.Tensor],
    image_fn: ImageFn,
    objective: Objective,
    model: ModelView,
    transforms: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    callbacks: Sequence[Callback] = (),
    tiling: Tiling | None = None,
    start: int = 0,
) -> torch.Tensor:
    """Minimize ``objective`` over ``params`` for ``steps`` optimizer steps and return the final picture.

    Each evaluation builds the picture, transforms it, runs the model only as deep as the objective's layers
    and back-propagates; weights are frozen, so only the picture's parameters get gradients. With ``tiling``,
    each tile is transformed and back-propagated on its own, its loss weighted by its share of the picture's area,
    and the gradients are gathered into one for the whole picture before the step. ``start`` skips steps already
    taken (a resumed run).
    """
    layers = [layer for layer in objective.layers if layer != INPUT]

    def loss_of(img: torch.Tensor) -> torch.Tensor:
        acts = read(model, transforms(img), layers) if layers else {}
        acts[INPUT] = img
        return objective(acts)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        if tiling is not None:
            return _tiled_backward(image_fn, loss_of, tiling)
        loss = loss_of(image_fn())
        loss.backward()
        return loss.detach()

    if STOP.is_set():
        raise KeyboardInterrupt
    for cb in callbacks:
        cb.on_start(steps, image_fn)
    for step in range(start, steps):
        if STOP.is_set():
            raise KeyboardInterrupt
        loss = optimizer.step(closure)  # type: ignore[arg-type]
        for cb in callbacks:
            cb.on_step(step, loss, image_fn)  # type: ignore[arg-type]
        if any(isinstance(cb, Goal) and cb.done_at is not None for cb in callbacks):  # good enough: stop here
            for cb in callbacks:
                cb.on_end(step + 1, image_fn)
            break
    with torch.no_grad():
        return image_fn().detach()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_ALLOCATOR_TUNED = False


def keep_freed_memory(block: int = 64 << 20, keep: int = 512 << 20) -> bool:
    """Ask glibc to serve blocks up to ``block`` bytes from its heap (32 MB where glibc allows no more) and keep up to
    ``keep`` freed bytes there, instead of mapping every activation afresh from the system and giving it back at
    once; returns whether it took. The optimization loop asks for it unless it cuts the picture into tiles: a tiled
    run is there to bound memory, and freed tiles kept in the heap would raise its peak (a 4K dream: 3.1 GB against
    2.6 GB).

    Each optimization step allocates the same activations again. By default glibc maps every block over 128 KB
    with ``mmap`` and unmaps it when freed, so each step starts by faulting in fresh zeroed pages: on a 2-core CPU a
    channel step to ``features.10`` of MobileNetV2 spends about a quarter of its time that way. Resident memory
    then stays near the run's peak instead of dropping between steps. Done once per process, on Linux with glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        served = bool(libc.mallopt(_M_MMAP_THRESHOLD, block)) or bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20))
        _ALLOCATOR_TUNED = served and bool(libc.mallopt(_M_TRIM_THRESHOLD, keep))
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): its allocator as it is
        return False
    return _ALLOCATOR_TUNED
