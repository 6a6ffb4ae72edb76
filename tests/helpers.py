"""The one compose helper and the run helpers of the tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from engine.cli import main as dreamloom
from engine.configs import compose
from engine.export import read_png_config
from engine.runner import prepare_function, run_recipe


def compose_recipe(name: str, *overrides: str) -> DictConfig:
    """Recipe ``name`` composed from the project's configs with command-line style ``overrides``."""
    return compose([f"recipe={name}", *overrides])


def run(folder: Path, name: str, *overrides: str) -> dict[str, Any]:
    """Run recipe ``name`` on the CPU into ``folder`` and return its metrics."""
    return run_recipe(compose_recipe(name, "device=cpu", *overrides), folder, name).metrics


CAPS = {"steps": 2, "size": 96, "frames": 2, "steps_next": 1, "samples": 2, "octaves": 1}
"""Keys an example from the docs is run with on top of its own, where the recipe has and reads them, so that each
takes seconds: the keys and names the example gives are used as written."""


def reads(cfg: DictConfig, key: str) -> bool:
    """Whether the recipe ``cfg`` picked reads the shared ``key`` (its function does not declare it ignored)."""
    return key not in prepare_function(cfg)[1].ignores


@contextlib.contextmanager
def top_keys_read() -> Iterator[set[str]]:
    """The top-level keys read from any whole config (a root ``DictConfig``: the run's or a copy of it) while the
    block runs, by attribute, item, ``get`` or ``in``: what a recipe looks at, not what a writer copies out whole.
    A key the recipe set on a copy before reading it there (a video's frames switch their progress GIF off) holds
    the recipe's value, not the user's, and is not noted."""
    seen: set[str] = set()
    written: dict[int, tuple[weakref.ref[DictConfig], set[str]]] = {}  # by id, checked: a freed id is reused
    names = ("__getattr__", "__getitem__", "get", "__contains__", "__setattr__", "__setitem__")
    originals = {name: getattr(DictConfig, name) for name in names}

    def spy(original: Any, writes: bool) -> Any:
        def look(self: DictConfig, key: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(key, str) and not key.startswith("_") and self._get_parent() is None:
                ref, mine = written.get(id(self), (None, set()))
                if ref is None or ref() is not self:
                    mine = set()
                    written[id(self)] = (weakref.ref(self), mine)
                if writes:
                    mine.add(key)
                elif key not in mine:
                    seen.add(key)
            return original(self, key, *args, **kwargs)

        return look

    for name, original in originals.items():
        setattr(DictConfig, name, spy(original, name.startswith("__set")))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(DictConfig, name, original)


PROGRESS = re.compile(r"^(octave \d+/\d+ )?\[[#.]+\] \d+/\d+ ")
"""A progress-bar line on stderr."""


def command(args: list[str]) -> tuple[int, str]:
    """The ``dreamloom`` command in this process: its exit status and what it printed on stderr."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            dreamloom(args)
        except SystemExit as e:
            code = int(e.code or 0)
    return code, err.getvalue()


def assert_answered(code: int, stderr: str, args: list[str], folder: Path, picture: bool = True) -> None:
    """Exit 0 with the contract files in ``folder`` (``picture``: an ``image.png`` carrying its config, enough to
    rerun it), or exit 2 with one error line; never a traceback."""
    shown = " ".join(a[:80] for a in args)
    assert "Traceback" not in stderr, f"{shown}\n{stderr}"
    if code == 0:
        assert isinstance(json.loads((folder / "metrics.json").read_text()), dict), shown
        if picture:
            assert read_png_config(folder / "image.png") is not None, shown
        return
    lines = [line for line in stderr.splitlines() if not PROGRESS.match(line)]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("dreamloom: error: "), f"{code}: {shown}\n{stderr}"
