"""The sliced Wasserstein style loss: whole feature distributions, not only their second moments."""

from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from objectives import sliced, transfer

LAYER = "features.3"


def _features(seed: int, shape: tuple[int, ...] = (1, 6, 12, 12)) -> torch.Tensor:
    """Sparse, skewed features, as after a ReLU: most values zero, a few large."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(*shape, generator=g) - 0.5) ** 2


def _shuffled(f: torch.Tensor, seed: int = 1) -> torch.Tensor:
    order = torch.randperm(f[0, 0].numel(), generator=torch.Generator().manual_seed(seed))
    return f.flatten(2)[..., order].view_as(f)


def test_zero_for_the_styles_own_features_in_any_order_and_positive_for_others() -> None:
    torch.manual_seed(0)
    style = _features(0)
    loss = sliced({LAYER: [style]})
    for _ in range(4):  # whichever set of directions a step draws
        assert float(loss({LAYER: _shuffled(style)})) < 1e-10
        assert float(loss({LAYER: _features(2)})) > 0.05


def test_sees_what_a_gram_matrix_cannot() -> None:
    """Reflected about their means, skewed features keep every mean and every Gram entry; their distributions differ."""
    torch.manual_seed(0)
    style = _features(0)
    mean = style.mean(dim=(-2, -1), keepdim=True)
    reflected = 2 * mean - style
    assert torch.allclose(reflected.mean(dim=(-2, -1), keepdim=True), mean, atol=1e-6)
    gram = style.flatten(2) @ style.flatten(2).transpose(1, 2)
    assert torch.allclose(reflected.flatten(2) @ reflected.flatten(2).transpose(1, 2), gram, rtol=1e-4, atol=1e-3)
    assert float(sliced({LAYER: [style]})({LAYER: reflected})) > 0.1


def test_a_batch_is_the_mean_of_its_pictures_and_the_run_generator_decides_the_draws() -> None:
    """Each call below starts its own generator from the same seed, so all three pick the same directions."""
    style, a, b = _features(0), _features(1), _features(2)
    values = []
    for x in (a, b, torch.cat([a, b])):
        seeded = sliced({LAYER: [style]}, generator=torch.Generator().manual_seed(3))
        values.append(float(seeded({LAYER: x})))
    assert values[2] == pytest.approx((values[0] + values[1]) / 2, rel=1e-5)


def test_a_sample_of_the_positions_stands_for_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``POSITIONS`` positions a step sorts a random sample, which still finds the style's own features close
    and other features far."""
    monkeypatch.setattr(transfer, "POSITIONS", 400)
    shape = (1, 6, 40, 40)  # 1600 positions
    style = _features(0, shape)
    loss = sliced({LAYER: [style]}, generator=torch.Generator().manual_seed(0))
    own = max(float(loss({LAYER: _shuffled(style, k)})) for k in range(4))  # measured 0.02-0.03
    assert own < 0.06 < float(loss({LAYER: 2 * _features(2, shape)}))


def test_descent_moves_the_features_to_the_styles_distribution() -> None:
    torch.manual_seed(0)
    style, start = _features(0), _features(3, (1, 6, 10, 10))  # any number of positions
    loss = sliced({LAYER: [style]})
    x = start.clone().requires_grad_(True)
    first = float(loss({LAYER: x.detach()}))
    opt = torch.optim.Adam([x], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss({LAYER: x}).backward()
        opt.step()
    assert float(loss({LAYER: x.detach()})) < first / 4  # measured 0.27 to 0.04


def test_layer_weights_are_relative_and_shares_mix_the_styles() -> None:
    torch.manual_seed(0)
    a, b, other = _features(0), _features(1), _features(2)
    acts = {LAYER: other, "features.6": other}
    torch.manual_seed(5)
    one = sliced({LAYER: [a], "features.6": [b]}, {LAYER: 1.0, "features.6": 3.0})(acts)
    torch.manual_seed(5)
    two = sliced({LAYER: [a], "features.6": [b]}, {LAYER: 2.0, "features.6": 6.0})(acts)
    assert torch.allclose(one, two)
    with pytest.raises(UserError, match="positive"):
        sliced({LAYER: [a]}, {LAYER: 0.0})
    torch.manual_seed(5)
    alone = sliced({LAYER: [a]})({LAYER: other})
    torch.manual_seed(5)
    mixed = sliced({LAYER: [a, b]}, shares=[1.0, 0.0])({LAYER: other})  # a share of 0 adds nothing
    assert torch.allclose(alone, mixed)
    half = sliced({LAYER: [a, b]})  # an even mix: half of one, half of the other
    both = torch.cat([a, b], dim=-1)
    assert float(half({LAYER: both})) < 1e-3 < float(half({LAYER: torch.cat([a, a], dim=-1)}))


def test_each_masked_region_matches_its_own_style() -> None:
    torch.manual_seed(0)
    a, b = _features(0, (1, 6, 12, 6)), _features(1, (1, 6, 12, 6)) + 1.0
    left = torch.zeros(1, 1, 24, 24)
    left[..., :12] = 1
    loss = sliced({LAYER: [a, b]}, masks=[left, 1 - left])
    assert float(loss({LAYER: torch.cat([a, b], dim=-1)})) < 1e-10
    assert float(loss({LAYER: torch.cat([b, a], dim=-1)})) > 0.1
