"""Shift-averaged input gradients: moved copies put back in place, and the stride grid gone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.images import load_image, resize_to
from engine.measures import grid_strength
from engine.models import ModelView
from recipes.gradients import input_gradient, rectifier_view, saliency, shifted_gradients


def _local_view() -> ModelView:
    """A net whose gradient at a pixel depends only on the 3x3 picture around it (stride 1, mean pooling)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, padding=1)
    net = nn.Sequential(conv, nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))
    return ModelView(net, ["a", "b"], name="local")


def test_each_moved_copy_is_put_back_where_it_came_from() -> None:
    """For a net that treats every position alike, the gradient of a moved copy, moved back, is the gradient of the
    picture itself away from the borders, so the average over copies must equal the plain gradient there."""
    view = _local_view()
    picture = torch.rand(1, 3, 24, 28, generator=torch.Generator().manual_seed(1))
    plain = input_gradient(view, picture, 1)
    averaged = shifted_gradients(view, picture, 1, shifts=3)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert torch.allclose(averaged[inner], plain[inner], atol=1e-7, rtol=1e-4)
    assert averaged.shape == plain.shape == (3, 24, 28)


def test_one_shift_is_the_plain_gradient() -> None:
    view = _local_view()
    picture = torch.rand(1, 3, 16, 16)
    assert torch.equal(shifted_gradients(view, picture, 0, shifts=1), input_gradient(view, picture, 0))


@pytest.mark.slow
def test_shifts_take_the_stride_grid_out_of_guided_backprop(mobilenet: ModelView) -> None:
    """On MobileNetV2 the guided gradient of the cat carries its stride-2 layers' grid (grid strength near 90);
    averaged over 4x4 moved copies it falls to that of a photo."""
    picture = resize_to(load_image("chelsea"), (224, 336))
    guided = rectifier_view(mobilenet, "guided")

    def shown(grad: torch.Tensor) -> torch.Tensor:
        return (grad / (3 * grad.std()) * 0.5 + 0.5).clamp(0, 1)[None]

    single = grid_strength(shown(input_gradient(guided, picture, 285)))
    averaged = grid_strength(shown(input_gradient(guided, picture, 285, shifts=4)))
    assert single > 50 and averaged < 10, (single, averaged)
    heat = saliency(mobilenet, picture, 285, shifts=4)
    assert heat.shape == (224, 336) and grid_strength((heat / heat.max())[None, None].expand(1, 3, -1, -1)) < 40
