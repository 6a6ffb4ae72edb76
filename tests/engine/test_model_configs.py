"""Every model config builds: its weights name exists in torchvision's enum, and the model (with random weights,
since none can be downloaded here) runs forward to its style and content layers."""

from __future__ import annotations

from pathlib import Path

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


def test_a_picture_cropped_below_a_models_kernel_is_one_line(tmp_path: Path) -> None:
    """AlexNet's last pooling needs more than a 48-px picture's random crops leave: one line naming size= and the
    model, not torch's error (which the size probe before the run does not meet: its crop was larger)."""
    from engine.errors import UserError
    from engine.runner import run_recipe

    cfg = compose_recipe("class", "target=1", "model=alexnet", "model.weights=none", "size=48", "steps=2", "device=cpu")
    with pytest.raises(UserError, match=r"^size=48 is too small for model alexnet: .* use a larger size=$"):
        run_recipe(cfg, tmp_path, "class")
