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
from engine.runner import prepare_function, run_recipe
from recipes import CONFIG_DIR
from tests.helpers import compose_recipe, reads

pytestmark = pytest.mark.slow

RECIPES = sorted(p.stem for p in (Path(CONFIG_DIR) / "recipe").glob("*.yaml"))
SMALL = {"size": "48", "steps": "2", "octaves": "1", "frames": "2", "steps_next": "1", "samples": "2", "points": "3"}
"""Values that keep a run short, for the keys not under test (a refused word stops it before any of them matter)."""
WORD = "abc"
AIMS = {
    "facets": ["target=tabby", "k=2"],
    "style_fast": ["input=clip"],
    "faithfulness": ["size=48", "methods=[gradcam]", "input=chelsea"],
    "occlusion": ["patch=8"],
}
"""What a recipe needs before it looks at its other keys (facets refuses a run with no aim first)."""


def _words(cfg: DictConfig) -> list[str]:
    """The top-level keys whose default is a number or null: a word is never a valid value of them."""
    return [k for k, v in cfg.items() if v is None or (isinstance(v, int | float) and not isinstance(v, bool))]


def _answer(small: DictConfig, recipe: str, key: str | None, folder: Path, value: str = WORD) -> str | None:
    """The line the run answers with ``key=value``; None when it runs (with ``key`` None: the small run itself)."""
    cfg = copy.deepcopy(small)
    if key is not None:
        with open_dict(cfg):
            cfg[key] = value  # as the command line gives it: a word is a string
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_recipe(cfg, folder / str(key), recipe)
    except UserError as e:
        return str(e)
    return None


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_number_or_null_key_refuses_a_word(recipe: str, tmp_path: Path) -> None:
    base = compose_recipe(recipe)
    keys = _words(base)
    assert {"steps", "lr", "tv", "centre"} <= set(keys), recipe  # the shared ones at least
    read = [k for k in ("snapshot_every", *SMALL) if k in base and reads(base, k)]
    small = compose_recipe(
        recipe,
        "device=cpu",
        *(f"{k}={({'snapshot_every': '0'} | SMALL)[k]}" for k in read),
        *AIMS.get(recipe, []),
    )
    assert _answer(small, recipe, None, tmp_path) is None, recipe  # the run itself works: no key fails for it
    answers = {k: _answer(small, recipe, k, tmp_path) for k in keys}
    accepted = [k for k, line in answers.items() if line is None]
    assert not accepted, f"recipe={recipe} ran with {', '.join(f'{k}={WORD}' for k in accepted)}"
    astray = {k: line for k, line in answers.items() if line is not None and k not in line and WORD not in line}
    assert not astray, f"recipe={recipe}: lines that name neither the key nor its value: {astray}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_key_the_recipe_does_not_read_is_refused_by_name(recipe: str, tmp_path: Path) -> None:
    """Any value of a key the recipe declares it does not read (a number here, which a word check would pass), set
    apart from the recipe's own default, is refused as doing nothing: keys null by default and keys with a value
    (``steps``, ``lr``, ``snapshot_every`` …) alike (the value the recipe has anyway is taken: test_configs.py)."""
    small = compose_recipe(recipe, "device=cpu")
    _, spec = prepare_function(small)
    keys = [k for k in (*spec.ignores, *(() if spec.objective else ("objective",))) if k in small]
    for key in [k for k in keys if not isinstance(small[k], DictConfig)]:  # groups: tests/engine/test_configs.py
        value = "129" if str(small[key]) == "128" else "128"
        line = _answer(small, recipe, key, tmp_path, value)
        assert line is not None and f"does not read {key}=" in line, (recipe, key, line)
