"""A picture that is a small network of its pixel coordinates (Stanley, 2007, "Compositional Pattern Producing
Networks"; Mordvintsev et al., 2018, "Differentiable Image Parameterizations").

The optimized numbers are the network's weights, not pixels, so the picture has no size of its own: rendering the
same weights over a finer grid of coordinates gives the same picture at any resolution (``dreamloom render``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.callbacks import Progress
from engine.errors import UserError
from engine.params import ImageFn, within

__all__ = ["RADIUS", "coordinates", "cppn", "render_cppn", "render_large", "weight_shapes"]

RADIUS = math.sqrt(3.0)
"""The coordinates span -RADIUS … RADIUS along the picture's short side (unit variance, as in Lucid's CPPN)."""
_GAIN = 0.05
"""The weights are stored divided by this: an optimizer's step of ``lr`` moves a weight by ``lr * _GAIN``, the
small steps a CPPN needs (Lucid uses Adam at 0.005), at the learning rates pixel and Fourier pictures use."""
_ROWS = 256
"""Rows rendered at a time without gradients, so a 4K picture needs memory for a strip, not the whole."""


def coordinates(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The pixel centres' (x, y) and their distance from the centre, the short side spanning ±:data:`RADIUS` and
    the long side as far as the aspect ratio takes it (a wider picture shows more, at the same scale).
    Shape: ``(1, 3, h, w)``."""
    side = min(h, w)
    ys = ((torch.arange(h, device=device) + 0.5 - h / 2) / side * 2 * RADIUS)[:, None].expand(h, w)
    xs = ((torch.arange(w, device=device) + 0.5 - w / 2) / side * 2 * RADIUS)[None, :].expand(h, w)
    return torch.stack([xs, ys, (xs.square() + ys.square()).sqrt()])[None]


def _activate(x: torch.Tensor) -> torch.Tensor:
    """Lucid's composite activation: ``atan`` and its square, each scaled to about unit variance (doubles C)."""
    a = torch.atan(x)
    return torch.cat([a / 0.67, a.square() / 0.6], dim=1)


def render_cppn(weights: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
    """The pictures ``weights`` make over ``coords`` (:func:`coordinates`), in [0, 1]. Shape: ``(B, 3, H, W)``.

    ``weights`` alternate ``(B, out, in)`` matrices and ``(B, out)`` biases, one pair per layer; every layer but
    the last is followed by :func:`_activate`. Nothing is normalized over the picture, so each pixel depends on
    its own coordinates alone and a larger render is the same picture, finer."""
    b = weights[0].shape[0]
    x = coords.expand(b, *coords.shape[1:])
    pairs = list(zip(weights[::2], weights[1::2], strict=True))
    for i, (matrix, bias) in enumerate(pairs):
        x = torch.einsum("boi,bihw->bohw", matrix * _GAIN, x) + (bias * _GAIN)[..., None, None]
        if i < len(pairs) - 1:
            x = _activate(x)
    return torch.sigmoid(x)


def render_large(weights: list[torch.Tensor], h: int, w: int) -> torch.Tensor:
    """:func:`render_cppn` at ``h`` by ``w`` without gradients, :data:`_ROWS` rows at a time (each pixel depends on
    its own coordinates only, so strips join without a seam). Shape: ``(B, 3, h, w)`` on the weights' device."""
    coords = coordinates(h, w, weights[0].device)
    with torch.no_grad():
        return torch.cat([render_cppn(weights, coords[..., i : i + _ROWS, :]) for i in range(0, h, _ROWS)], dim=-2)


MAX_WIDTH, MAX_DEPTH = 256, 32
"""The widest and deepest CPPN: every pixel passes through every layer at every step, so the work per pixel grows with
the width squared times the depth (the largest allowed is about 450 times the default 24 wide and 8 deep)."""


def cppn(
    shape: tuple[int, int, int, int],
    init: torch.Tensor | None = None,
    width: int = 24,
    depth: int = 8,
    fit_steps: int = 200,
    sd: float = 0.01,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """A CPPN picture: ``depth`` layers of ``width`` channels map each pixel's coordinates to its colour.

    Args:
        shape: ``(B, 3, H, W)``: one network per picture of the batch.
        init: a starting picture in [0, 1] (an input photo, or the octave before): the network is first fitted to
            it for ``fit_steps`` steps; None starts from random weights and a flat grey picture.
        width: channels of each hidden layer (doubled by the activation).
        depth: hidden layers.
        fit_steps: steps of fitting to ``init`` (0: start from random weights anyway).
        sd: unused: a random CPPN is already a varied picture (accepted so ``init=zeros`` works alike; held to
            [0, 10], the range of every picture's ``sd``).
        generator: random source of the weights.
        device: where the weights live.
    """
    b, _, h, w = shape
    if not 1 <= width <= MAX_WIDTH or not 1 <= depth <= MAX_DEPTH:
        raise UserError(
            f"param.width={width} and param.depth={depth} are not valid; use a width from 1 to {MAX_WIDTH} and a "
            f"depth from 1 to {MAX_DEPTH} (default 24 and 8)"
        )
    within("sd", sd)  # unused, yet held to the range every picture's sd has
    shapes = weight_shapes(b, width, depth)
    weights = (
        [  # random matrices, zero biases, and a last layer at zero: a flat grey picture
            torch.randn(s, generator=generator) * (math.sqrt(1.0 / s[-1]) / _GAIN) if len(s) == 3 else torch.zeros(s)
            for s in shapes[:-2]
        ]
        + [torch.zeros(s) for s in shapes[-2:]]
    )
    params = [t.to(device).requires_grad_(True) for t in weights]
    coords = coordinates(h, w, device)
    if init is not None and fit_steps > 0:
        _fit(params, coords, init.to(device).expand(b, 3, h, w), fit_steps)
    return params, lambda: render_cppn(params, coords)


def weight_shapes(batch: int, width: int, depth: int) -> list[tuple[int, ...]]:
    """The shapes of the weights :func:`cppn` makes for ``batch`` pictures, in order."""
    shapes: list[tuple[int, ...]] = []
    for n_in in [3, *([2 * width] * (depth - 1))]:
        shapes += [(batch, width, n_in), (batch, width)]
    return [*shapes, (batch, 3, 2 * width), (batch, 3)]


def _fit(params: list[torch.Tensor], coords: torch.Tensor, target: torch.Tensor, steps: int) -> None:
    """Fit the network to ``target`` by ``steps`` Adam steps on the squared error (in place)."""
    optimizer = torch.optim.Adam(params, lr=0.05)
    bar, seen = Progress("fitting the CPPN to its start "), lambda: target  # its own steps: a long fit is not silence
    bar.on_start(steps, seen)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(render_cppn(params, coords), target)
        loss.backward()
        optimizer.step()
        bar.on_step(step, loss.detach(), seen)
