"""Loading frozen classifiers by name and reading activations at their dotted layer names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from engine.errors import UserError, close_matches
from engine.frozen_pass import FrozenSegment, Plan, fold_batchnorm, plan_of
from engine.tokens import Layout, layout_of
from engine.weights import build_model, packaged_weights

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOGITS",
    "ModelView",
    "classic_names",
    "fold_batchnorm",
    "load_model",
    "packaged_weights",
    "require_map",
    "resolve_device",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOGITS = "logits"
"""The name under which a view hands out the classifier's output."""


class _Captured(Exception):
    """Raised inside a forward hook once every wanted layer has been seen, to skip the rest of the net."""


def classic_names(model: nn.Module) -> dict[str, str]:
    """VGG's classic layer names (``conv1_1``, ``relu4_2``, ``pool5`` …) mapped to torchvision's module names.

    Blocks are counted by max-pooling layers, as Simonyan & Zisserman (2015) and Gatys et al. (2016) number them.
    Models without a plain ``features`` stack of convolutions get no names.
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not any(isinstance(m, nn.Conv2d) for m in features):
        return {}
    names: dict[str, str] = {}
    block, conv = 1, 0
    for index, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = f"features.{index}"
        elif isinstance(module, nn.ReLU):
            names[f"relu{block}_{conv}"] = f"features.{index}"
        elif isinstance(module, nn.MaxPool2d):
            names[f"pool{block}"] = f"features.{index}"
            block, conv = block + 1, 0
        else:
            return {}
    return names


def require_map(out: object, layer: str, use: str) -> torch.Tensor:
    """``out`` (``layer``'s output) if it is spatial maps ``(N, C, H, W)``, else one line saying ``use`` needs one."""
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape, hint = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__, "recipe=layers"
        raise UserError(f"layer {layer} gives {shape}, not a (C, H, W) map; {use} (list them with: dreamloom {hint})")
    return out


class ModelView(nn.Module):
    """A frozen classifier that takes pixels in [0, 1] and returns activations at named layers.

    The ImageNet normalization lives inside the view, weights never need gradients, and a forward pass stops
    right after the deepest layer it was asked for, so early layers never pay for the head.

    Args:
        model: the classifier; it is put in eval mode and frozen.
        categories: class names, index-aligned with the logits.
        name: how the model is called in messages and metrics.
        aliases: other names for layers (VGG's ``relu4_2`` …), alias -> dotted module name.
        mean: per-channel mean of the normalization.
        std: per-channel standard deviation of the normalization.
        layout: how the model's layers lay out their outputs (:class:`~engine.tokens.Layout`); token and
            channels-last outputs are handed out as ``(B, C, H, W)`` maps.
    """

    def __init__(
        self,
        model: nn.Module,
        categories: Sequence[str],
        name: str = "model",
        aliases: dict[str, str] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        layout: Layout | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        for module in model.modules():
            if getattr(module, "inplace", False):
                module.inplace = False  # type: ignore[assignment]  # captured activations must outlive the next layer
        self.categories = list(categories)
        self.name = name
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self._modules_by_name = {n: m for n, m in self.model.named_modules() if n}
        self.aliases = dict(aliases or {})
        self.is_channels_last = False
        self.frozen_pass = True
        """Run the layers :mod:`engine.frozen_pass` covers without autograd's per-layer bookkeeping (the same
        activations and gradients, faster); ``False`` always goes through autograd."""
        self.layout = layout or Layout()
        self._plan: Plan | None = plan_of(self.model) if self.layout.kind == "nchw" else None

    def channels_last(self) -> ModelView:
        """Keep weights and inputs in channels-last memory order (faster convolutions on CPU and GPU)."""
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.is_channels_last = True
        return self

    def train(self, mode: bool = True) -> ModelView:
        """Keep the classifier in eval mode whatever is asked: batch-norm statistics must not move."""
        super().train(False)
        return self

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.mean.device

    def wrap_edges(self) -> None:
        """Pad every convolution circularly, so the picture's edges are seen joined to the opposite ones: what is
        optimized through this view then tiles without a seam."""
        for module in self.model.modules():
            if isinstance(module, nn.Conv2d) and any(int(p) > 0 for p in module.padding):
                module.padding_mode = "circular"

    def layer_names(self) -> list[str]:
        """Dotted names of every module, as ``print(model)`` nests them."""
        return list(self._modules_by_name)

    def check_layers(self, layers: Iterable[str]) -> None:
        """Raise :class:`UserError` naming close matches for any layer this model does not have."""
        for layer in layers:
            if not isinstance(layer, str):
                raise UserError(f"layer {layer} is not a layer name (list them with: dreamloom recipe=layers)")
            if layer != LOGITS and self.aliases.get(layer, layer) not in self._modules_by_name:
                hint = close_matches(layer, [*self._modules_by_name, *self.aliases])
                where = f"{self.name} has no layer '{layer}'" + (f"; {hint}" if hint else "")
                raise UserError(f"model {where} (list them with: dreamloom recipe=layers)")

    def check_maps(self, layers: Iterable[str], use: str, hw: tuple[int, int] = (224, 224)) -> None:
        """:func:`require_map` for every layer on a grey picture of size ``hw`` (a model that cannot run at ``hw``
        at all is left to the run to name)."""
        wanted = list(dict.fromkeys(layers))
        self.check_layers(wanted)
        try:
            with torch.no_grad():
                outs = self(torch.full((1, 3, *hw), 0.5, device=self.device), wanted)
        except RuntimeError:
            return
        for layer in wanted:
            require_map(outs[layer], layer, use)

    def forward(
        self,
        x: torch.Tensor,
        layers: Iterable[str] = (LOGITS,),
        edits: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the model only as deep as the deepest wanted layer.

        Args:
            x: pixels in [0, 1]. Shape: ``(B, 3, H, W)``.
            layers: dotted layer names or aliases, and ``"logits"`` for the classifier output.
            edits: layer -> function applied to that layer's map before the model reads on (it may return more
                copies than it was given: the deeper layers then run on all of them).

        Returns:
            A mapping from each wanted name to its activation (a transformer's as a ``(B, C, H, W)`` map).
        """
        wanted, edits = set(layers), edits or {}
        inner = wanted - {LOGITS}
        ready = None if edits else self._frozen_ready(wanted, x)
        if ready is not None:
            return self._frozen_forward(x, ready)
        out: dict[str, torch.Tensor] = {}
        xn = self._normalized(x)
        hw = (xn.shape[-2], xn.shape[-1])

        def hook(name: str):  # type: ignore[no-untyped-def]
            def fn(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
                if name in out:  # a module run more than once (ResNet's shared relu): read and edited at its first
                    return None
                mapped = self.layout.as_map(module, output, hw)
                shaped: Any = edits[name](mapped) if name in edits else mapped  # type: ignore[arg-type]
                out[name] = shaped
                if LOGITS not in wanted and inner.issubset(out):
                    raise _Captured
                if shaped is output:
                    return None
                return self.layout.as_output(shaped, output) if mapped is not output else shaped

            return fn

        handles = [self.module(n).register_forward_hook(hook(n)) for n in inner | set(edits)]
        try:
            out[LOGITS] = self.model(xn)
        except _Captured:
            pass
        finally:
            for h in handles:
                h.remove()
        unrun = sorted(inner - out.keys())
        if unrun:  # an auxiliary head, used in training only
            raise UserError(f"layer {unrun[0]} does not run when {self.name} classifies a picture; pick another layer")
        return {k: v for k, v in out.items() if k in wanted}

    def module(self, layer: str) -> nn.Module:
        """The module behind a layer name or alias."""
        return self._modules_by_name[self.aliases.get(layer, layer)]

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] as the model was trained on them, in the memory order of its weights."""
        size = self.layout.input_size
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.is_channels_last else x

    def _frozen_ready(self, wanted: set[str], x: torch.Tensor) -> dict[str, int] | None:
        """For each wanted layer, the step of the frozen plan after which it is ready; None where the plan does
        not cover this call (see :mod:`engine.frozen_pass`)."""
        if self._plan is None or not self.frozen_pass or not wanted or LOGITS in wanted:
            return None
        plan = self._plan
        state = plan.check()
        if state == "changed":  # modules swapped, padding or freezing changed: plan again for the calls after this
            self._plan = plan_of(self.model)
        if state != "ok" or torch.is_autocast_enabled(x.device.type):
            return None
        ready = {n: plan.ready.get(self.aliases.get(n, n), -1) for n in wanted}
        return ready if min(ready.values()) >= 0 else None

    def _frozen_forward(self, x: torch.Tensor, ready: dict[str, int]) -> dict[str, torch.Tensor]:
        assert self._plan is not None
        x, out, done = self._normalized(x), {}, 0
        for name, end in sorted(ready.items(), key=lambda item: item[1]):
            if end > done:  # one segment per wanted layer, so a deeper layer's gradient reaches a shallower one
                x, done = FrozenSegment.apply(x, self._plan.steps[done:end]), end
            out[name] = x
        return out


def resolve_device(device: str) -> torch.device:
    """Turn ``auto`` into CUDA, then MPS, then CPU; pass any other torch device string through."""
    if not isinstance(device, str):
        raise UserError(f"device={device} is not a device; use device=auto, cpu or cuda")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"device='{device}' is not a device; use device=auto, cpu or cuda") from None
    missing = None
    if dev.type == "cuda" and not torch.cuda.is_available():
        missing = "no CUDA GPU is available here"
    elif dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        missing = f"this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        missing = "no Apple MPS device is available here"
    elif dev.type not in ("cpu", "cuda", "mps"):
        missing = f"dreamloom runs on cpu, cuda or mps, not {dev.type}"
    if missing:
        raise UserError(f"device={device} cannot be used: {missing}; use device=auto (the best there is) or device=cpu")
    return dev


def load_model(
    name: str = "mobilenet_v2",
    weights: str | None = "DEFAULT",
    checkpoint: str | None = None,
    device: str | torch.device = "cpu",
    fold: bool = True,
) -> ModelView:
    """Build a torchvision classifier by name, load its weights and wrap it in a :class:`ModelView`.

    Weights come from torchvision's cache or download (with its progress bar); MobileNetV2's ImageNet V1 weights
    also come from the offline package when neither has them.

    Args:
        name: a torchvision classification model name (``mobilenet_v2``, ``vgg19``, ``resnet50`` …).
        weights: a weights enum member name, ``DEFAULT``, or ``none`` for random weights.
        checkpoint: path of a state dict to load instead of the named weights.
        device: where the model runs.
        fold: fold batch norms into their convolutions (:func:`fold_batchnorm`): the same activations, faster.
            ``False`` keeps the model as torchvision defines it, for views of its modules and weights.
    """
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        hint = close_matches(name, known)
        raise UserError(f"unknown model '{name}'" + (f"; {hint}" if hint else f"; choose one of {', '.join(known)}"))
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise UserError(f"model.checkpoint={checkpoint} is not a path; give model.checkpoint=path/to/weights.pth")
    model, categories = build_model(name, weights, checkpoint)
    if fold:
        fold_batchnorm(model)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    aliases = classic_names(model) if name.startswith("vgg") else None
    view = ModelView(model, categories, name=name, aliases=aliases, layout=layout_of(name, model))
    return view.to(dev).channels_last()
