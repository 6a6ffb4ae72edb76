"""Checks of the keys every recipe shares and of the config groups' keys: each bad value is one line naming the key
and what it must be."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from engine.configs import ADDED_SETTINGS, GROUPS, option_file, options, takes
from engine.errors import UserError
from engine.images import MAX_SIDE, SAMPLE_NAMES, expanded, target_size

__all__ = [
    "GIF_MS",
    "absolute_path",
    "absolute_paths",
    "as_typed",
    "check_gif",
    "check_groups",
    "check_list",
    "check_number",
    "check_numbers",
    "check_switch",
    "rate_key",
    "seeded",
]


def check_number(
    cfg: DictConfig, key: str, kind: type = float, low: float = 0, strict: bool = True, high: float = math.inf
) -> float:
    """``cfg[key]`` as a number of ``kind`` above ``low`` (or at least ``low``) and at most ``high``; else one
    :class:`UserError` line."""
    value = cfg.get(key)
    ok = isinstance(value, kind | int) if kind is float else isinstance(value, int)
    ok = ok and not isinstance(value, bool) and _finite(value) and not (isinstance(value, int) and abs(value) >= 2**63)
    ok = ok and (value > low if strict else value >= low) and value <= high
    if not ok:
        need = "a whole number" if kind is int else ("a finite number" if math.isinf(low) else "a number")
        need += "" if math.isinf(low) else f" {'>' if strict else '>='} {low:g}"
        need += "" if math.isinf(high) else f" and at most {high:g}"
        text = _number_as_text(value)
        shown = "null" if value is None else f"'{value}'" if text else value
        fix = f" (it was given as text: write {value} without quotes)" if text else ""
        raise UserError(f"{key}={shown} is not valid; {key} must be {need}{fix}")
    return float(value)


def _number_as_text(value: Any) -> bool:
    """Whether ``value`` is a number given as text (``channel='7'``, ``api.channel(channel="7")``)."""
    try:
        return isinstance(value, str) and float(value) is not None
    except ValueError:
        return False


def check_switch(cfg: DictConfig, key: str) -> bool:
    """``cfg[key]`` as a switch (true or false); else one :class:`UserError` line."""
    _check_kind(key, cfg.get(key), False)
    return bool(cfg.get(key))


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
            shown = as_typed(value)
            need = "whole numbers" if kind is int else "finite numbers"
            bound = "" if math.isinf(low) else f" {'>' if strict else '>='} {low:g}"
            raise UserError(f"{key}={shown} is not valid; {key} must be a list of {need}{bound}") from None


def as_typed(value: Any) -> str:
    """A key's value as the command line writes it: a list as ``[a,b]``, not Python's ``['a', 'b']``."""
    return "[" + ",".join(map(as_typed, value)) + "]" if isinstance(value, ListConfig | list) else str(value)


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
    check_number(cfg, "octave_scale", float, 1)  # even at one octave: a stored run may be rerun with more
    if cfg.get("size") is not None:
        target_size(cfg.size)  # the size's own line, though the recipe may read it late or not at all
    if cfg.get("tile_size") is not None:
        check_number(cfg, "tile_size", int, 63)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not -(2**63) <= cfg.seed < 2**64:
        raise UserError(f"seed={cfg.seed} is not valid; seed must be a whole number that fits in 64 bits")


def rate_key(cfg: DictConfig) -> tuple[str, Any]:
    """The key that set the optimizer's learning rate and its value: ``optimizer.lr`` where it was set apart from the
    recipe's ``lr=`` (which it follows otherwise), else ``lr``."""
    opt = cfg.get("optimizer")
    if isinstance(opt, DictConfig) and "lr" in opt and not OmegaConf.is_interpolation(opt, "lr"):
        return "optimizer.lr", opt.lr
    return "lr", cfg.get("lr")


def _finite(value: float) -> bool:
    """A whole number is finite however long (``math.isfinite`` cannot turn 10**400 into a float to ask)."""
    return isinstance(value, int) or math.isfinite(value)


def seeded(seed: int, offset: int = 0) -> torch.Generator:
    """A generator seeded with ``seed + offset`` taken modulo 2**64, the seeds' range (so a per-frame or per-picture
    offset on the largest seed wraps round instead of overflowing; a negative seed is its two's complement, as torch's
    own ``manual_seed`` reads it)."""
    return torch.Generator().manual_seed((int(seed) + int(offset)) % 2**64)


GIF_MS = (20, 10_000)
"""The shortest and longest time a GIF frame may show, in milliseconds (browsers show faster frames at 100 ms)."""


