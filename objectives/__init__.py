"""What to maximize or match: composable objectives on a model's activations (all are losses to minimize)."""

from objectives.activation import (
    channel,
    channel_list,
    channels,
    deepdream,
    direction,
    diversified,
    diversity,
    guided_dream,
    interpolation,
    mean_cosine,
    neuron,
)
from objectives.base import Activations, Objective
from objectives.classes import class_logit, imagenet_categories, resolve_class
from objectives.transfer import (
    blend_weights,
    content,
    feature_targets,
    gram,
    histogram,
    inversion,
    smooth,
    style,
    style_grams,
    temporal,
)

__all__ = [
    "Activations",
    "Objective",
    "blend_weights",
    "channel",
    "channel_list",
    "channels",
    "class_logit",
    "content",
    "deepdream",
    "direction",
    "diversified",
    "diversity",
    "feature_targets",
    "gram",
    "guided_dream",
    "histogram",
    "imagenet_categories",
    "interpolation",
    "inversion",
    "mean_cosine",
    "neuron",
    "resolve_class",
    "smooth",
    "style",
    "style_grams",
    "temporal",
]
