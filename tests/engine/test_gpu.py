"""The GPU path: recipes run on CUDA when one is present (skipped on machines without one, as in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.runner import run_recipe
from tests.helpers import compose_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize(
    ("recipe", "overrides"),
    [("channel", ["size=128", "steps=8"]), ("deepdream", ["size=[256,384]", "tile_size=128", "steps=4"])],
)
def test_recipes_run_on_cuda_with_device_auto(tmp_path: Path, recipe: str, overrides: list[str]) -> None:
    run_recipe(compose_recipe(recipe, *overrides, "device=auto"), tmp_path, recipe)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda")
    assert metrics["loss_last"] < metrics["loss_first"]


def test_the_frozen_pass_gives_autograds_gradient_on_cuda() -> None:
    from engine.models import load_model

    view = load_model("mobilenet_v2", "none", device="cuda")
    x = torch.rand(2, 3, 97, 113, device="cuda")
    grads = []
    tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False  # both sides in full fp32
    try:
        for frozen in (False, True):
            view.frozen_pass = frozen
            picture = x.clone().requires_grad_(True)
            view(picture, ["features.10"])["features.10"][:, 7].mean().backward()
            grads.append(picture.grad)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert torch.allclose(grads[0], grads[1], atol=1e-4 * float(grads[0].abs().max()))
