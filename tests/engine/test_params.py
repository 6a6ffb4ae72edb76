"""Parameterizations and octaves: shapes, range, starting from a picture, smoothness of the FFT start."""

from __future__ import annotations

import pytest
import torch

from engine.octaves import octave_sizes, run_octaves
from engine.params import fft, pixel
from regularizers import tv_map


@pytest.mark.parametrize("make", [pixel, fft])
@pytest.mark.parametrize("decorrelate", [False, True])
def test_start_from_a_picture_reproduces_it(make, decorrelate: bool) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    picture = torch.rand(1, 3, 24, 31) * 0.9 + 0.05
    params, image = make((2, 3, 24, 31), init=picture, decorrelate=decorrelate)
    out = image()
    assert out.shape == (2, 3, 24, 31)
    assert torch.allclose(out, picture.expand(2, -1, -1, -1), atol=1e-4)
    assert all(p.requires_grad for p in params)


@pytest.mark.parametrize("make", [pixel, fft])
def test_noise_start_is_a_valid_seeded_picture(make) -> None:  # type: ignore[no-untyped-def]
    a = make((1, 3, 16, 16), generator=torch.Generator().manual_seed(3))[1]()
    b = make((1, 3, 16, 16), generator=torch.Generator().manual_seed(3))[1]()
    assert torch.equal(a, b)
    assert 0.0 < float(a.detach().min()) and float(a.detach().max()) < 1.0


def test_fft_start_is_smoother_than_pixel_noise() -> None:
    g = torch.Generator().manual_seed(0)
    smooth = fft((1, 3, 64, 64), sd=0.5, generator=g)[1]()
    rough = pixel((1, 3, 64, 64), sd=0.5, generator=torch.Generator().manual_seed(0))[1]()
    assert float(tv_map(smooth.detach())) < 0.5 * float(tv_map(rough.detach()))


def test_fft_decay_sets_how_fast_detail_fades() -> None:
    """A larger decay leaves less fine detail (edges per unit of contrast): 0 is white noise, 2 far smoother than 1."""
    rough = {}
    for decay in (0.0, 1.0, 2.0):
        picture = fft((1, 3, 64, 64), decay=decay, sd=0.5, generator=torch.Generator().manual_seed(0))[1]().detach()
        rough[decay] = float(tv_map(picture)) / float(picture.std())  # measured 2.24, 1.17, 0.21
    assert rough[0.0] > 1.5 * rough[1.0] > 4 * rough[2.0], rough


def test_octave_sizes_grow_to_the_target() -> None:
    sizes = octave_sizes((300, 450), 3, 1.5)
    assert sizes == [(133, 200), (200, 300), (300, 450)]


def test_octaves_carry_detail_upwards() -> None:
    base = torch.full((1, 3, 40, 40), 0.5)
    seen: list[torch.Tensor] = []

    def brighten(start: torch.Tensor | None, i: int) -> torch.Tensor:
        assert start is not None
        seen.append(start)
        return (start + 0.1).clamp(0, 1)

    out = run_octaves(base, octave_sizes((40, 40), 3, 2.0), brighten)
    assert [tuple(s.shape[-2:]) for s in seen] == [(10, 10), (20, 20), (40, 40)]
    assert float(out.mean()) == pytest.approx(0.8, abs=1e-5)  # three octaves each added 0.1 of detail


def test_octaves_from_noise_pass_the_previous_result_up() -> None:
    calls: list[object] = []

    def render(start: torch.Tensor | None, i: int) -> torch.Tensor:
        calls.append(None if start is None else tuple(start.shape[-2:]))
        return torch.zeros(1, 3, *[(8, 8), (16, 16)][i])

    run_octaves(None, [(8, 8), (16, 16)], render)
    assert calls == [None, (16, 16)]


def test_restart_passes_each_later_start_only() -> None:
    starts: list[float] = []

    def render(start: torch.Tensor | None, i: int) -> torch.Tensor:
        starts.append(float(start.mean()) if start is not None else -1.0)
        return torch.full((1, 3, 8 * 2**i, 8 * 2**i), 0.25)

    first = torch.full((1, 3, 4, 4), 0.5)
    run_octaves(None, [(8, 8), (16, 16), (32, 32)], render, first, restart=lambda p: 1 - p)
    assert starts == pytest.approx([0.5, 0.75, 0.75])  # the first start as given; later ones through restart
