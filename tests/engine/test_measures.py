"""The picture measures on pictures whose answer is known."""

from __future__ import annotations

import torch

from engine.images import load_image
from engine.measures import color_distance, edge_strength, grid_strength, texture_distance, texture_statistics


def _noise(h: int = 96, w: int = 128) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25


def test_a_pale_frame_stands_out_and_a_stationary_texture_does_not() -> None:
    texture = _noise()
    framed = texture.clone()
    framed[..., :6, :], framed[..., -6:, :], framed[..., :, :6], framed[..., :, -6:] = 0.9, 0.9, 0.9, 0.9
    assert edge_strength(texture) < 0.1 < 1 < edge_strength(framed)


def test_one_framed_side_is_enough() -> None:
    texture = _noise()
    texture[..., :, -8:] = 0.95
    assert edge_strength(texture) > 1


def test_colour_distance_is_zero_for_the_same_colours_and_one_for_none_in_common() -> None:
    texture = _noise()
    assert color_distance(texture, texture) == 0
    assert color_distance(texture, texture.flip(-1).flip(-2)) == 0  # amounts, not places
    assert color_distance(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)) == 1
    assert (
        0.4
        < color_distance(torch.zeros(1, 3, 8, 8), torch.cat([torch.zeros(1, 3, 4, 8), torch.ones(1, 3, 4, 8)], -2))
        < 0.6
    )


def test_a_printed_checkerboard_scores_far_above_noise() -> None:
    texture = _noise()
    board = texture + 0.1 * ((torch.arange(96)[:, None] // 4 + torch.arange(128)[None] // 4) % 2)
    assert grid_strength(texture) < 30 < 100 < grid_strength(board.clamp(0, 1))


def test_texture_distance_sees_the_texture_not_the_layout() -> None:
    brick, gravel = load_image("brick")[..., :256, :256], load_image("gravel")[..., :256, :256]
    assert texture_distance(brick, brick) == 0
    shuffled = torch.cat([brick[..., 128:, :], brick[..., :128, :]], -2).roll(64, -1)  # the same texture, moved
    assert texture_distance(brick, shuffled) < 0.25 * texture_distance(brick, gravel)
    assert texture_statistics(brick).shape == texture_statistics(gravel[..., :200, :240]).shape  # any size


def test_texture_statistics_see_orientation_and_scale() -> None:
    y, x = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    across, along = (0.5 + 0.4 * torch.sin(t / 2).expand(1, 3, 128, 128) for t in (x, y))
    coarse = 0.5 + 0.4 * torch.sin(x / 8).expand(1, 3, 128, 128)
    assert texture_distance(across, along) > 1  # the same stripes turned a quarter turn
    assert texture_distance(across, coarse) > 1  # the same stripes four times wider
    assert texture_distance(across, across.flip(-1)) < 1e-3
