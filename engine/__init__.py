"""dreamloom's engine: model views, parameterizations, the optimization loop, octaves, exporters and the CLI.

The names below load on first use, so ``dreamloom`` can answer Ctrl-C while torch is still loading
(:mod:`engine.launch`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import UserError
    from engine.loop import NormalizedGradient, optimize
    from engine.models import ModelView, load_model
    from engine.params import fft, pixel

__all__ = ["ModelView", "NormalizedGradient", "UserError", "fft", "load_model", "optimize", "pixel"]

_HOMES = {
    "UserError": "engine.errors",
    "NormalizedGradient": "engine.loop",
    "optimize": "engine.loop",
    "ModelView": "engine.models",
    "load_model": "engine.models",
    "fft": "engine.params",
    "pixel": "engine.params",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'engine' has no attribute '{name}'")
