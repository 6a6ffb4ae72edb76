"""Hydra configs: one group per pluggable part (model, param, transforms, optimizer) and one file per recipe."""

import os
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parent)
"""Absolute path of this folder, the Hydra config directory."""


def options(group: str) -> list[str]:
    """The options of a config group, as their file names under ``recipes/GROUP/`` (``options("recipe")``: every
    recipe)."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def parallel_jobs() -> int:
    """Jobs a local sweep runs at once: one per two cores (each job's torch uses two threads), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


OmegaConf.register_new_resolver("dreamloom_jobs", parallel_jobs, replace=True)

__all__ = ["CONFIG_DIR", "options", "parallel_jobs"]
