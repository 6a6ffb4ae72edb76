"""Objectives: values, signs, algebra, batch selection, class lookup and wrong input."""

from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from objectives import (
    Objective,
    channel,
    class_log_prob,
    class_logit,
    deepdream,
    direction,
    diversity,
    guided_dream,
    imagenet_categories,
    inner_positions,
    mean_cosine,
    neuron,
    resolve_class,
)
from objectives.transfer import content, gram


@pytest.fixture
def acts() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"layer": torch.rand(2, 4, 5, 6), "logits": torch.randn(2, 1000)}


def test_channel_is_negative_mean_summed_over_batch(acts: dict[str, torch.Tensor]) -> None:
    want = -acts["layer"][:, 2].mean(dim=(1, 2)).sum()
    assert torch.allclose(channel("layer", 2)(acts), want)
    assert torch.allclose(channel("layer", 2, batch=1)(acts), -acts["layer"][1, 2].mean())


def test_neuron_defaults_to_centre(acts: dict[str, torch.Tensor]) -> None:
    assert torch.allclose(neuron("layer", 1)(acts), -acts["layer"][:, 1, 2, 3].sum())
    assert torch.allclose(neuron("layer", 1, x=0, y=4)(acts), -acts["layer"][:, 1, 4, 0].sum())


def test_a_neuron_names_its_position_whatever_it_is() -> None:
    assert neuron("layer", 3, x=0, y=0).name == "neuron(layer:3 at 0,0)"
    assert neuron("layer", 3, y=5).name == "neuron(layer:3 at centre,5)"


def test_the_gram_matrix_backpropagates_under_autocast() -> None:
    """Under autocast the Gram matrix is bfloat16, so its gradient is too, while the features are float32."""
    x = torch.rand(1, 4, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = (gram(x).float() - 1).square().sum()
    (got,) = torch.autograd.grad(loss, x)
    y = x.detach().requires_grad_(True)
    (want,) = torch.autograd.grad((gram(y) - 1).square().sum(), y)
    assert got.dtype == torch.float32 and torch.allclose(got, want, rtol=0.05, atol=0.02)


def test_a_smoothed_content_term_smooths_its_target_too() -> None:
    """The same features as the target cost nothing, with or without smoothing."""
    target = torch.rand(1, 4, 5, 6) * 3
    for smoothing in ("none", "softmax"):
        assert float(content("layer", target, smoothing=smoothing)({"layer": target.clone()})) < 1e-10


def test_deepdream_is_negative_mean_square(acts: dict[str, torch.Tensor]) -> None:
    want = -acts["layer"].pow(2).flatten(1).mean(1).sum()
    assert torch.allclose(deepdream("layer")(acts), want)


def test_a_guided_dream_pulls_each_position_along_its_best_matching_guide_vector() -> None:
    guide = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # three guide vectors of two channels
    x = torch.tensor([[[[2.0, 0.1]], [[1.0, 3.0]]]], requires_grad=True)  # (1, 2, 1, 2): positions (2, 1), (0.1, 3)
    loss = guided_dream("layer", guide, pull="along")({"layer": x})
    # position 0 matches (1, 0) (cosine 0.89 > 0.45 > -0.89), position 1 matches (0, 1): loss = -(2 + 3) / 2
    assert torch.allclose(loss, torch.tensor(-2.5))
    loss.backward()
    assert x.grad is not None
    assert torch.allclose(x.grad[0, :, 0], -torch.tensor([[1.0, 0.0], [0.0, 1.0]]) / 2)
    with pytest.raises(ValueError, match=r"\(C, M\) with M > 0"):
        guided_dream("layer", torch.zeros(2, 0))


def test_a_guided_dream_matches_by_direction_and_can_pull_toward_the_match() -> None:
    guide = torch.tensor([[10.0, 0.0], [10.0, 1.0]])  # a long vector (10, 10) and a short one (0, 1)
    x = torch.tensor([[[[0.1]], [[1.0]]]], requires_grad=True)  # one position (0.1, 1): the short one's direction
    along = guided_dream("layer", guide, pull="along")({"layer": x})
    assert torch.allclose(along, torch.tensor(-1.0))  # matched (0, 1), not the larger dot product with (10, 10)
    toward = guided_dream("layer", guide, pull="toward", gain=1)({"layer": x})
    assert torch.allclose(toward, torch.tensor(0.5 * 0.1**2))  # half the squared distance to (0, 1)
    toward.backward()
    assert x.grad is not None and torch.allclose(x.grad[0, :, 0, 0], torch.tensor([0.1, 0.0]))
    past = guided_dream("layer", guide)({"layer": x.detach()})  # the default: toward three times the match, (0, 3)
    assert torch.allclose(past, torch.tensor(0.5 * (0.1**2 + 2.0**2)))
    with pytest.raises(UserError, match="guide_pull=sideways"):
        guided_dream("layer", guide, pull="sideways")


def test_a_guided_dream_leaves_out_the_positions_that_see_the_padding() -> None:
    guide = torch.randn(3, 5)
    x = torch.randn(1, 3, 7, 6, requires_grad=True)
    guided_dream("layer", guide)({"layer": x}).backward()
    assert x.grad is not None
    ring = torch.ones(7, 6, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    assert x.grad[0, :, ring].abs().max() == 0 and x.grad[0, :, ~ring].abs().min() > 0
    assert inner_positions(torch.zeros(2, 7, 6)).shape == (2, 5, 4)
    assert inner_positions(torch.zeros(2, 4, 9)).shape == (2, 4, 9)  # a small map is kept whole


def test_direction_matches_channel_for_a_unit_vector(acts: dict[str, torch.Tensor]) -> None:
    assert torch.allclose(direction("layer", [0, 0, 3.0, 0])(acts), channel("layer", 2)(acts))


def test_mean_cosine_counts_every_pair_once() -> None:
    assert float(mean_cosine(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))) == pytest.approx(0.0)
    assert float(mean_cosine(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))) == pytest.approx(1 / 3)