def check_gif(cfg: DictConfig) -> None:
    """The progress GIF's keys: ``gif_ms`` per frame, at most ``gif_frames`` frames of ``gif_size`` pixels."""
    ms = cfg.get("gif_ms")
    if isinstance(ms, bool) or not isinstance(ms, int) or not GIF_MS[0] <= ms <= GIF_MS[1]:
        raise UserError(f"gif_ms={ms} is not valid; use whole milliseconds per frame from {GIF_MS[0]} to {GIF_MS[1]}")
    check_number(cfg, "gif_frames", int, 1)
    check_number(cfg, "gif_size", int, 15)


ZERO_MEANS_NONE = frozenset({"pad", "shift", "shift_after"})
"""Whole-number group keys where 0 turns a step off; every other positive whole number in an option file (a history,
a size, a count) must stay at least 1."""


def check_groups(cfg: DictConfig) -> None:
    """Each key of the picked config groups (``optimizer.lr``, ``transforms._args_.0.pad`` …) has the kind its option
    file gives it: a finite number where the file has one; a whole number from 1 to :data:`engine.images.MAX_SIDE`
    where it has a positive one (from 0 for the keys of :data:`ZERO_MEANS_NONE`); true or false where it has a
    switch; a non-empty list where it has a list. And the classes the file names (``_target_``) stay the ones it
    names, since only option files choose what is built."""
    picks = cfg.get("choices") or {}
    for group in GROUPS[1:]:
        written, node = option_file(group, picks.get(group)), cfg.get(group)
        if written is not None and isinstance(node, DictConfig):
            _check_tree(cfg, group, node, written, group)
            if not isinstance(written, DictConfig):
                continue
            if group == "optimizer":
                _check_added_settings(node, written, str(picks.get(group)))
            if group == "param":
                _check_param(node, written, str(picks.get(group)))


def _check_param(node: DictConfig, written: DictConfig, pick: str) -> None:
    """The picture's keys: only its option file's (its builder takes no other), each number in its builder's range
    (:data:`engine.params.RANGES`), so a sweep's values are answered before its first job."""
    from engine.params import RANGES, within

    added = [str(k) for k in node if k not in written]
    if added:  # +param.KEY
        own = ", ".join(str(k) for k in written if not str(k).startswith("_")) or "none"
        raise UserError(f"param={pick} has no key '{added[0]}'; its keys: {own}")
    for key in (str(k) for k in node if k in RANGES):
        if isinstance(node[key], int | float) and not isinstance(node[key], bool):
            within(key, node[key])


def _check_added_settings(node: DictConfig, written: DictConfig, pick: str) -> None:
    """Each setting of the optimizer ``node`` beyond its option file's keys (``written``) is one of
    :data:`ADDED_SETTINGS` that the picked optimizer takes; each of those, added or in the file, is in its range."""
    taken = takes(written)
    for key in (str(k) for k in node if k in ADDED_SETTINGS or k not in written):  # sgd's own momentum: the same range
        if key not in written and (key not in ADDED_SETTINGS or key not in taken):
            usable = [k for k in ADDED_SETTINGS if k in taken]
            fix = f"use {', '.join(usable)}" if usable else "it takes none beyond its own keys"
            raise UserError(f"optimizer.{key} is not a setting dreamloom passes to optimizer={pick}; {fix}")
        _check_setting(f"optimizer.{key}", node[key], ADDED_SETTINGS[key])


def _check_setting(name: str, value: Any, rule: Any) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and _finite(v)

    if rule is bool:
        ok, need = isinstance(value, bool), "a switch: true or false"
    elif rule is None:
        ok = isinstance(value, ListConfig) and len(value) == 2 and all(number(v) and 0 <= v < 1 for v in value)
        need = "two numbers from 0 to below 1, like [0.9,0.999]"
    else:
        low, high, closed = rule
        ok = number(value) and (low <= value if closed else low < value) and value <= high
        need = f"a number from {low:g} to {high:g}" if closed else f"a number above {low:g}, at most {high:g}"
    if not ok:
        raise UserError(f"{name}={value} is not valid; {name} must be {need}")


