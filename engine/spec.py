"""What a recipe function declares about its keys: :func:`recipe` marks it, :class:`RecipeSpec` holds what it said."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from omegaconf import DictConfig

from engine.results import RunResult

__all__ = ["RecipeSpec", "recipe", "unread_keys"]


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
        ignores: shared keys (null by default) the recipe does not read; a given one is refused with one line. As a
            mapping, each key's value is said beside the refusal (what the user likely meant instead).
    """

    def mark(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
        hints = dict(ignores) if isinstance(ignores, Mapping) else dict.fromkeys(ignores, "")
        spec = RecipeSpec(tuple(paths), dict(numbers or {}), penalties, dict(lists or {}), objective, hints)
        fn.recipe_spec = spec  # type: ignore[attr-defined]
        return fn

    return mark


def unread_keys(cfg: DictConfig, spec: RecipeSpec) -> list[str]:
    """The keys ``cfg`` gives that the recipe does not read: its ``ignores``, and ``objective`` unless it builds one."""
    return [k for k in (*spec.ignores, *(() if spec.objective else ("objective",))) if cfg.get(k) is not None]
