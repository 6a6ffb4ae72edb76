"""Hydra configs: one group per pluggable part (model, param, transforms, optimizer) and one file per recipe."""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent)
"""Absolute path of this folder, the Hydra config directory."""

__all__ = ["CONFIG_DIR"]
