"""A model's layers as a user picks among them: output shapes, receptive fields, and which are worth visualizing.

A network's *blocks* (MobileNetV2's ``features.N``, ResNet's ``layerK.N``, GoogLeNet's ``inception3a``, VGG's ReLUs)
are the layers whose outputs the feature-visualization literature shows: the module lists also hold every
convolution, batch norm and activation inside each block, which say little on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import UserError
from engine.models import ModelView

__all__ = ["Layer", "layer_rows", "layer_table", "receptive_field"]

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU)
WIDENING = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
"""Modules that widen the receptive field (by their kernel) or spread it (by their stride)."""


@dataclass(frozen=True)
class Layer:
    """One row of ``recipe=layers``."""

    name: str
    kind: str
    shape: tuple[int, ...]
    field: int | None
    """The receptive field's side in input pixels along the network's main path (None for a transformer's layer,
    which sees the whole picture, and for a module that runs several times, whose field differs from call to
    call)."""
    block: bool
    """Whether it is a block output, a layer worth visualizing."""


def layer_table(view: ModelView, hw: tuple[int, int]) -> list[tuple[str, str, tuple[int, ...]]]:
    """Name, module type and output shape of every layer for one picture of size ``hw``, in the order they run."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    seen = view.layout.input_size or hw  # the size the model is given
    handles = []
    for name, module in view.model.named_modules():
        if not name:
            continue

        def fn(m: nn.Module, i: object, o: object, name: str = name) -> None:
            shaped = view.layout.as_map(m, o, seen)  # a transformer's tokens as the map every recipe reads
            if isinstance(shaped, torch.Tensor):
                shapes.setdefault(name, tuple(shaped.shape[1:]))
                calls[name] = calls.get(name, 0) + 1

        handles.append(module.register_forward_hook(fn))
    try:
        with torch.no_grad():
            view(torch.zeros(1, 3, *hw, device=view.device))
    finally:
        for h in handles:
            h.remove()
    modules = dict(view.model.named_modules())
    alias = {module: a for a, module in view.aliases.items()}
    return [
        (n, type(modules[n]).__name__ + (f" ({alias[n]})" if n in alias else "") + _reused(calls[n]), s)
        for n, s in shapes.items()
    ]


def _reused(calls: int) -> str:
    return f" (runs {calls}x)" if calls > 1 else ""


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, tuple | list) else value)


Field = tuple[int, int, float]
"""``(size, jump, start)``: units see ``size`` input pixels, ``jump`` pixels apart, the first centred on ``start``."""
SHORTCUTS = frozenset({"downsample", "shortcut", "proj"})
"""Children that run beside a block's main path (the projection shortcuts of ResNet's blocks, RegNet's and MaxViT's
``proj``): they never widen the field. (Swin's attention also has a ``proj``, a linear layer that widens nothing.)"""


def _widen(module: nn.Module, field: Field) -> Field:
    size, jump, start = field
    k, s, p, d = (_first(getattr(module, a, 1)) for a in ("kernel_size", "stride", "padding", "dilation"))
    return size + (k - 1) * d * jump, jump * s, start + ((k - 1) / 2 * d - p) * jump


def _walk(module: nn.Module, name: str, field: Field, fields: dict[str, Field]) -> Field:
    """The field after ``module`` given the field of its input, recording every submodule's in ``fields``.

    Children run one after another, except a shortcut (which starts from the block's input and is not on the main
    path) and Inception's ``branch*`` children, which run side by side: the widest branch counts."""
    if isinstance(module, WIDENING):
        field = _widen(module, field)
    children = list(module.named_children())
    branches: dict[str, Field] = {}
    for child_name, child in children:
        full = f"{name}.{child_name}" if name else child_name
        if child_name in SHORTCUTS:
            _walk(child, full, field, fields)
        elif child_name.startswith("branch"):  # branch3x3_1 then branch3x3_2 chain; different branches do not
            group = re.sub(r"_\d+[a-z]?$", "", child_name)
            branches[group] = _walk(child, full, branches.get(group, field), fields)
        else:
            field = _walk(child, full, field, fields)
    if branches:
        field = max(branches.values())
    fields[name] = field
    return field


def _fields(model: nn.Module) -> dict[str, Field]:
    """The receptive field of every module's output units, keyed by module name (the network itself: "")."""
    fields: dict[str, Field] = {}
    _walk(model, "", (1, 1, 0.5), fields)
    return fields


def receptive_field(view: ModelView, layer: str) -> tuple[int, int, float]:
    """``(size, jump, start)`` of ``layer``'s units in input pixels: unit ``i`` sees the ``size`` pixels centred on
    ``start + i * jump``. Walks the convolutions and poolings registered up to the layer's end (the main path of a
    sequential model such as MobileNetV2 or VGG; skip connections never widen it)."""
    if view.layout.kind != "nchw":
        raise UserError(
            f"{view.name} is a transformer: every unit of layer {layer} sees the whole picture, so there is no "
            "receptive field to cut a patch by; use a convolutional model such as model=mobilenet_v2"
        )
    fields = _fields(view.model)
    target = view.aliases.get(layer, layer)
    if target not in fields or not target:
        raise UserError(
            f"layer {layer} was not found in {view.name}'s modules (list them with: dreamloom recipe=layers)"
        )
    return fields[target]


def _is_block(name: str, module: nn.Module, modules: dict[str, nn.Module]) -> bool:
    """A block output: a module with parts of its own on the network's main path (a child of the network, or of a
    Sequential that is), or, in a flat Sequential of single layers (VGG, AlexNet), an activation."""
    parent_name = name.rsplit(".", 1)[0] if "." in name else ""
    parent = modules[parent_name]
    on_path = parent_name == "" or (isinstance(parent, nn.Sequential) and "." not in parent_name)
    on_path = on_path or parent_name.endswith("encoder.layers")  # a vision transformer's blocks
    if not on_path or (parent_name == "" and isinstance(module, nn.Sequential)):
        return False  # a stage of the network (ResNet's layer1) is listed as its blocks
    if any(True for _ in module.children()):
        return True
    flat = not any(any(True for _ in c.children()) for c in parent.children())
    return parent_name != "" and flat and isinstance(module, ACTIVATIONS)


def layer_rows(view: ModelView, hw: tuple[int, int]) -> list[Layer]:
    """Every layer of ``view`` for a picture of size ``hw``: name, type, output shape, receptive field, and whether it
    is a block output (a (C, H, W) map of a block)."""
    modules = dict(view.model.named_modules())
    fields = _fields(view.model)
    rows = []
    for name, kind, shape in layer_table(view, hw):
        block = len(shape) == 3 and _is_block(name, modules[name], modules)
        attends = view.layout.kind != "nchw" and not isinstance(modules[name], nn.Conv2d)  # its field: the picture
        rows.append(Layer(name, kind, shape, None if "(runs " in kind or attends else fields[name][0], block))
    return rows
