"""What to maximize or match: composable objectives on a model's activations (all are losses to minimize)."""

from objectives.activation import channel, deepdream, direction, diversity, neuron
from objectives.base import Activations, Objective
from objectives.classes import class_logit, imagenet_categories, resolve_class

__all__ = [
    "Activations",
    "Objective",
    "channel",
    "class_logit",
    "deepdream",
    "direction",
    "diversity",
    "imagenet_categories",
    "neuron",
    "resolve_class",
]
