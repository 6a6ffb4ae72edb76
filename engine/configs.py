"""The one place dreamloom composes its Hydra configs and answers Hydra's failures (a stored config is rebuilt from
them by :mod:`engine.stored`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from engine.errors import UserError, close_matches
from recipes import CONFIG_DIR, options

__all__ = [
    "ABSENT",
    "ADDED_SETTINGS",
    "GROUPS",
    "SPECIAL",
    "SWEEP_HINT",
    "compose",
    "explain",
    "lookup",
    "option_file",
    "options",
    "override_value",
    "recipes",
    "refuse_interpolation",
    "refuse_missing",
    "takes",
    "unknown_key",
]

GROUPS = ("recipe", "model", "param", "transforms", "optimizer")
"""The config groups a run picks one option of; the picks are kept in the config as ``choices``."""
ADDED_SETTINGS = {
    "weight_decay": (0.0, 1.0, True),
    "eps": (0.0, 1.0, False),
    "momentum": (0.0, 1.0, True),
    "dampening": (0.0, 1.0, True),
    "momentum_decay": (0.0, 1.0, True),
    "betas": None,
    "amsgrad": bool,
    "nesterov": bool,
}
"""Optimizer settings that may be added with ``+optimizer.KEY=`` (when the picked optimizer takes them): a number's
range (low, high, low included?), two coefficients for ``betas``, or a switch. Others (``capturable``, ``foreach``,
``differentiable`` …) change how torch runs the step, not the optimization, and are refused."""
SWEEP_HINT = "; to run one job per value, add -m"
"""What a comma list given without ``-m`` is told (a rerun, which runs one job, says otherwise)."""
ABSENT = object()
"""What :func:`lookup` gives for a key a config does not have."""
SPECIAL = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})
"""Hydra's instantiation keys: never copied from a stored config."""
RENAMED = {
    "tile": "thumb= (the thumbnail size of activations and filters) or seamless= (style and texture)",
    "task": "run= names a recipe's function now; pick a recipe with recipe=NAME",
}
"""Keys that were renamed or retired, with the one-line hint an old command gets."""
RENAMED_IN = {
    "tile": {
        **dict.fromkeys(("activations", "filters"), "thumb= (the thumbnail size)"),
        **dict.fromkeys(("style", "texture"), "seamless=true (a picture that repeats without a seam)"),
    }
}
"""Where a renamed key's new name depends on the recipe, the one each recipe takes."""
FORMER = {"pyramid": 1, "octave_colors": False, "flatten": None}
"""Keys added since runs were first stored, with the value they had before: a stored run without the key is rebuilt
as it ran (the style pyramid came after single-scale runs, the octaves' recolouring after starts recoloured once,
flattening after pictures left unflattened)."""


def recipes() -> list[str]:
    """Every recipe found on disk."""
    return options("recipe")


def refuse_interpolation(text: str, what: str) -> None:
    """One line when ``text``, meant as itself, holds ``${``, which Hydra would resolve (``${oc.env:HOME}``)."""
    if "${" in text:
        raise UserError(
            f"{what} {text[:80]!r} holds '${{', which would be resolved as an interpolation; pass it without"
        )


def _missing(node: DictConfig | ListConfig, path: str = "") -> str | None:
    """The first key under ``node`` that holds OmegaConf's ``???`` (a value missing), read without resolving;
    Hydra's own node is Hydra's."""
    keys: list[Any] = list(range(len(node))) if isinstance(node, ListConfig) else [str(k) for k in node.keys()]
    for key in [k for k in keys if path or k != "hydra"]:
        where = f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            return where
        inner = node._get_node(key)
        if isinstance(inner, DictConfig | ListConfig) and not OmegaConf.is_interpolation(node, key):
            if not inner._is_none() and (found := _missing(inner, where)):
                return found
    return None


