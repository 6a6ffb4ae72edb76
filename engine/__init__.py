"""dreamloom's engine: model views, parameterizations, the optimization loop, octaves, exporters and the CLI."""

from engine.errors import UserError
from engine.loop import NormalizedGradient, optimize
from engine.models import ModelView, load_model
from engine.params import fft, pixel

__all__ = ["ModelView", "NormalizedGradient", "UserError", "fft", "load_model", "optimize", "pixel"]
