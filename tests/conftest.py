"""Shared fixtures: a tiny CPU CNN for fast unit tests and the packaged MobileNetV2 for integration tests."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of several workers sharing the cores: one thread each, children too
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest
import torch
from torch import nn

from engine.models import ModelView, load_model

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Three conv layers and a linear head; layer names mimic torchvision (``features.0`` …)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny() -> ModelView:
    torch.manual_seed(0)
    return ModelView(TinyNet(), [f"class{i}" for i in range(5)], name="tiny")


@pytest.fixture(scope="session")
def mobilenet() -> ModelView:
    return load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")


@pytest.fixture(autouse=True, scope="session")
def _sample_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The sample folder and clip are made once per test session in a folder of its own, not in the user's cache."""
    import os

    os.environ["DREAMLOOM_CACHE"] = str(tmp_path_factory.mktemp("dreamloom-cache"))
