"""Penalties on the picture (L1, L2, total variation), robustness transforms (pad, jitter, scale, rotate, blur) and
flattening into flat colours (L0 gradient smoothing)."""

from regularizers.flat import flat_share, flatten
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
    "flat_share",
    "flatten",
    "l1",
    "l2",
    "total_variation",
    "tv_map",
]