def test_diversity_is_one_for_identical_pictures_and_zero_for_one() -> None:
    same = torch.rand(1, 4, 5, 5).repeat(3, 1, 1, 1)
    assert torch.allclose(diversity("layer")({"layer": same}), torch.tensor(1.0), atol=1e-5)
    assert float(diversity("layer")({"layer": same[:1]})) == 0.0
    mixed = torch.rand(3, 4, 5, 5)
    assert float(diversity("layer")({"layer": mixed})) < 1.0


def test_algebra_combines_values_and_layers(acts: dict[str, torch.Tensor]) -> None:
    a, b = channel("layer", 0), deepdream("layer")
    combo = 2 * a - b / 4 + 1.5
    assert torch.allclose(combo(acts), 2 * a(acts) - b(acts) / 4 + 1.5)
    assert combo.layers == ("layer",)
    assert "channel(layer:0)" in combo.name and "deepdream(layer)" in combo.name
    total = Objective.sum([a, b, class_logit(1)])
    assert torch.allclose(total(acts), a(acts) + b(acts) + class_logit(1)(acts))
    assert set(total.layers) == {"layer", "logits"}
    assert torch.allclose((-a)(acts), -a(acts))


def test_sum_of_nothing_is_rejected() -> None:
    with pytest.raises(ValueError):
        Objective.sum([])


def test_class_names_and_indices_resolve() -> None:
    cats = imagenet_categories()
    assert resolve_class("flamingo", cats) == 130
    assert resolve_class(130, cats) == 130
    assert resolve_class("egyptian_cat", cats) == cats.index("Egyptian cat")
    acts = {"logits": torch.zeros(1, 1000)}
    acts["logits"][0, 130] = 7.0
    assert float(class_logit("flamingo")(acts)) == -7.0


def test_class_log_prob_is_the_log_softmax_and_also_pushes_the_other_classes_down() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
    objective = class_log_prob(0, ["a", "b", "c"])
    loss = objective({"logits": logits})
    expected = 2.0 - torch.tensor([2.0, 1.0, 0.0]).exp().sum().log()
    assert torch.allclose(loss, -expected) and objective.name == "log_prob(a)"
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0, 0] < 0 and (logits.grad[0, 1:] > 0).all()  # descent raises the class, lowers the rest
    plain = torch.zeros(1, 3, requires_grad=True)
    class_logit(0, ["a", "b", "c"])({"logits": plain}).backward()
    assert plain.grad is not None and (plain.grad[0, 1:] == 0).all()  # the logit alone leaves the rest alone
    both = class_logit(0, ["a", "b", "c"], log_prob=30)({"logits": logits})
    assert torch.allclose(both, -2.0 - 30 * expected)  # the logit plus 30 times the log-probability
    two = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    second = class_log_prob(0, ["a", "b", "c"], batch=1)({"logits": two})  # the batch's second picture alone
    assert torch.allclose(second, -two[1].log_softmax(0)[0])


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("flamingoo", "flamingo"), (1000, "out of range"), (-1, "range"), (None, "target=null names no class"),
     (True, "target=true names no class"), (" ", "names no class")],
)  # fmt: skip
def test_bad_class_says_what_to_do(target: object, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        class_logit(target)  # type: ignore[arg-type]


def test_channel_out_of_range_is_a_user_error(acts: dict[str, torch.Tensor]) -> None:
    with pytest.raises(UserError, match="4 channels"):
        channel("layer", 4)(acts)


def test_neuron_outside_the_layer_is_a_user_error(acts: dict[str, torch.Tensor]) -> None:
    with pytest.raises(UserError, match="x=0 to 5"):
        neuron("layer", 0, x=6)(acts)
