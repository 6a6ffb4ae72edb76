"""Rebuilding a stored config (a picture's or a checkpoint's): data, never code.

:func:`rebuild` composes the recipe from the project's own YAML files and copies only plain values (numbers, text,
lists of them) from the stored one. A stored ``_target_`` the project's configs do not name, or an interpolation
(``${...}``), is refused with one line; so is a change given to ``rerun`` that would build a class.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from engine.configs import (
    ABSENT,
    ADDED_SETTINGS,
    FORMER,
    GROUPS,
    SPECIAL,
    SWEEP_HINT,
    compose,
    lookup,
    option_file,
    recipes,
    refuse_missing,
    takes,
    unknown_key,
)
from engine.errors import RUN_NAME, UserError, close_matches, one_line
from engine.export import check_plain_yaml
from recipes import options

__all__ = ["RERUN_KEYS", "rebuild"]


def _refuse(source: str, path: str, what: str) -> UserError:
    return UserError(
        f"'{source}' stores {what} at {path or 'its top'}, which dreamloom's own configs do not name, so it was not "
        "run; start the recipe by name instead (dreamloom recipe=NAME ...)"
    )


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _resolvable(value: Any) -> bool:
    """Whether a plain value holds ``${`` anywhere, in a list inside a list too: OmegaConf would resolve it."""
    if isinstance(value, list):
        return any(_resolvable(v) for v in value)
    return isinstance(value, str) and "${" in value


Pinned = list[tuple[DictConfig, str, Any]]
"""Stored values of keys that follow another (``optimizer.lr: ${lr}``), to set where the stored run had changed them."""


def _overlay(
    fresh: DictConfig, stored: dict[str, Any], source: str, path: str, left: list[str], pinned: Pinned
) -> None:
    """Copy the plain values of ``stored`` onto ``fresh`` where ``fresh`` has the same key; check the rest."""
    for key, value in stored.items():
        where = f"{path}.{key}" if path else str(key)
        if key == "_args_" and isinstance(fresh.get(key), ListConfig):
            _overlay_args(fresh[key], value, source, where, left, pinned)
            continue
        if key in SPECIAL:
            if key == "_target_" and fresh.get("_target_") != value:
                raise _refuse(source, where, f"the target '{value}'")
            continue
        if key not in fresh:
            if path == "optimizer" and _added_setting(fresh, key) and _plain(value) and not _resolvable(value):
                with open_dict(fresh):  # +optimizer.weight_decay=…: a plain value, checked as the run's own was
                    fresh[key] = value
            else:
                left.append(where)
            continue
        follows = OmegaConf.is_interpolation(fresh, key)  # it follows the key it names (optimizer.lr follows lr)
        here = None if follows else fresh[key]
        if isinstance(value, dict):
            if not isinstance(here, DictConfig):
                raise _refuse(source, where, "a mapping")
            _overlay(here, value, source, where, left, pinned)
            continue
        if not _plain(value) or isinstance(here, DictConfig) or _holds_targets(here):
            raise _refuse(source, where, "a structure")
        if _resolvable(value):
            raise _refuse(source, where, "an interpolation")
        if where == "name" and not (isinstance(value, str) and RUN_NAME.fullmatch(value)):
            continue  # the run folder is named after it: the recipe's own name, not a path or a control character
        if follows:
            pinned.append((fresh, str(key), value))
        else:
            fresh[key] = value


def _added_setting(optimizer: DictConfig, key: str) -> bool:
    """Whether ``key`` is a setting a run may add to this optimizer (:data:`engine.checks.ADDED_SETTINGS`, where the
    project's own option names a class that takes it)."""
    return key in ADDED_SETTINGS and key in takes(optimizer)


def _overlay_args(fresh: ListConfig, stored: Any, source: str, path: str, left: list[str], pinned: Pinned) -> None:
    """A part's positional arguments (``transforms._args_``: its transforms in order), item by item: each mapping
    overlaid as :func:`_overlay` does (its target must be the project's), each plain value copied."""
    if not isinstance(stored, list) or len(stored) != len(fresh):
        left.append(f"{path} (an older list of parts; today's is used)")
        return
    for i, value in enumerate(stored):
        where = f"{path}.{i}"
        if isinstance(value, dict) and isinstance(fresh[i], DictConfig):
            _overlay(fresh[i], value, source, where, left, pinned)
        elif not _plain(value) or isinstance(fresh[i], DictConfig | ListConfig) or _resolvable(value):
            raise _refuse(source, where, "a structure")
        else:
            fresh[i] = value


def _holds_targets(node: Any) -> bool:
    return isinstance(node, ListConfig) and any(isinstance(v, DictConfig) for v in node)


def rebuild(text: str, source: str, changes: Sequence[str] = ()) -> DictConfig:
    """The run a stored config describes, rebuilt from the project's own configs and the stored plain values.

    Args:
        text: the stored config (YAML), as a picture or checkpoint carries it.
        source: where it came from, for the error lines.
        changes: ``key=value`` to apply on top; a config group (``model=vgg16``) picks its option anew.

    Raises:
        UserError: the text is not a config, names an unknown recipe, a foreign target or an interpolation.
    """
    raw: Any = None
    try:
        check_plain_yaml(text)
        raw = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError):
        pass
    if not isinstance(raw, dict):
        raise UserError(f"'{source}' carries no dreamloom config; pass what a dreamloom run wrote")
    stored: dict[str, Any] = {str(k): v for k, v in raw.items()}
    picks = stored.pop("choices", None)
    picks = picks if isinstance(picks, dict) else _guess_choices(stored)
    recipe = picks.get("recipe")
    if recipe not in recipes():
        raise UserError(f"'{source}' names no recipe dreamloom has ({recipe!r}); start the recipe by name instead")
    changed = {c.split("=", 1)[0] for c in changes}
    args = [f"recipe={recipe}"]
    former: dict[str, Any] = {}
    for group in GROUPS[1:]:
        if group in changed:
            former[group] = stored.pop(group, None)  # picked anew: nothing of the stored option is kept
        elif picks.get(group) in options(group):
            args.append(f"{group}={picks[group]}")
    groups = [c for c in changes if c.split("=", 1)[0] in GROUPS[1:]]
    try:
        cfg = compose([*args, *groups])
    except UserError as e:  # a rerun runs one job: -m is not for it
        raise UserError(str(e).replace(SWEEP_HINT, "; a rerun runs one job: give one value")) from None
    left: list[str] = []
    pinned: Pinned = []
    _overlay(cfg, stored, source, "", left, pinned)
    for node, key, value in pinned:  # a key that follows another keeps following it, unless the run had set it
        with contextlib.suppress(OmegaConfBaseException):
            if node[key] != value:
                node[key] = value
    for key, value in FORMER.items():
        if key in cfg and key not in stored:
            cfg[key] = value
    if cfg.get("resume") is not None:  # a picture of a resumed run: its rerun starts afresh, not where that one was
        cfg.resume = None
    _apply(cfg, [c for c in changes if c not in groups])
    refuse_missing(cfg)  # ??? stored or given: the run's keys are read before it runs (its name, its seed)
    stale = [k for k in left if k != "task"]  # task: the key that named a recipe's code before run= did
    if stale:  # said once the rerun is sure to run, so a refused one stays one line
        print(
            one_line(f"dreamloom: {source}: keys this recipe no longer has were left out: {', '.join(stale)}"),
            file=sys.stderr,
        )
    _note_dropped(cfg, former, picks, source)
    return cfg


def _note_dropped(cfg: DictConfig, former: dict[str, Any], picks: dict[str, Any], source: str) -> None:
    """Say which settings the stored run had changed or added in a group now picked anew (``optimizer=sgd``) the
    new option does not keep: its own values, or none, stand in their place."""
    dropped = []
    for group, node in former.items():
        was = option_file(group, picks.get(group))  # the stored run's option, as its file writes it
        if not isinstance(node, dict) or was is None or not isinstance(cfg.get(group), DictConfig):
            continue
        dropped += [
            f"{group}.{key}={value}"
            for key, value in node.items()
            if not str(key).startswith("_") and _plain(value) and not _resolvable(value)
            and lookup(was, str(key)) != value and lookup(cfg[group], str(key)) != value
        ]  # fmt: skip
    if dropped:
        shown = ", ".join(dropped)
        print(one_line(f"dreamloom: {source}: the option picked anew leaves out the run's {shown}; give it again to "
                       "keep it"), file=sys.stderr)  # fmt: skip


def _guess_choices(stored: dict[str, Any]) -> dict[str, Any]:
    """The group picks of a config stored before they were kept: the recipe by its ``name``, each group by the
    option whose file has the stored target (and arguments; a model by its name)."""
    picks: dict[str, Any] = {"recipe": stored.get("name")}
    for group in GROUPS[1:]:
        node = stored.get(group)
        if not isinstance(node, dict):
            continue
        for option in options(group):
            made = OmegaConf.to_container(option_file(group, option), resolve=False)
            assert isinstance(made, dict)
            keys = ("name",) if group == "model" else ("_target_", "_args_")
            if all(made.get(k) == node.get(k) for k in keys):
                picks[group] = option
                break
    return picks


RERUN_KEYS = {
    "recipe": "to run another recipe, start it by name (dreamloom recipe=NAME ...)",
    "out": "name the new run's folder with hydra.run.dir=",
}
"""Keys a rerun is given by habit (the command's or the Python API's) that are no keys of a run."""


def _apply(cfg: DictConfig, changes: Sequence[str]) -> None:
    """``key=value`` changes to keys ``cfg`` has (an unknown key is one line with its close matches), and
    ``+optimizer.KEY=value``, a setting added to the optimizer (:data:`engine.checks.ADDED_SETTINGS`)."""
    added = {c.lstrip("+").split("=", 1)[0] for c in changes if re.match(r"\+{1,2}optimizer\.\w+=", c)}
    changes = [c.lstrip("+") if c.lstrip("+").split("=", 1)[0] in added else c for c in changes]
    for change in changes:  # an added optimizer setting is checked as on any run (engine.checks.check_groups)
        key, eq, _ = change.partition("=")
        if not eq:
            raise UserError(f"'{change}' is not key=value; use: dreamloom rerun image.png steps=100")
        if key in RERUN_KEYS:
            raise UserError(
                f"rerun keeps the run's recipe and its own folder name, so {key}= is not taken; {RERUN_KEYS[key]}"
            )
        if key.startswith("hydra."):
            raise UserError("rerun makes one run, in its own folder: of Hydra's keys it takes hydra.run.dir= only")
        dotted = re.fullmatch(r"\w+(\.\w+)*", key)  # not .steps, a[0 or .., which OmegaConf reads its own way
        if dotted and key.split(".")[-1] not in SPECIAL and lookup(cfg, key) is ABSENT and key not in added:
            picks = [f"{group}={pick}" for group, pick in (cfg.get("choices") or {}).items() if pick]
            raise UserError(unknown_key(key, [*picks, change]))
        if not dotted or key.split(".")[-1] in SPECIAL:
            hint = close_matches(key.split(".")[-1], [str(k) for k in cfg.keys()])
            raise UserError(f"unknown key '{key}' for this run" + (f"; {hint}" if hint else ""))
    for change in changes:
        key, _, text = change.partition("=")
        try:  # the value as the command line reads it, set at its path (list items too: transforms._args_.0.pad)
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]), resolve=False)
            assert isinstance(parsed, dict)
            value = parsed["value"]
            if _names_class(value):
                raise UserError(f"{change}: a change names no class to build; pick an option instead (model=vgg16)")
            if not _plain(value):  # a mapping, at any depth
                inner = isinstance(OmegaConf.select(cfg, key), DictConfig)
                fix = f"change one of its values, such as {key}.KEY=VALUE" if inner else "give one value or a list"
                raise UserError(f"{change}: {key} takes no mapping here; {fix}")
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=False)
        except UserError:
            raise
        except (OmegaConfBaseException, ValueError, TypeError, IndexError, yaml.YAMLError) as e:
            raise UserError(f"{change} cannot be applied ({type(e).__name__}); write it as key=value") from None


def _names_class(value: Any) -> bool:
    """Whether a mapping in ``value`` (in a list too) has a ``_target_`` or another of Hydra's instantiation keys."""
    if isinstance(value, dict):
        keys = [str(k) for k in value]  # {_target_:x} written without a space reads as one key, "_target_:x"
        return any(k.startswith(tuple(SPECIAL)) for k in keys) or any(_names_class(v) for v in value.values())
    return isinstance(value, list) and any(_names_class(v) for v in value)
