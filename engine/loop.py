"""The optimization loop: one short function over already-built parts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from engine.callbacks import Callback
from engine.models import ModelView
from engine.params import ImageFn
from objectives.base import Objective
from regularizers.penalties import INPUT

__all__ = ["NormalizedGradient", "optimize"]


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
                if p.grad is not None:  # stays on the device: no host sync inside the loop
                    p.sub_(p.grad * (group["lr"] / (p.grad.abs().mean() + group["eps"])))
        return loss


def optimize(
    params: Sequence[torch.Tensor],
    image_fn: ImageFn,
    objective: Objective,
    model: ModelView,
    transforms: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    callbacks: Sequence[Callback] = (),
) -> torch.Tensor:
    """Minimize ``objective`` over ``params`` for ``steps`` optimizer steps and return the final picture.

    Each evaluation builds the picture, transforms it, runs the model only as deep as the objective's layers
    and back-propagates; weights are frozen, so only the picture's parameters get gradients.
    """
    layers = [layer for layer in objective.layers if layer != INPUT]

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        img = image_fn()
        acts = dict(model(transforms(img), layers)) if layers else {}
        acts[INPUT] = img
        loss = objective(acts)
        loss.backward()
        return loss.detach()

    for cb in callbacks:
        cb.on_start(steps, image_fn)
    for step in range(steps):
        loss = optimizer.step(closure)  # type: ignore[arg-type]
        for cb in callbacks:
            cb.on_step(step, loss, image_fn)  # type: ignore[arg-type]
    with torch.no_grad():
        return image_fn().detach()
