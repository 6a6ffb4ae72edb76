"""Transformer layers seen as maps: the outputs of a vision transformer's blocks are tokens ``(B, N, C)`` and a Swin
transformer's are channels-last ``(B, H, W, C)``; every view, objective and recipe of dreamloom reads a layer as a map
``(B, C, H, W)``. :class:`Layout` turns one into the other and back, so a map can also be edited on its way through.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops.misc import Permute

__all__ = ["Layout", "layout_of"]

_TO_CHANNELS_FIRST = [0, 3, 1, 2]


@dataclass(frozen=True)
class Layout:
    """How a model's layers lay out their outputs.

    Attributes:
        kind: ``nchw`` (convolutional nets: nothing to do), ``tokens`` (ViT: ``(B, N, C)``, the class token first when
            ``N`` is one more than the patch grid) or ``nhwc`` (Swin: channels last).
        patch: the side of a ViT patch, from which the grid of a picture's tokens follows.
        input_size: the one picture size the model accepts (ViT); pictures of another size are resized to it on the
            way in. None: any size.
    """

    kind: str = "nchw"
    patch: int = 0
    input_size: tuple[int, int] | None = None

    def as_map(self, module: nn.Module, output: object, hw: tuple[int, int]) -> object:
        """The module's output as ``(B, C, H, W)`` when it is a token or channels-last tensor, else as it is.
        ``hw`` is the size of the picture the model was given."""
        if not isinstance(output, torch.Tensor):
            return output
        if self.kind == "tokens" and output.dim() == 3 and self.patch:
            gh, gw = hw[0] // self.patch, hw[1] // self.patch
            n = output.shape[1]
            if n in (gh * gw, gh * gw + 1):
                return output[:, n - gh * gw :].transpose(1, 2).unflatten(2, (gh, gw))
        if self.kind == "nhwc" and output.dim() == 4 and _channels_last_out(module):
            return output.permute(*_TO_CHANNELS_FIRST)
        return output

    def as_output(self, shaped: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`as_map` on a (perhaps edited, perhaps larger-batched) map, so the model reads it on."""
        if self.kind == "tokens":
            tokens = shaped.flatten(2).transpose(1, 2)
            if output.shape[1] > tokens.shape[1]:  # the class token rides along unchanged
                first = output[:, :1]
                first = (
                    first.expand(len(tokens), -1, -1)
                    if len(first) == 1
                    else first.repeat_interleave(len(tokens) // len(first), 0)
                )
                tokens = torch.cat([first, tokens], dim=1)
            return tokens.contiguous()
        return shaped.permute(0, 2, 3, 1).contiguous()


def _channels_last_out(module: nn.Module) -> bool:
    """In a Swin model every module gives channels-last maps except the convolution that cuts the patches, the
    pooling at the end and the permutation back to channels-first before it."""
    if isinstance(module, nn.Conv2d | nn.AdaptiveAvgPool2d):
        return False
    return not (isinstance(module, Permute) and list(module.dims) == _TO_CHANNELS_FIRST)


def layout_of(name: str, model: nn.Module) -> Layout:
    """The layout of a torchvision model by its name: ``vit_*`` give tokens at one input size, ``swin_*``
    channels-last maps; every other model gives maps already."""
    if name.startswith("vit_"):
        size = int(getattr(model, "image_size", 224))
        return Layout("tokens", int(getattr(model, "patch_size", 16)), (size, size))
    if name.startswith("swin_"):
        return Layout("nhwc")
    return Layout()
