"""``dreamloom --help``: the command's own help page, read from the recipe YAML files' comments.

Each recipe file opens with comment lines: its purpose, then example commands (``#   dreamloom …``). Each key's
meaning is the comment at the end of its line, or, for a key every recipe shares, that key's comment in
``config.yaml``. The page loads neither torch nor Hydra, so it comes at once.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError, close_matches
from recipes import CONFIG_DIR, options

__all__ = [
    "GALLERY_HELP",
    "RERUN_HELP",
    "Key",
    "RecipeDoc",
    "answer_help",
    "asks_for_help",
    "page",
    "read_recipe",
    "recipe_page",
]

HELP_FLAGS = frozenset({"--help", "-h"})
FLAGS = HELP_FLAGS | {"--version", "-m", "--multirun", "--hydra-help", "--cfg", "-c", "--resolve", "--package", "-p"}
"""The options the command takes (its own and Hydra's that make sense here); any other is answered in one line."""
INTERNAL = frozenset({"defaults", "run", "name", "objective", "hydra"})
"""Top-level keys that are wiring, not settings a user changes."""
_KEY_LINE = re.compile(r"^([a-z_][a-z0-9_]*):\s*(.*?)\s*(?:#\s*(.*))?$")
_DEFAULT = re.compile(r"^\s*-\s*(?:override\s+/)?(\w+)\s*:?\s*(\w*)")

RERUN_HELP = """\
usage: dreamloom rerun PICTURE|FOLDER [key=value ...]

Run again the config an earlier run's image.png carries (its dreamloom-config text chunk), rebuilt from the
project's own configs, with any keys changed:
  dreamloom rerun outputs/2026-11-22/19-30-05_channel/image.png              # the same picture again
  dreamloom rerun outputs/2026-11-22/19-30-05_channel/image.png steps=512 seed=3
The new run goes to outputs/<date>/<time>_NAME_rerun/ (or hydra.run.dir=DIR)."""

RENDER_HELP = """\
usage: dreamloom render FOLDER size=N|[h,w]

Draw a param=cppn run's picture again at another size, without optimizing: its picture is a small network of
pixel coordinates, so it has no size of its own. size=N is the long side (the run's aspect ratio); size=[h,w] may
be wider or taller, and then shows more of the picture at the same scale. The picture goes beside the run's own, as
FOLDER/image_WxH.png, with the run's config inside:
  dreamloom recipe=class target=flamingo param=cppn hydra.run.dir=outputs/flamingo
  dreamloom render outputs/flamingo size=[2160,3840]"""

GALLERY_HELP = """\
usage: dreamloom gallery [FOLDER] [recipe=NAME]

Write FOLDER/index.html: every run below FOLDER with its picture, keys and metrics, sortable by any metric.
With recipe=NAME, FOLDER/index_NAME.html holds that recipe's runs only (FOLDER defaults to outputs then).
  dreamloom gallery outputs/multirun/2026-11-22/19-30-05_channel
  dreamloom gallery outputs recipe=class"""


@dataclass(frozen=True)
class Key:
    """One setting of a config file: its name, default as written, and meaning."""

    name: str
    default: str
    meaning: str


@dataclass
class RecipeDoc:
    """What a recipe file says about itself."""

    name: str
    about: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    picks: list[str] = field(default_factory=list)
    """Group options the recipe picks (``param=pixel``) and recipes it builds on."""

    @property
    def purpose(self) -> str:
        """The first sentence of the recipe's description."""
        text = " ".join(self.about)
        end = re.search(r"\.(\s|$)", text)
        return text[: end.start() + 1] if end else text


def _read(path: Path) -> tuple[list[str], list[str], list[Key], list[str]]:
    """The opening comment (description and example lines), the top-level keys and the defaults list of a YAML."""
    about: list[str] = []
    examples: list[str] = []
    keys: list[Key] = []
    picks: list[str] = []
    opening, in_defaults = True, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if opening and line.startswith("#"):
            text = line.lstrip("#").strip()
            if text.startswith("dreamloom "):
                examples.append(text)
            elif text and not text.startswith("@package"):
                about.append(text)
            continue
        opening = False
        if in_defaults and line.startswith(" "):
            found = _DEFAULT.match(line)
            if found and found.group(1) not in ("_self_",):
                picks.append(f"{found.group(1)}={found.group(2)}" if found.group(2) else found.group(1))
            continue
        in_defaults = False
        found = _KEY_LINE.match(line)
        if found and found.group(1) == "defaults":
            in_defaults = True
        elif found and found.group(1) not in INTERNAL:
            keys.append(Key(found.group(1), found.group(2), (found.group(3) or "").strip()))
    return about, examples, keys, picks


def shared_keys() -> list[Key]:
    """The keys every recipe has (``config.yaml``), with their defaults and meanings."""
    return _read(Path(CONFIG_DIR) / "config.yaml")[2]


def read_recipe(name: str) -> RecipeDoc:
    """A recipe's description, examples and own keys; a key without a comment takes the shared key's meaning."""
    shared = {k.name: k.meaning for k in shared_keys()}
    about, examples, keys, picks = _read(Path(CONFIG_DIR) / "recipe" / f"{name}.yaml")
    keys = [Key(k.name, k.default, k.meaning or shared.get(k.name, "")) for k in keys]
    return RecipeDoc(name, about, examples, keys, picks)


def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _rows(pairs: list[tuple[str, str]], indent: int = 2, widest: int = 34) -> list[str]:
    """Two columns: a name, then text wrapped beside it (a command is never wrapped, so it copies whole). A name
    longer than ``widest`` has a line of its own, its text below it in the column, so one long default does not push
    every meaning to the right."""
    left = max((len(a) for a, _ in pairs if len(a) <= widest), default=widest) + 2
    room = max(30, _width() - indent - left)
    lines = []
    for a, b in pairs:
        wrapped = [b] if b.startswith("dreamloom ") else textwrap.wrap(b, room) or [""]
        if len(a) > left - 2:
            lines.append(" " * indent + a)
            lines += [" " * (indent + left) + w for w in wrapped]
            continue
        lines.append(" " * indent + a.ljust(left) + wrapped[0])
        lines += [" " * (indent + left) + w for w in wrapped[1:]]
    return lines


def _shown(default: str) -> str:
    """A default as a user reads it: an interpolation of the model's settings says so."""
    if default.startswith("${oc.select:model."):
        return "(the model's)"
    return default or "(see below)"


def page() -> str:
    """The whole help page: what the command does, its forms, every recipe, the shared keys, where results go."""
    names = options("recipe")
    recipes = [read_recipe(n) for n in names]
    groups = {g: options(g) for g in _GROUP_NAMES}
    lines = [
        "dreamloom: neural-network art and feature visualization for PyTorch image classifiers.",
        "",
        "usage:",
        *_rows(
            [
                ("dreamloom recipe=NAME [key=value ...]", "run a recipe (default recipe=deepdream)"),
                ("dreamloom recipe=NAME --help", "that recipe's keys, their defaults and meanings"),
                ("dreamloom rerun PICTURE [key=value ...]", "run again what an earlier image.png carries"),
                ("dreamloom resume=FOLDER", "carry on a stopped run from its checkpoint.pt"),
                ("dreamloom render FOLDER size=N", "draw a param=cppn run's picture again at any size"),
                ("dreamloom gallery [FOLDER] [recipe=NAME]", "an index.html of the runs below FOLDER (outputs)"),
                ("dreamloom --version", "the installed version"),
                ("dreamloom -m recipe=NAME key=a,b,c", "a sweep: one run per value (hydra.sweep.dir=DIR)"),
            ]
        ),
        "",
        f"recipes ({len(names)}):",
    ]
    rows: list[tuple[str, str]] = []
    for doc in recipes:
        rows += [(doc.name, doc.purpose), ("", doc.examples[0] if doc.examples else f"dreamloom recipe={doc.name}")]
    lines += _rows(rows)
    lines += ["", "keys every recipe shares (any key: key=value; a new one: +key=value):"]
    lines += _rows([(f"{k.name}={k.default}", k.meaning) for k in shared_keys() if k.name not in _HIDDEN])
    numbers = "param.decay=1.5, optimizer=sgd optimizer.momentum=0.5"
    lines += ["", f"parts, swapped as groups (their own numbers too: {numbers}):"]
    lines += _rows([(f"{g}=", ", ".join(o)) for g, o in groups.items()])
    lines += [
        "",
        "results: each run writes outputs/<date>/<time>_NAME/ (or hydra.run.dir=DIR): image.png (its config inside),",
        "progress.gif, metrics.json; the command ends by naming the folder. Ctrl-C saves the picture so far.",
        "more: README.md and docs/ (recipes.md, parameterizations.md, attribution.md, layers.md, video.md,",
        "fast_style.md, errors.md, python.md, extending.md, speed.md, testing.md).",
    ]
    return "\n".join(lines)


_GROUP_NAMES = ("model", "param", "transforms", "optimizer")
_HIDDEN = frozenset({"name", "objective"})


def recipe_page(name: str) -> str:
    """One recipe's help: its description, examples, own keys with defaults and meanings, and the parts it picks."""
    doc = read_recipe(name)
    lines = [f"dreamloom recipe={name}: " + " ".join(doc.about), ""]
    if doc.examples:
        lines += ["examples:", *(f"  {e}" for e in doc.examples), ""]
    own = [(f"{k.name}={_shown(k.default)}", k.meaning) for k in doc.keys]
    base = [p for p in doc.picks if "=" not in p]
    for parent in base:  # a recipe built on another (style_video on style) has that one's keys too
        mine = {k.name for k in doc.keys}
        own += [(f"{k.name}={_shown(k.default)}", k.meaning) for k in read_recipe(parent).keys if k.name not in mine]
    if own:
        lines += [f"keys of {name}" + (f" (with those of {', '.join(base)})" if base else "") + ":", *_rows(own), ""]
    picked = [p for p in doc.picks if "=" in p]
    if picked:
        lines += [f"parts it picks: {' '.join(picked)}", ""]
    lines.append("every recipe also takes the shared keys (size=, steps=, seed=, device=, model= …): dreamloom --help")
    return "\n".join(lines)


def asks_for_help(args: list[str]) -> str | None:
    """The help page ``args`` ask for, or None when they ask for a run (or Hydra's own ``--hydra-help``).

    Raises:
        UserError: help asked for a recipe that does not exist.
    """
    unknown = [a for a in args if a.startswith("-") and a.split("=")[0] not in FLAGS]
    if unknown:
        hint = close_matches(unknown[0], sorted(FLAGS))
        raise UserError(f"unknown option '{unknown[0]}'" + (f" ({hint})" if hint else "") + "; see dreamloom --help")
    if args[:1] == ["rerun"] and HELP_FLAGS & set(args):
        return RERUN_HELP
    if args[:1] == ["gallery"] and HELP_FLAGS & set(args):
        return GALLERY_HELP
    if args[:1] == ["render"] and HELP_FLAGS & set(args):
        return RENDER_HELP
    if args[:1] == ["help"] or HELP_FLAGS & set(args):
        wanted = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")] + args[1:2] * (args[:1] == ["help"])
        if not wanted:
            return page()
        if wanted[-1] not in options("recipe"):
            hint = close_matches(wanted[-1], options("recipe"))
            raise UserError(
                f"unknown recipe '{wanted[-1]}'"
                + (f" ({hint})" if hint else "")
                + "; dreamloom --help lists every recipe"
            )
        return recipe_page(wanted[-1])
    return None


def version() -> str:
    """dreamloom's installed version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dreamloom")
    except PackageNotFoundError:
        return "unknown (not installed)"


def answer_help(args: list[str]) -> bool:
    """Print the help page or version ``args`` ask for (without loading torch), or a one-line error; False for a
    run."""
    try:
        text = f"dreamloom {version()}" if args[:1] == ["--version"] else asks_for_help(args)
    except UserError as e:
        print(f"dreamloom: error: {e}", file=sys.stderr)  # a UserError is one line
        sys.exit(2)
    if text is None:
        return False
    try:
        print(text, flush=True)
    except BrokenPipeError:  # dreamloom --help | head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True
