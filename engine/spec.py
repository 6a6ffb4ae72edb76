"""What a recipe function declares about its keys: :func:`recipe` marks it, :class:`RecipeSpec` holds what it said."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.checks import as_typed
from engine.configs import recipe_defaults
from engine.errors import UserError
from engine.results import RunResult

__all__ = [
    "NO_PICTURE",
    "NO_PROGRESS",
    "WITH_VALUES",
    "RecipeSpec",
    "change",
    "given",
    "plain",
    "recipe",
    "refuse_unread",
    "unread",
    "unread_keys",
    "views",
]

NO_PICTURE = dict.fromkeys(
    ("init", "steps", "batch", "lr", "octaves", "octave_scale", "checkpoint_every", "param", "transforms", "optimizer"),
    "it optimizes no picture",
)
"""The shared keys of optimizing a picture, for the ``ignores`` of a recipe that optimizes none."""
NO_PROGRESS = dict.fromkeys(("snapshot_every", "gif_ms", "gif_size", "gif_frames"), "it writes no progress.gif")
"""The shared keys of ``progress.gif``, for the ``ignores`` of a recipe that writes none."""


def unread(keys: Iterable[str], why: str, but: Iterable[str] = ()) -> dict[str, str]:
    """``ignores`` for ``keys`` (but those in ``but``), each refused with the reason ``why``."""
    return {k: why for k in keys if k not in set(but)}


def views(*but: str) -> dict[str, str]:
    """``ignores`` for a recipe that optimizes no picture and writes no ``progress.gif``: the shared keys of both
    (but those in ``but``, which it reads for its own ends, such as saliency's ``steps``)."""
    return {k: v for k, v in {**NO_PICTURE, **NO_PROGRESS}.items() if k not in but}


@dataclass(frozen=True)
class RecipeSpec:
    """What a recipe function declares about its own keys (see :func:`recipe`)."""

    paths: tuple[str, ...] = ()
    numbers: Mapping[str, tuple[type, float, bool]] = field(default_factory=dict)
    penalties: bool = True
    lists: Mapping[str, tuple[type, float, bool]] = field(default_factory=dict)
    objective: bool = False
    ignores: Mapping[str, str] = field(default_factory=dict)


def recipe(
    paths: tuple[str, ...] = (),
    numbers: Mapping[str, tuple[type, float, bool]] | None = None,
    penalties: bool = True,
    lists: Mapping[str, tuple[type, float, bool]] | None = None,
    objective: bool = False,
    ignores: Iterable[str] | Mapping[str, str] = (),
) -> Callable[[Callable[..., RunResult]], Callable[..., RunResult]]:
    """Mark a recipe function and declare its keys.

    Args:
        paths: keys that name files or folders; made absolute before the run, so a rerun finds them from anywhere.
        numbers: keys that must be numbers, as ``(kind, low, strict)``: ``int`` or ``float``, above ``low``
            (``strict``) or at least ``low``. Checked before the run when set (a ``null`` key is the recipe's).
        penalties: whether the recipe honours ``tv``, ``l1`` and ``l2`` (every recipe that optimizes a picture
            freely does); one that does not refuses them with one line.
        lists: keys that hold a list of numbers, each checked as ``numbers`` are.
        objective: whether the recipe builds the ``objective`` key; one that does not refuses a given one.
        ignores: shared keys or config groups the recipe does not read; one given a value other than the recipe's
            default is refused with one line. As a mapping, each key's value is said beside the refusal (why, or
            what the user likely meant instead).
    """

    def mark(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
        hints = dict(ignores) if isinstance(ignores, Mapping) else dict.fromkeys(ignores, "")
        spec = RecipeSpec(tuple(paths), dict(numbers or {}), penalties, dict(lists or {}), objective, hints)
        fn.recipe_spec = spec  # type: ignore[attr-defined]
        return fn

    return mark


def plain(value: Any, resolve: bool = True) -> Any:
    """A config node as plain Python values (resolved, or keeping references such as ``${lr}``); any other value as
    it is."""
    return OmegaConf.to_container(value, resolve=resolve) if isinstance(value, DictConfig | ListConfig) else value


WITH_VALUES = {*NO_PICTURE, *NO_PROGRESS, "size"}
"""The shared keys that hold a value by default: given or not, only the recipe's own default tells."""


def change(value: Any, default: Any, path: str) -> str | None:
    """``path.key=value`` for the first place ``value`` departs from ``default`` (down into groups and their lists),
    or None. A group key that follows a shared key in both (``optimizer.lr: ${lr}``) is that key's, not the group's."""
    if isinstance(value, DictConfig) and isinstance(default, DictConfig):
        follow = {str(k) for k in default if OmegaConf.is_interpolation(default, str(k))}
        follow &= {str(k) for k in value if OmegaConf.is_interpolation(value, str(k))}
        keys = [str(k) for k in dict.fromkeys([*value, *default]) if str(k) not in follow]
        return next((c for k in keys if (c := change(value.get(k), default.get(k), f"{path}.{k}"))), None)
    if isinstance(value, ListConfig) and isinstance(default, ListConfig) and len(value) == len(default):
        pairs = ((value[i], default[i], f"{path}.{i}") for i in range(len(value)))
        return next((c for a, b, where in pairs if (c := change(a, b, where))), None)
    return None if plain(value) == plain(default) else f"{path}={as_typed(plain(value))}"


def given(cfg: DictConfig, key: str, defaults: DictConfig | None) -> bool:
    """Whether ``cfg`` sets ``key`` apart from ``defaults`` (the recipe's own config). Without them (a config that
    names no recipe of the project's), only a key null by default shows it was given."""
    if defaults is None or key not in defaults:
        return cfg.get(key) is not None and key not in WITH_VALUES and not isinstance(cfg.get(key), DictConfig)
    return change(cfg.get(key), defaults.get(key), key) is not None


def unread_keys(cfg: DictConfig, spec: RecipeSpec, defaults: DictConfig | None) -> list[str]:
    """The keys ``cfg`` gives that the recipe does not read: its ``ignores``, and ``objective`` unless it builds one,
    each set apart from ``defaults`` (the recipe's own config)."""
    keys = (*spec.ignores, *(() if spec.objective else ("objective",)))
    return [k for k in keys if cfg.get(k) is not None and given(cfg, k, defaults)]


def _shown(cfg: DictConfig, key: str) -> str:
    """``key=value`` as given; a group as its pick (``param=cppn``), or as its first key given apart from the recipe's
    default (``param.decay=2``)."""
    value, defaults = cfg[key], recipe_defaults(cfg)
    pick = (cfg.get("choices") or {}).get(key)
    if isinstance(value, DictConfig) and defaults is not None and pick == (defaults.get("choices") or {}).get(key):
        return change(value, defaults.get(key), key) or f"{key}={pick}"
    return f"{key}={pick}" if isinstance(value, DictConfig) else f"{key}={as_typed(value)}"


def refuse_unread(cfg: DictConfig, spec: RecipeSpec, recipe: str) -> None:
    """One line naming the keys ``cfg`` gives that ``recipe`` does not read (:func:`unread_keys`), if any. The
    recipe's defaults are composed only where a key it ignores holds a value (never for most optimizing recipes)."""
    held = any(cfg.get(k) is not None for k in (*spec.ignores, "objective"))
    unread = unread_keys(cfg, spec, recipe_defaults(cfg)) if held else []
    if unread:
        keys = " and ".join(f"{k}=" for k in unread)
        shown, them = " ".join(_shown(cfg, k) for k in unread), "them" if len(unread) > 1 else "it"
        hints = "; ".join(dict.fromkeys(h for h in (spec.ignores.get(k) for k in unread) if h))
        raise UserError(f"recipe={recipe} does not read {keys}, so {shown} would do nothing; drop {them}"
                        + (f" ({hints})" if hints else ""))  # fmt: skip
