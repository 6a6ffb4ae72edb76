"""Checks of the keys every recipe shares and of the config groups' keys: each bad value is one line naming the key
and what it must be."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.configs import GROUPS
from engine.errors import UserError
from recipes import CONFIG_DIR

__all__ = ["GIF_MS", "check_gif", "check_groups", "check_list", "check_number", "check_numbers"]


def check_number(cfg: DictConfig, key: str, kind: type = float, low: float = 0, strict: bool = True) -> float:
    """``cfg[key]`` as a number of ``kind`` above ``low`` (or at least ``low``); else one :class:`UserError` line."""
    value = cfg.get(key)
    ok = isinstance(value, kind | int) if kind is float else isinstance(value, int)
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        need = "a whole number" if kind is int else ("a finite number" if math.isinf(low) else "a number")
        need += "" if math.isinf(low) else f" {'>' if strict else '>='} {low:g}"
        raise UserError(f"{key}={value} is not valid; {key} must be {need}")
    return float(value)


def check_list(cfg: DictConfig, key: str, kind: type = float, low: float = 0, strict: bool = True) -> None:
    """Each number of the list ``cfg[key]`` (or the one number it holds) as :func:`check_number` wants it; None
    passes (the recipe's default)."""
    value = cfg.get(key)
    if value is None:
        return
    items = list(value) if isinstance(value, ListConfig) else [value]
    for item in items:
        try:
            check_number(DictConfig({key: item}), key, kind, low, strict)
        except UserError:
            shown = "[" + ",".join(map(str, items)) + "]" if isinstance(value, ListConfig) else str(value)
            need = "whole numbers" if kind is int else "finite numbers"
            bound = "" if math.isinf(low) else f" {'>' if strict else '>='} {low:g}"
            raise UserError(f"{key}={shown} is not valid; {key} must be a list of {need}{bound}") from None


def check_numbers(cfg: DictConfig) -> None:
    """Reject impossible numbers (zero steps, negative sizes, NaN rates …) with one line each."""
    for key in ("steps", "batch", "octaves"):
        check_number(cfg, key, int, 0)
    check_number(cfg, "lr", float, 0)
    check_number(cfg, "snapshot_every", int, 0, strict=False)
    check_gif(cfg)
    check_number(cfg, "checkpoint_every", int, 0, strict=False)
    for key in ("tv", "l1", "l2"):
        check_number(cfg, key, float, 0, strict=False)
    if cfg.octaves > 1:
        check_number(cfg, "octave_scale", float, 1)
    if cfg.get("tile_size") is not None:
        check_number(cfg, "tile_size", int, 63)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not -(2**63) <= cfg.seed < 2**64:
        raise UserError(f"seed={cfg.seed} is not valid; seed must be a whole number that fits in 64 bits")


GIF_MS = (20, 10_000)
"""The shortest and longest time a GIF frame may show, in milliseconds (browsers show faster frames at 100 ms)."""


def check_gif(cfg: DictConfig) -> None:
    """The progress GIF's keys: ``gif_ms`` per frame, at most ``gif_frames`` frames of ``gif_size`` pixels."""
    ms = cfg.get("gif_ms")
    if isinstance(ms, bool) or not isinstance(ms, int) or not GIF_MS[0] <= ms <= GIF_MS[1]:
        raise UserError(f"gif_ms={ms} is not valid; use whole milliseconds per frame from {GIF_MS[0]} to {GIF_MS[1]}")
    check_number(cfg, "gif_frames", int, 1)
    check_number(cfg, "gif_size", int, 15)


def check_groups(cfg: DictConfig) -> None:
    """Each key of the picked config groups (``optimizer.lr``, ``param.decay`` …) has the kind its option file
    gives it: a finite number where the file has a number, true or false where it has a switch."""
    picks = cfg.get("choices") or {}
    for group in GROUPS[1:]:
        option = Path(CONFIG_DIR) / group / f"{picks.get(group)}.yaml"
        node = cfg.get(group)
        if not option.is_file() or not isinstance(node, DictConfig):
            continue
        defaults = OmegaConf.load(option)
        assert isinstance(defaults, DictConfig)
        for key in map(str, defaults):
            if key.startswith("_") or key not in node or OmegaConf.is_interpolation(node, key):
                continue
            default = defaults._get_node(key)._value()  # type: ignore[union-attr]
            if OmegaConf.is_interpolation(defaults, key):  # ${lr}: the kind of the key it follows
                default = OmegaConf.select(cfg, str(default)[2:-1], default=None)
            _check_kind(f"{group}.{key}", node[key], default)


def _check_kind(name: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{name}={value} is not valid; {name} is a switch: true or false")
    elif isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not number:
            raise UserError(f"{name}={value} is not valid; {name} must be a finite number (default {default})")
