"""The frozen pass must give autograd's activations and gradients, and step aside wherever it does not apply."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

import engine.models
from engine.frozen_pass import FrozenSegment, plan_of
from engine.models import ModelView, fold_batchnorm, load_model


@pytest.fixture(scope="module")
def view() -> ModelView:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics that make folding and clipping matter
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-0.5, 1.5)
    fold_batchnorm(model)
    return ModelView(model, [str(i) for i in range(1000)]).channels_last()


@pytest.fixture
def segments(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the frozen segments the view runs."""
    count = [0]

    class Counted(FrozenSegment):
        @classmethod
        def apply(cls, *args):  # type: ignore[no-untyped-def,override]
            count[0] += 1
            return FrozenSegment.apply(*args)

    monkeypatch.setattr(engine.models, "FrozenSegment", Counted)
    return count


def _pass(view: ModelView, x: torch.Tensor, layers: list[str], frozen: bool) -> tuple[dict, torch.Tensor]:
    view.frozen_pass = frozen
    try:
        x = x.clone().requires_grad_(True)
        acts = view(x, layers)
        weights = torch.Generator().manual_seed(1)
        loss = sum((a * torch.randn(a.shape, generator=weights)).sum() for a in acts.values())
        loss.backward()  # type: ignore[union-attr]
        assert x.grad is not None
        return {k: v.detach() for k, v in acts.items()}, x.grad
    finally:
        view.frozen_pass = True


@pytest.mark.parametrize(
    ("layers", "pieces"),
    [
        (["features.10"], 1),
        (["features.2.conv.0.0", "features.3", "features.10"], 3),  # a convolution's output, before its ReLU6
        (["features.1", "features.18"], 2),
        (["features.15.conv.1"], 0),  # inside a residual block: autograd's
    ],
)
def test_activations_and_gradients_are_autograds(
    view: ModelView, segments: list[int], layers: list[str], pieces: int
) -> None:
    x = torch.rand(2, 3, 97, 113, generator=torch.Generator().manual_seed(2))  # odd sides: strided output padding
    want, want_grad = _pass(view, x, layers, frozen=False)
    assert segments[0] == 0
    got, got_grad = _pass(view, x, layers, frozen=True)
    assert segments[0] == pieces
    for layer in layers:
        assert torch.allclose(got[layer], want[layer], atol=1e-5 * float(want[layer].abs().max())), layer
    assert torch.allclose(got_grad, want_grad, atol=1e-5 * float(want_grad.abs().max()))
    assert float(want_grad.abs().max()) > 0


def test_a_deeper_layers_gradient_reaches_a_shallower_one(view: ModelView, segments: list[int]) -> None:
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    grads = []
    for frozen in (False, True):
        view.frozen_pass = frozen
        acts = view(x, ["features.4", "features.7"])
        (grad,) = torch.autograd.grad(acts["features.7"].square().sum(), acts["features.4"])
        grads.append(grad)
    assert segments[0] == 2
    assert torch.allclose(grads[0], grads[1], atol=1e-5 * float(grads[0].abs().max()))


def test_covered_calls_take_the_frozen_pass_and_others_autograd(view: ModelView, segments: list[int]) -> None:
    x = torch.rand(1, 3, 64, 64)
    view(x, ["features.10"])
    assert segments[0] == 1
    view(x, ["features.10", "logits"])  # the classifier head is autograd's
    view(x, ["features.5.conv.1"])  # the block's shortcut would cross the boundary
    for module in (view.model.features[3], view.model):  # a hook must see its module run
        handle = module.register_forward_hook(lambda *args: None)
        view(x, ["features.10"])
        handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
    view(x, ["features.10"])  # and so must a hook on every module
    handle.remove()
    with torch.autocast("cpu"):
        view(x, ["features.10"])
    assert segments[0] == 1
    view(x, ["features.10"])
    assert segments[0] == 2


def test_other_models_and_wrapped_edges_are_not_planned(tiny: ModelView, segments: list[int]) -> None:
    assert plan_of(tiny.model) is None
    view = load_model("mobilenet_v2", "none")
    assert view._plan is not None and "features.10" in view._plan.ready
    assert "features.10.conv.1" not in view._plan.ready  # inside a residual block
    view.wrap_edges()
    view(torch.rand(1, 3, 32, 32), ["features.10"])
    assert view._plan is None and segments[0] == 0  # circular padding is autograd's


def test_a_second_backward_says_to_run_the_model_again(view: ModelView) -> None:
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = view(x, ["features.4"])["features.4"].sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="run the model again"):
        loss.backward()


def test_changing_a_returned_activation_in_place_is_an_error(view: ModelView) -> None:
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    act = view(x, ["features.2.conv.0"])["features.2.conv.0"]  # a ReLU6's output, which its backward pass reads
    act.sub_(3)
    with pytest.raises(RuntimeError, match="inplace"):
        act.sum().backward()


def test_a_model_changed_after_loading_is_planned_again() -> None:
    view = load_model("mobilenet_v2", "none")
    x = torch.rand(1, 3, 48, 48)
    view.model.features[0][0].padding_mode = "reflect"
    plain = ModelView(view.model, view.categories)
    plain.frozen_pass = False
    assert torch.equal(view(x, ["features.1"])["features.1"], plain(x, ["features.1"])["features.1"])
    assert view._plan is None  # reflected padding is autograd's
    view = load_model("mobilenet_v2", "none")
    view.model.features[1] = copy.deepcopy(view.model.features[1])  # a module swapped for another
    assert view._plan is not None and view._plan.check() == "changed"
    view(x, ["features.2"])
    assert view._plan is not None and view._plan.check() == "ok"
    view.model.requires_grad_(True)  # weights that want gradients get them through autograd
    view(x, ["features.2"])["features.2"].sum().backward()
    assert view.model.features[0][0].weight.grad is not None