def _check_tree(cfg: DictConfig, name: str, node: Any, default: Any, group: str) -> None:
    """Check ``node`` (the key ``name``) against its option file's ``default``, a subtree or a value."""
    if isinstance(default, DictConfig):
        if not isinstance(node, DictConfig):
            raise UserError(f"{name}={node} is not valid; {name} holds keys ({', '.join(map(str, default))})")
        for key in map(str, default):  # a key that still follows the one its file names (${lr}) is that key's
            if key in node and (key.startswith("_") or _raw(node, key) != _raw(default, key)):
                _check_key(cfg, f"{name}.{key}", node, default, key, group)
    elif isinstance(default, ListConfig):
        if not isinstance(node, ListConfig) or not node:
            raise UserError(f"{name}={node} is not valid; {name} must be a non-empty list like {default}")
        if isinstance(default[0], DictConfig) and len(node) != len(default):
            raise UserError(
                f"{name} has {len(node)} parts where {group}={cfg.choices.get(group)} has {len(default)}; change "
                f"the keys of its parts, or choose another {group}="
            )
        for k, item in enumerate(node):
            _check_tree(cfg, f"{name}.{k}", item, default[min(k, len(default) - 1)], group)
    else:
        _check_kind(name, node, default)


def _raw(node: DictConfig, key: str) -> Any:
    """``node[key]`` unresolved (``${lr}`` as written), or a marker for a plain value (which is always checked)."""
    return node._get_node(key)._value() if OmegaConf.is_interpolation(node, key) else object()  # type: ignore[union-attr]


def _check_key(cfg: DictConfig, name: str, node: DictConfig, default: DictConfig, key: str, group: str) -> None:
    if key.startswith("_"):  # _target_, _partial_, _args_: what gets built is the option file's choice alone
        if OmegaConf.is_interpolation(node, key) and not OmegaConf.is_interpolation(default, key):
            raise UserError(f"{name} cannot be changed; choose {group}= one of {', '.join(options(group))}")
        if key == "_args_":
            _check_tree(cfg, name, node[key], default[key], group)
        elif node[key] != default[key] or type(node[key]) is not type(default[key]):  # 1 == True, yet not a flag
            raise UserError(f"{name} cannot be changed; choose {group}= one of {', '.join(options(group))}")
        return
    try:  # ${…} given on the command line: the value it reads
        value = node[key]
    except OmegaConfBaseException as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{name} cannot be read ({why}); give it a plain value") from None
    if OmegaConf.is_interpolation(default, key):  # ${lr}: the kind of the key it follows, and lr's range
        followed = str(default._get_node(key)._value())[2:-1]  # type: ignore[union-attr]
        _check_kind(name, value, OmegaConf.select(cfg, followed, default=None))
        if followed == "lr":
            check_number(DictConfig({name: value}), name, float, 0)  # the key read as itself: optimizer.lr
        return
    _check_tree(cfg, name, value, default[key], group)


def _check_kind(name: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(
                f"{name}={'null' if value is None else value} is not valid; {name} is a switch: true or false"
            )
    elif isinstance(default, int) and default >= 0:
        low = 0 if default == 0 or name.rsplit(".", 1)[-1] in ZERO_MEANS_NONE else 1
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_SIDE:
            raise UserError(
                f"{name}={value} is not valid; {name} must be a whole number from {low} to {MAX_SIDE} "
                f"(default {default})"
            )
    elif isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool) and _finite(value)
        if not number:
            raise UserError(f"{name}={value} is not valid; {name} must be a finite number (default {default})")
    elif isinstance(default, str) and not isinstance(value, str):
        raise UserError(f"{name}={value} is not valid; {name} must be a name like {default}")


def absolute_paths(cfg: DictConfig, keys: Iterable[str]) -> None:
    """Make the files ``keys`` name (one or a list each) absolute in ``cfg``, so its stored copy finds them from any
    folder."""
    with open_dict(cfg):
        for key in keys:
            value = OmegaConf.select(cfg, key)
            if isinstance(value, ListConfig):
                OmegaConf.update(cfg, key, [absolute_path(v, key) for v in value])
            elif value is not None:
                OmegaConf.update(cfg, key, absolute_path(value, key))


def absolute_path(value: Any, key: str = "path") -> Any:
    """A relative path that exists, made absolute; anything else (a sample name, ``noise``, a number) as it is. A
    sample's bare name stays one beside a folder of that name (a run folder, ``hydra.run.dir=logo style=logo``, or
    any other: ``./logo`` names the folder)."""
    try:
        if not isinstance(value, str) or not value.strip() or Path(value).is_absolute():
            return value  # an empty value stays empty (it is not the working folder)
        found = expanded(value, key)
        if not found.exists() or (found.is_dir() and value in SAMPLE_NAMES):
            return value
    except OSError:
        return value  # not a path this system can use: the key's own check names it
    return str(found.resolve())
