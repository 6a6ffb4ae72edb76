"""The one compose helper and the run helpers of the tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from engine.cli import main as dreamloom
from engine.configs import compose
from engine.export import read_png_config
from engine.runner import run_recipe


def compose_recipe(name: str, *overrides: str) -> DictConfig:
    """Recipe ``name`` composed from the project's configs with command-line style ``overrides``."""
    return compose([f"recipe={name}", *overrides])


def run(folder: Path, name: str, *overrides: str) -> dict[str, Any]:
    """Run recipe ``name`` on the CPU into ``folder`` and return its metrics."""
    return run_recipe(compose_recipe(name, "device=cpu", *overrides), folder, name).metrics


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
