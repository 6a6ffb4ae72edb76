"""Every model config builds: its weights name exists in torchvision's enum, and the model (with random weights,
since none can be downloaded here) runs forward to its style and content layers."""

from __future__ import annotations

import pytest
import torch

from engine.configs import options
from engine.models import load_model
from engine.weights import _weights_enum
from tests.helpers import compose_recipe


@pytest.mark.slow
@pytest.mark.parametrize("option", options("model"))
def test_every_model_config_builds_and_reaches_its_layers(option: str) -> None:
    node = compose_recipe("style", f"model={option}").model
    weights = _weights_enum(str(node.name), str(node.weights))  # a name the enum lacks is one error line
    assert len(weights.meta["categories"]) == 1000
    view = load_model(str(node.name), "none", device="cpu")
    style = node.get("style") or {}
    layers = [str(layer) for layer in [*(style.get("style_layers") or []), style.get("content_layer")] if layer]
    view.check_layers(layers)
    with torch.no_grad():
        acts = view(torch.rand(1, 3, 112, 112), [*layers, "logits"])
    assert acts["logits"].shape == (1, 1000)
    assert all(acts[layer].dim() == 4 and acts[layer].shape[1] > 0 for layer in layers)
