"""Every key of every recipe that holds a number or nothing by default, given a word: the run is refused with one
line, before its checks or in them, never run as if the key were not there and never a traceback."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from engine.errors import UserError
from engine.runner import run_recipe
from recipes import CONFIG_DIR
from tests.helpers import compose_recipe

pytestmark = pytest.mark.slow

RECIPES = sorted(p.stem for p in (Path(CONFIG_DIR) / "recipe").glob("*.yaml"))
SMALL = {"size": "48", "steps": "2", "octaves": "1", "frames": "2", "steps_next": "1", "samples": "2", "points": "3"}
"""Values that keep a run short, for the keys not under test (a refused word stops it before any of them matter)."""
WORD = "abc"


def _words(cfg: DictConfig) -> list[str]:
    """The top-level keys whose default is a number or null: a word is never a valid value of them."""
    return [k for k, v in cfg.items() if v is None or (isinstance(v, int | float) and not isinstance(v, bool))]


def _refused(small: DictConfig, recipe: str, key: str, folder: Path) -> bool:
    cfg = copy.deepcopy(small)
    with open_dict(cfg):
        cfg[key] = WORD  # as the command line gives it: a word is a string
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_recipe(cfg, folder / key, recipe)
    except UserError:
        return True
    return False


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_number_or_null_key_refuses_a_word(recipe: str, tmp_path: Path) -> None:
    base = compose_recipe(recipe)
    keys = _words(base)
    assert {"steps", "lr", "tv", "centre"} <= set(keys), recipe  # the shared ones at least
    small = compose_recipe(
        recipe, "device=cpu", "snapshot_every=0", *(f"{k}={v}" for k, v in SMALL.items() if k in base)
    )
    accepted = [k for k in keys if not _refused(small, recipe, k, tmp_path)]
    assert not accepted, f"recipe={recipe} ran with {', '.join(f'{k}={WORD}' for k in accepted)}"
