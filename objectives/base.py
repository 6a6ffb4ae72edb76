"""The objective algebra: small callables on activations that add, subtract and scale.

Sign convention, for the whole engine: an objective is a **loss to minimize**. A factory that "maximizes" a
channel returns the negative of its mean activation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from numbers import Real

import torch

__all__ = ["INPUT", "Activations", "Objective", "batch_slice"]

Activations = Mapping[str, torch.Tensor]
"""Layer name -> activation; ``"input"`` is the picture before transforms and ``"logits"`` the classifier output."""

INPUT = "input"
"""Name under which the loop hands objectives the picture before any transform."""


def batch_slice(t: torch.Tensor, batch: int | None) -> torch.Tensor:
    """Keep all pictures (``batch=None``) or only picture ``batch``, keeping the batch dimension."""
    return t if batch is None else t[batch : batch + 1]


class Objective:
    """A loss built from activations, with ``+ - *`` for numbers and other objectives.

    Args:
        fn: maps the activations to a scalar tensor.
        layers: the layer names ``fn`` reads; the engine runs the model just deep enough for all of them.
        name: a readable description, built by the factory from its arguments.
    """

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: Iterable[str] = (), name: str = "") -> None:
        self.fn = fn
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        self.name = name or getattr(fn, "__name__", "objective")

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a: self(a) + other(a), self.layers + other.layers, f"{self.name} + {other.name}")
        if isinstance(other, Real):
            value = float(other)
            return Objective(lambda a: self(a) + value, self.layers, f"{self.name} + {value:g}")
        return NotImplemented

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __mul__(self, other: float) -> Objective:
        if not isinstance(other, Real):
            return NotImplemented
        value = float(other)
        return Objective(lambda a: value * self(a), self.layers, f"{value:g} * ({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, other: float) -> Objective:
        if not isinstance(other, Real):
            return NotImplemented
        return self * (1.0 / float(other))

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        """Add many objectives into one (an empty sum is rejected: there would be nothing to optimize)."""
        items = list(objectives)
        if not items:
            raise ValueError("Objective.sum needs at least one objective")
        layers = tuple(layer for o in items for layer in o.layers)
        return Objective(lambda a: torch.stack([o(a) for o in items]).sum(), layers, " + ".join(o.name for o in items))