def refuse_missing(cfg: DictConfig) -> None:
    """One line for a key set to ``???``, which OmegaConf reads as a value still to be given: any use of the key
    would fail with a traceback."""
    found = _missing(cfg)
    if found:
        raise UserError(
            f"{found}=??? leaves {found} without a value (??? marks one still to be given); give it a value, or "
            "leave the key out"
        )


def override_value(value: Any) -> str:
    """A Python value as Hydra's override grammar writes it. Text holding ``${`` is refused: Hydra would resolve it
    (``${oc.env:HOME}`` becomes the home folder), and a value from Python is meant as the text itself."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy number
    if isinstance(value, str):
        refuse_interpolation(value, "the value")
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray) or not isinstance(value, str | int | float | Sequence):
        raise UserError(
            f"a value of type {type(value).__name__} is not one a key takes; give text, a number, a switch, null "
            "or a list of them (a picture as a file path or a sample name)"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Sequence) and not isinstance(value, str):  # a list, a tuple, OmegaConf's ListConfig
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, str) and (not re.fullmatch(r"[A-Za-z_./-][A-Za-z0-9_./+-]*", value) or _reads_as_other(value)):
        text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)  # backslashes before a quote doubled
        return "'" + re.sub(r"(\\+)$", r"\1\1", text) + "'"  # and at the end, before the closing quote
    return str(value)


def _reads_as_other(text: str) -> bool:
    """Whether Hydra would read ``text`` written bare as something other than that text (a number, null, a switch)."""
    return text.lower() in ("null", "true", "false", "nan", "inf", "-inf", "+inf") or bool(
        re.fullmatch(r"[+-]?(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?", text)
    )


def recipe_defaults(cfg: DictConfig) -> DictConfig | None:
    """The recipe ``cfg`` picked, as its YAML and the shared config give it, before any key of the command line
    (None where ``cfg`` names no recipe of the project's configs)."""
    name = (cfg.get("choices") or {}).get("recipe")
    if not name:
        return None
    key = (CONFIG_DIR, str(name))
    if key not in _DEFAULTS:
        try:
            _DEFAULTS[key] = compose([f"recipe={name}"])
        except UserError:
            return None  # not kept: a later call tries again
        OmegaConf.set_readonly(_DEFAULTS[key], True)
    return _DEFAULTS[key]


_DEFAULTS: dict[tuple[str, str], DictConfig] = {}
"""Each recipe's defaults, composed once per config folder."""


def compose(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """The config of ``dreamloom`` with ``overrides``, its group picks kept as ``choices``.

    Args:
        overrides: command-line style ``key=value`` (``recipe=NAME`` picks the recipe).
        hydra: keep Hydra's own node (``cfg.hydra``: run folders, launcher …).

    Raises:
        UserError: one line naming the unknown recipe, option or key, or the syntax error.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    args = list(overrides)
    _refuse_odd(args)
    _refuse_added(args)
    try:
        if GlobalHydra.instance().is_initialized():  # inside a run Hydra started: its config folder is this one
            cfg = hydra_compose("config", overrides=args, return_hydra_config=True)
        else:
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = hydra_compose("config", overrides=args, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as e:
        raise UserError(explain(e, args)) from None
    picks = {g: cfg.hydra.runtime.choices.get(g) for g in GROUPS}
    for group, pick in picks.items():  # a list (param=[]) asks Hydra for several options or none
        if not isinstance(pick, str):
            raise _one_option(group)
    given = {a.lstrip("+~").split("=", 1)[0] for a in args}
    if OmegaConf.is_missing(cfg, "name") and "name" not in given:  # its keys went under recipe: instead of the top
        raise UserError(
            f"recipe {picks['recipe']} gives no name: recipes/recipe/{picks['recipe']}.yaml must begin with the line "
            f"'# @package _global_' and hold name: {picks['recipe']}"
        )
    refuse_missing(cfg)
    with open_dict(cfg):
        cfg.choices = picks
        if not hydra:
            del cfg["hydra"]
    return cfg


def explain(err: Exception, args: Sequence[str]) -> str:
    """One line for a Hydra or OmegaConf composition error, read from its type and its fields."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, option = err.missing_cfg_file.rsplit("/", 1)
        if group == "hydra/launcher" and option.startswith("submitit"):
            return (
                "hydra/launcher=slurm needs Hydra's submitit launcher, an optional part: pip install 'dreamloom[slurm]'"
            )
        choices = err.options or options(group)
        hint = close_matches(option, choices)
        extra = "; or model.name=ANY_TORCHVISION_CLASSIFIER" if group == "model" else ""
        hint = f"; {hint}" if hint else ""
        return f"unknown {group} '{option}'{hint} (choose one of {', '.join(choices)}{extra})"
    cause = err.__cause__ if isinstance(err, ConfigCompositionException) else err
    if isinstance(cause, ConfigKeyError | OmegaConfBaseException) and getattr(cause, "full_key", None):
        key = str(cause.full_key)
        if key.startswith("hydra.") and not isinstance(cause, ConfigKeyError):  # Hydra's own typed settings
            given = next((a.split("=", 1)[1] for a in args if a.lstrip("+").split("=", 1)[0] == key), "")
            return f"{key}={given} is not valid ({str(cause).splitlines()[0]}); give it a value of that kind"
        return unknown_key(key, args)
    if isinstance(err, OverrideParseException):
        if "=" not in err.override and err.override in options("recipe"):
            return f"'{err.override}' is not key=value; to run that recipe, write recipe={err.override}"
        first = f"'{err.override}' ({err.message.splitlines()[0]})"
    else:
        first = next((line for line in str(err).splitlines() if line.strip()), str(err))
    sweep = SWEEP_HINT if "Ambiguous value" in first else ""
    return (
        f"could not read the command line: {first}; write each override as key=value "
        f"(lists as key=[a,b], text with spaces or commas in quotes){sweep}"
    )


def _one_option(group: str) -> UserError:
    return UserError(f"{group} takes exactly one option; choose {group}= one of {', '.join(options(group))}")


def _refuse_odd(args: list[str]) -> None:
    """Refuse ``~KEY`` (Hydra's removal of a key: every key is read, so the run would fail later) and a
    ``recipe=`` or group pick that names a path rather than an option (``recipe=../model/vgg16``)."""
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        key = key.partition("@")[0]  # recipe@_global_=…: the group is recipe
        if arg.startswith("~") and not key.lstrip("~").startswith(("hydra.", "hydra/")):
            key = key.lstrip("~")
            raise UserError(
                f"{arg} would remove the key {key}, which the recipe reads; give {key}=VALUE instead, or leave it "
                "out for the recipe's default"
            )
        if key in GROUPS and ("/" in value or "\\" in value or value.startswith(".")):
            raise UserError(f"{key}={value} is not one of its options; choose {key}= one of {', '.join(options(key))}")
        picked = value.strip().lower()
        if key in (*GROUPS, "hydra/launcher") and (picked == "null" or picked.startswith("[")):  # none, or several
            raise _one_option(key)


def _refuse_added(args: list[str]) -> None:
    """Refuse ``+KEY=`` (and ``++KEY=``) for a key the recipe does not have: no recipe reads it, so it would change
    nothing. Hydra's own keys (``+hydra.…``) pass, and so does an argument added to a part that is built from its
    ``_target_`` (``+optimizer.weight_decay=0.01``): the part's constructor reads it, or refuses it."""
    added = [a for a in args if a.startswith("+") and not a.lstrip("+").startswith("hydra.")]
    if not added:
        return
    plain = compose([a for a in args if a not in added])
    for arg in added:
        key = arg.lstrip("+").partition("=")[0]
        part = lookup(plain, key.rpartition(".")[0]) if "." in key else None
        part = None if part is ABSENT else part
        if isinstance(part, DictConfig) and "_target_" in part:
            continue
        if lookup(plain, key) is ABSENT:
            raise UserError(unknown_key(key, args, added=True))


def lookup(cfg: Any, key: str) -> Any:
    """The node at ``key``, or :data:`ABSENT` where there is none, a word used as a list's index included."""
    try:
        return OmegaConf.select(cfg, key, default=ABSENT)
    except OmegaConfBaseException:
        return ABSENT


def unknown_key(name: str, args: Sequence[str], added: bool = False) -> str:
    picked = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")][-1:]
    options = [a for a in args if a.split("=", 1)[0] in GROUPS[1:]]  # param=maco has no decay where fft has
    try:
        plain = compose([*(f"recipe={r}" for r in picked), *options])
    except UserError:
        plain = OmegaConf.create()
    keys = [str(k) for k in plain.keys()]
    found = lookup(plain, name)
    if found is not ABSENT and not added:  # the key is there: the value given could not be merged into it
        given = next((a.split("=", 1)[1] for a in args if a.lstrip("+").split("=", 1)[0] == name), "")
        kind = f"a list like [{','.join(map(str, found))}]" if isinstance(found, ListConfig) else "one value"
        kind = f"keys of its own ({', '.join(map(str, found))})" if isinstance(found, DictConfig) else kind
        return f"{name}={given} is not valid; {name} takes {kind}"
    where = f"recipe {picked[0]} has" if picked else "the recipe has"
    short, group = name.split(".")[-1], name.split(".")[0]
    if not added and group in GROUPS[1:] and name.count(".") == 1 and isinstance(plain.get(group), DictConfig):
        own = [str(k) for k in plain[group] if not str(k).startswith("_")]
        chosen = (plain.get("choices") or {}).get(group, "")
        hint = close_matches(short, own)
        if group == "optimizer" and short in ADDED_SETTINGS and short in takes(plain[group]):  # not in its file
            given = next((a.split("=", 1)[1] for a in args if a.split("=", 1)[0] == name), "VALUE")
            hint = f"add it with +{name}={given} (its keys: {', '.join(own) or 'none'})"
            return f"{group}={chosen} has no key '{short}' of its own; {hint}"
        return (
            f"{group}={chosen} has no key '{short}'; "
            + (f"{hint} (its keys: " if hint else "its keys: ")
            + (", ".join(own) or "none")
            + (")" if hint else "")
        )
    if short in RENAMED and "." not in name:
        new = RENAMED_IN.get(short, {}).get(picked[0] if picked else "", RENAMED[short])
        return f"{where} no key '{name}'; it was renamed: use {new}"
    hint = close_matches(short, [k for k in keys if k != name])
    owners = _owners(name) if "." not in name else []
    named = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
    hint = f"{name} is a key of recipe {named}" if owners else hint  # not a near name it does not read
    lists = f"dreamloom recipe={picked[0] if picked else 'NAME'} --help lists its keys"
    lists = ("nothing reads a key added with +; " if added else "") + lists
    return f"{where} no key '{name}'" + (f"; {hint}" if hint else "") + f" ({lists})"


def option_file(group: str, option: Any) -> Any:
    """The option ``group/option.yaml`` as its file writes it (interpolations unresolved), or None where the project
    has no such option."""
    path = Path(CONFIG_DIR) / group / f"{option}.yaml"
    return OmegaConf.load(path) if option in options(group) and path.is_file() else None


def takes(part: DictConfig) -> Any:
    """The arguments the class a part of the project's own configs names takes (``optimizer``: torch's)."""
    import inspect

    from hydra.utils import get_class

    return inspect.signature(get_class(str(part._target_))).parameters


def _owners(key: str) -> list[str]:
    """The recipes whose own YAML sets ``key`` (at most three named)."""
    folder = os.path.join(CONFIG_DIR, "recipe")
    return [r for r in options("recipe") if key in OmegaConf.load(os.path.join(folder, f"{r}.yaml"))][:3]
