"""Penalties and robustness transforms: values, gradients, seeding, shapes, device and dtype."""

from __future__ import annotations

import pytest
import torch

from regularizers import (
    Compose,
    GaussianBlur,
    Jitter,
    Pad,
    RandomAffine,
    RandomRotate,
    RandomScale,
    l1,
    l2,
    total_variation,
    tv_map,
)


def test_penalties_on_a_flat_grey_picture_are_zero() -> None:
    grey = {"input": torch.full((1, 3, 8, 8), 0.5)}
    for p in (l1(), l2(), total_variation()):
        assert float(p(grey)) == 0.0


def test_tv_of_a_step_edge() -> None:
    img = torch.zeros(1, 1, 4, 4)
    img[..., 2:] = 1.0  # one vertical edge: |dx| = 1 on 4 of the 12 horizontal pairs
    assert float(tv_map(img)) == pytest.approx(4 / 12)


def test_tv_counts_edges_in_both_directions() -> None:
    img = torch.zeros(1, 1, 4, 4)
    img[..., 2:, :] = 1.0  # one horizontal edge: |dy| = 1 on 4 of the 12 vertical pairs
    assert float(tv_map(img)) == pytest.approx(4 / 12)
    assert float(tv_map(img.transpose(-1, -2))) == pytest.approx(4 / 12)


def test_tv_gradcheck() -> None:
    img = torch.rand(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tv_map(x, beta=2.0), (img,))


def test_l1_l2_values() -> None:
    img = {"input": torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)}
    assert float(l1(0.5)(img)) == pytest.approx(0.5)
    assert float(l2(0.5)(img)) == pytest.approx(0.25)


def _robust(seed: int) -> Compose:
    g = torch.Generator().manual_seed(seed)
    return Compose(Pad(4), Jitter(4), RandomScale([0.9, 1.1]), RandomRotate([-10, 10]), GaussianBlur(1.0), generator=g)


def test_same_seed_same_result_other_seed_other_result() -> None:
    x = torch.rand(2, 3, 32, 32)
    a, b, c = _robust(1)(x), _robust(1)(x), _robust(2)(x)
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.equal(a, c)


def test_transforms_keep_batch_channels_dtype_and_pass_gradients() -> None:
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    y = _robust(0)(x)
    assert y.shape[:2] == (2, 3) and y.dtype == torch.float64
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_jitter_crops_by_shift_and_pad_restores_size() -> None:
    x = torch.rand(1, 3, 20, 20)
    assert Compose(Pad(3), Jitter(6))(x).shape == x.shape


def test_blur_smooths_noise() -> None:
    x = torch.rand(1, 3, 32, 32)
    assert float(tv_map(GaussianBlur(1.5)(x))) < 0.5 * float(tv_map(x))


@pytest.mark.parametrize(("scales", "angles"), [([1.0], [0.0]), ([0.9], [0.0]), ([1.1], [0.0]), ([1.0], [10.0])])
def test_random_affine_is_the_chain_of_transforms_in_one_resampling(scales: list[float], angles: list[float]) -> None:
    x = torch.rand(1, 3, 50, 60)  # noise: any misplaced sample shows
    for seed in range(3):
        fused = Compose(RandomAffine(12, 8, scales, angles, 4), generator=torch.Generator().manual_seed(seed))(x)
        chain = Compose(
            Pad(12), Jitter(8), RandomScale(scales), RandomRotate(angles), Jitter(4),
            generator=torch.Generator().manual_seed(seed),
        )(x)  # fmt: skip
        assert fused.shape == chain.shape
        inner = (fused - chain)[..., 16:-16, 16:-16]  # the edges are reflected a little differently
        assert float(inner.abs().max()) < 1e-4


def test_random_affine_scales_and_turns_in_one_pass_close_to_the_chain() -> None:
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 10, 12), size=(50, 60), mode="bicubic")  # a smooth picture
    for seed in range(3):
        fused = Compose(RandomAffine(12, 8, [0.9, 1.1], [-10, 10], 4), generator=torch.Generator().manual_seed(seed))
        chain = Compose(
            Pad(12), Jitter(8), RandomScale([0.9, 1.1]), RandomRotate([-10, 10]), Jitter(4),
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        a, b = fused(x), chain(x)
        # the chain resamples twice, so it is a little blurrier; the places sampled are the same
        assert a.shape == b.shape and float((a - b)[..., 16:-16, 16:-16].abs().mean()) < 0.01


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(
    ("batch", "size", "out"), [(1, (50, 61), (70, 37)), (1, (9, 9), (7, 7)), (2, (30, 30), (33, 31))]
)
def test_warp_is_grid_sample_of_affine_grid(threads: int, batch: int, size: tuple, out: tuple) -> None:
    """The cheaper grid and the bands of rows, one per thread, change neither the picture nor its gradient."""
    from regularizers.transforms import warp

    theta = torch.tensor([[1.1 * 0.96, -0.28, 0.05], [0.28, 0.9 * 0.96, -0.1]], dtype=torch.float64)
    x = torch.rand(batch, 3, *size, requires_grad=True)
    grid = torch.nn.functional.affine_grid(theta.float().expand(batch, 2, 3), [batch, 3, *out], align_corners=False)
    want = torch.nn.functional.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    g = torch.rand_like(want)
    (want_grad,) = torch.autograd.grad(want, x, g)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = warp(x, theta, out)
        (got_grad,) = torch.autograd.grad(got, x, g)
    finally:
        torch.set_num_threads(before)
    assert got.shape == want.shape
    assert float((got - want).detach().abs().max()) < 1e-4
    assert float((got_grad - want_grad).abs().max()) < 1e-4
