"""Penalties on the picture (L1, L2, total variation) and robustness transforms (pad, jitter, scale, rotate, blur)."""

from regularizers.penalties import l1, l2, total_variation, tv_map
from regularizers.transforms import (
    Compose,
    GaussianBlur,
    Jitter,
    Pad,
    RandomAffine,
    RandomRotate,
    RandomScale,
    Roll,
    Transform,
)

__all__ = [
    "Compose",
    "GaussianBlur",
    "Jitter",
    "Pad",
    "RandomAffine",
    "RandomRotate",
    "RandomScale",
    "Roll",
    "Transform",
    "l1",
    "l2",
    "total_variation",
    "tv_map",
]
