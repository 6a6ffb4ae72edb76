"""The GPU path: recipes run on CUDA when one is present (skipped on machines without one, as in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.runner import run_recipe
from tests.test_recipes import compose_recipe

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
