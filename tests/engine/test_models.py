"""Model loading: packaged weights, torchvision's cache, helpful failures, normalization, layer names."""

from __future__ import annotations

import copy
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from engine.errors import UserError
from engine.images import load_image, resize_to
from engine.layers import layer_table
from engine.models import IMAGENET_MEAN, IMAGENET_STD, ModelView, load_model, resolve_device


def test_packaged_mobilenet_calls_chelsea_an_egyptian_cat(mobilenet: ModelView) -> None:
    cat = resize_to(load_image("chelsea"), (224, 336))
    with torch.no_grad():
        top = mobilenet(cat)["logits"].argmax(-1).item()
    assert mobilenet.categories[top] == "Egyptian cat"


def test_model_is_frozen_and_in_eval_mode(mobilenet: ModelView) -> None:
    mobilenet.train()
    assert not mobilenet.model.training
    assert not any(p.requires_grad for p in mobilenet.parameters())


def test_own_normalization_matches_torchvision_presets() -> None:
    for weights in (torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, torchvision.models.VGG19_Weights.DEFAULT):
        preset = weights.transforms()
        assert tuple(preset.mean) == pytest.approx(IMAGENET_MEAN)
        assert tuple(preset.std) == pytest.approx(IMAGENET_STD)


def test_unknown_layer_lists_close_names(mobilenet: ModelView) -> None:
    with pytest.raises(UserError, match=r"no layer 'features\.1O'.*features\.10"):
        mobilenet.check_layers(["features.1O"])


def test_unknown_model_lists_close_names() -> None:
    with pytest.raises(UserError, match="mobilenet_v2"):
        load_model("mobilenetv2")


def test_unknown_weights_name_lists_choices() -> None:
    with pytest.raises(UserError, match="IMAGENET1K_V1"):
        load_model("mobilenet_v2", "IMAGENET9K")


def test_random_weights_for_any_torchvision_model() -> None:
    view = load_model("resnet18", "none")
    assert "layer3.1.conv2" in view.layer_names()
    with torch.no_grad():
        out = view(torch.rand(1, 3, 64, 64), ["layer3.1.conv2", "logits"])
    assert out["layer3.1.conv2"].shape == (1, 256, 4, 4) and out["logits"].shape == (1, 1000)


def test_weights_come_from_torchvisions_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / weights.url.rsplit("/", 1)[-1])
    view = load_model("resnet18", "DEFAULT")
    assert torch.equal(view.model.fc.weight, reference.fc.weight)


def test_no_weights_anywhere_says_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError, match=r"model\.checkpoint=.*model\.weights=none"):
        load_model("resnet18", "DEFAULT")


def test_checkpoint_loads_a_state_dict(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "ck.pth")
    view = load_model("resnet18", checkpoint=str(tmp_path / "ck.pth"))
    assert torch.equal(view.model.fc.bias, source.fc.bias)


def test_layer_table_lists_shapes(mobilenet: ModelView) -> None:
    rows = {name: shape for name, _, shape in layer_table(mobilenet, (224, 224))}
    assert rows["features.10"] == (64, 14, 14)
    assert rows["classifier.1"] == (1000,)


def test_folded_batchnorm_and_channels_last_keep_every_activation() -> None:
    """load_model folds each BatchNorm into its convolution and runs channels-last: the numbers must not move."""

    from engine.models import ModelView, fold_batchnorm

    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics, so folding has work to do
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    plain = ModelView(copy.deepcopy(reference), [str(i) for i in range(1000)])
    fast_model = copy.deepcopy(reference)
    assert fold_batchnorm(fast_model) == 52
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast_model.modules())
    fast = ModelView(fast_model, [str(i) for i in range(1000)]).channels_last()
    x = torch.rand(2, 3, 64, 64)
    layers = ["features.3.conv.3", "features.10", "logits"]
    a, b = plain(x, layers), fast(x, layers)
    for layer in layers:
        assert torch.allclose(a[layer], b[layer], rtol=1e-4, atol=1e-4 * float(a[layer].abs().max())), layer


def test_a_step_reuses_its_memory_instead_of_faulting_in_fresh_pages(mobilenet: ModelView) -> None:
    import resource

    from engine.loop import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc: the allocator is left as it is")
    x = torch.rand(1, 3, 236, 236, requires_grad=True)  # the size a 224-px picture reaches the model at, padded

    def step() -> None:
        mobilenet(x, ["features.10"])["features.10"][:, 7].mean().backward()

    for _ in range(5):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    # glibc's defaults give back the heap's top after each step: some 6000 page faults a step at this size
    assert faults < 1000, f"{faults:.0f} page faults a step: freed activations go back to the system"


def test_a_device_this_machine_lacks_is_one_clear_error() -> None:
    for device in ["cuda:99", "meta"] + ([] if torch.backends.mps.is_available() else ["mps"]):
        with pytest.raises(UserError, match=f"device={device} cannot be used.*device=auto"):
            resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu")
