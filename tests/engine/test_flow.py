"""Optical flow against clips whose motion is known: pans, zooms and turns of a sample photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.flow import FLOW_METHODS, endpoint_error, flow_flicker, motion, optical_flow, turn_flow, warp
from engine.images import load_image, resize_to
from objectives.base import INPUT
from objectives.transfer import temporal
from recipes.motion import zoom_and_turn

H, W = 160, 240


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return resize_to(load_image("chelsea"), (200, 300))


def _pan(photo: torch.Tensor, dx: int) -> torch.Tensor:
    """The view ``dx`` pixels to the right: what was at ``x`` is now at ``x - dx``."""
    return photo[..., 20 : 20 + H, 20 + dx : 20 + dx + W]


def _turned(photo: torch.Tensor, zoom: float, degrees: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Two frames of a zoom and turn about the centre, and the true flow from the first to the second."""
    a = photo[..., 20 : 20 + H, 30 : 30 + W]
    return a, zoom_and_turn(a, zoom, degrees, (0.0, 0.0)), turn_flow(H, W, zoom, degrees)


@pytest.mark.parametrize(("method", "most"), [("dis", 0.05), ("farneback", 0.15)])
def test_a_pan_is_found_to_a_fraction_of_a_pixel(photo: torch.Tensor, method: str, most: float) -> None:
    flow = optical_flow(_pan(photo, 0), _pan(photo, 3), method)
    truth = np.zeros_like(flow)
    truth[..., 0] = -3
    assert endpoint_error(flow, truth, margin=8) < most


@pytest.mark.parametrize("method", FLOW_METHODS)
@pytest.mark.parametrize(("zoom", "degrees"), [(1.05, 0.0), (1.0, 3.0), (1.03, -2.0)])
def test_zooms_and_turns_are_found_to_half_a_pixel(
    photo: torch.Tensor, method: str, zoom: float, degrees: float
) -> None:
    a, b, truth = _turned(photo, zoom, degrees)
    error = endpoint_error(optical_flow(a, b, method), truth, margin=16)
    assert error < (0.25 if method == "dis" else 0.6), error
    assert np.abs(truth).max() > 3  # the motion is large enough to matter


def test_warping_the_frame_before_along_the_flow_rebuilds_the_frame(photo: torch.Tensor) -> None:
    before, frame = _pan(photo, 0), _pan(photo, 2)
    moved = motion(before, frame)
    carried, mask = moved.carry(before, feather=0)
    inner = mask.bool().expand_as(frame)
    assert float((carried - frame).abs()[inner].mean()) * 255 < 1.5
    assert float((before - frame).abs()[inner].mean()) * 255 > 5  # unwarped, it does not


def test_what_a_pan_brings_in_is_not_trusted_and_the_rest_is(photo: torch.Tensor) -> None:
    mask = motion(_pan(photo, 0), _pan(photo, 4)).mask
    assert mask[:, -3:].mean() < 0.1  # the 4-px strip at the right edge was not in the frame before
    assert mask[:, : W - 8].mean() > 0.97


def test_the_mask_is_feathered_towards_what_is_new(photo: torch.Tensor) -> None:
    moved = motion(_pan(photo, 0), _pan(photo, 4))
    _, hard = moved.carry(_pan(photo, 0), feather=0)
    _, soft = moved.carry(_pan(photo, 0), feather=2)
    row = soft[0, 0, H // 2]
    assert float(row[W - 8]) < float(row[W - 12]) < float(row[W // 2]) + 1e-6  # it falls towards the new strip
    assert bool((soft <= hard + 1e-6).all())


def test_the_true_flow_of_a_turn_moves_a_corner_as_rotating_it_does() -> None:
    flow = turn_flow(11, 11, 1.0, 90.0)  # a quarter turn: the top-left corner goes to the bottom-left
    assert np.allclose(flow[0, 0], [0, 10], atol=1e-4) and np.allclose(flow[5, 5], [0, 0], atol=1e-4)


def test_warp_moves_by_the_flow() -> None:
    picture = torch.rand(1, 3, 20, 30)
    flow = np.zeros((20, 30, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = 2, -1  # each pixel shows what is 2 px right and 1 px up of it
    assert torch.allclose(warp(picture, flow)[..., 1:, :-2], picture[..., :-1, 2:], atol=1e-5)


def test_flicker_along_the_flow_rewards_following_the_scene(photo: torch.Tensor) -> None:
    frames = [_pan(photo, 2 * k) for k in range(4)]
    painted = [(f * 0.8 + 0.1) for f in frames]  # a "painting" that moves with the scene
    stuck = [painted[0]] * 4  # one that stays put on the screen while the scene pans
    assert flow_flicker(painted, frames) < 1.5
    assert flow_flicker(stuck, frames) > 5
    assert flow_flicker(stuck[:1], frames[:1]) == 0


def test_an_unknown_method_is_one_line() -> None:
    with pytest.raises(UserError, match="flow=raft is not known; use flow=dis, flow=farneback or flow=none"):
        optical_flow(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), "raft")


def test_the_temporal_loss_holds_only_where_the_mask_is_one() -> None:
    previous = torch.rand(1, 3, 6, 8)
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :, :4] = 1
    loss = temporal(previous, mask, weight=2.0)
    x = previous.clone()
    x[..., :, 4:] = 0  # changed only where the mask is 0
    assert float(loss({INPUT: x})) == 0
    x[..., 0, 0] += 0.5
    assert float(loss({INPUT: x})) == pytest.approx(2.0 * 3 * 0.25 / (3 * 6 * 8))
    picture = x.clone().requires_grad_(True)
    loss({INPUT: picture}).backward()
    assert picture.grad is not None and float(picture.grad[..., :, 4:].abs().sum()) == 0


def test_what_a_moving_object_uncovers_is_not_trusted(photo: torch.Tensor) -> None:
    """A 60-px square of another picture slides 6 px right over a still background: the 6-px band it uncovers was
    hidden in the frame before, so no flow can carry it."""
    background = _pan(photo, 0)
    square = resize_to(load_image("astronaut"), (60, 60))

    def frame(x: int) -> torch.Tensor:
        out = background.clone()
        out[..., 50:110, x : x + 60] = square
        return out

    mask = motion(frame(80), frame(86)).mask
    assert mask[60:100, 80:86].mean() < 0.5  # uncovered now
    assert mask[60:100, 100:130].mean() > 0.9  # the square, moved whole
    assert mask[:40, :].mean() > 0.95  # the still background
