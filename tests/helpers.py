"""The one compose helper and the one run helper of the tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from engine.configs import compose
from engine.runner import run_recipe


def compose_recipe(name: str, *overrides: str) -> DictConfig:
    """Recipe ``name`` composed from the project's configs with command-line style ``overrides``."""
    return compose([f"recipe={name}", *overrides])


def run(folder: Path, name: str, *overrides: str) -> dict[str, Any]:
    """Run recipe ``name`` on the CPU into ``folder`` and return its metrics."""
    return run_recipe(compose_recipe(name, "device=cpu", *overrides), folder, name).metrics
