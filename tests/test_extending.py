"""docs/extending.md's worked recipe works as written: its YAML and its function, added as the page says, run and
answer the checks every recipe passes (penalties honoured, a bad number refused in one line)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import engine.configs
import recipes.visualize
from engine.errors import UserError
from engine.runner import run_recipe
from tests.helpers import compose_recipe

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")


@pytest.fixture
def added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ``channel_class``: its YAML in a copy of the configs, its function in ``recipes.visualize``."""
    yaml_text = re.findall(r"```yaml\n(.*?)```", PAGE, re.S)[0]
    code = re.findall(r"```python\n(.*?)```", PAGE, re.S)[0]
    (imports,) = re.findall(r"the import `(from objectives import [\w, ]+)`", PAGE)
    configs = tmp_path / "recipes"
    shutil.copytree(engine.configs.CONFIG_DIR, configs)
    (configs / "recipe" / "channel_class.yaml").write_text(yaml_text)
    monkeypatch.setattr(engine.configs, "CONFIG_DIR", str(configs))
    space = dict(vars(recipes.visualize))
    exec(f"{imports}\n{code}", space)  # the page's own lines, as a contributor pastes them
    monkeypatch.setattr(recipes.visualize, "channel_class", space["channel_class"], raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("added")
def test_the_worked_recipe_runs_and_honours_its_keys(tmp_path: Path) -> None:
    keys = ("size=32", "steps=2", "device=cpu", "snapshot_every=0")
    plain = run_recipe(compose_recipe("channel_class", *keys), tmp_path / "plain", "channel_class").metrics
    assert (tmp_path / "plain" / "image.png").is_file() and plain["recipe"] == "channel_class"
    smooth = run_recipe(compose_recipe("channel_class", *keys, "tv=5"), tmp_path / "tv", "channel_class").metrics
    assert "tv" in str(smooth["objective"]) and "tv" not in str(plain["objective"])
    for bad, says in (("channel=abc", "channel=abc is not valid"), ("layer=features.99", "has no layer")):
        with pytest.raises(UserError, match=says):
            run_recipe(compose_recipe("channel_class", *keys, bad), tmp_path / "bad", "channel_class")


@pytest.mark.slow
@pytest.mark.usefixtures("added")
def test_the_pages_test_of_the_worked_recipe_passes(tmp_path: Path) -> None:
    """The test the page gives the recipe, pasted as a contributor would, passes on the page's recipe (and its
    claim holds: the flamingo scores higher with the pull)."""
    code = re.findall(r"```python\n(.*?)```", PAGE, re.S)[1]
    space: dict[str, object] = {}
    exec(code, space)  # the page's own lines
    tests = [fn for name, fn in space.items() if name.startswith("test_")]
    assert len(tests) == 1
    tests[0](tmp_path)  # type: ignore[operator]


@pytest.fixture
def objective_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ``channel_spot``: its factory in ``objectives`` (as ``objectives/activation.py`` would hold it and
    ``objectives/__init__.py`` export it), its YAML in a copy of the configs."""
    import objectives
    import objectives.activation

    code = re.findall(r"```python\n(.*?)```", PAGE, re.S)[2]
    yaml_text = re.findall(r"```yaml\n(.*?)```", PAGE, re.S)[1]
    configs = tmp_path / "recipes"
    shutil.copytree(engine.configs.CONFIG_DIR, configs)
    (configs / "recipe" / "channel_spot.yaml").write_text(yaml_text)
    monkeypatch.setattr(engine.configs, "CONFIG_DIR", str(configs))
    space = dict(vars(objectives.activation))
    exec(code, space)  # the page's own lines
    monkeypatch.setattr(objectives, "channel_spot", space["channel_spot"], raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("objective_added")
def test_the_worked_objective_runs_and_passes_the_pages_test(tmp_path: Path) -> None:
    keys = ("size=32", "steps=2", "device=cpu", "snapshot_every=0")
    done = run_recipe(compose_recipe("channel_spot", *keys), tmp_path / "run", "channel_spot")
    assert done.metrics["objective"] == "channel_spot(features.10:7, 0.25)"
    for bad in ("spread=abc", "spread=0", "channel=999"):
        with pytest.raises(UserError) as refused:
            run_recipe(compose_recipe("channel_spot", *keys, bad), tmp_path / "bad", "channel_spot")
        assert bad.split("=")[0] in str(refused.value) and "\n" not in str(refused.value)
    space: dict[str, object] = {"pytest": pytest, "torch": __import__("torch"), "UserError": UserError}
    exec(re.findall(r"```python\n(.*?)```", PAGE, re.S)[3], space)  # the page's test, as pasted
    space["test_channel_spot_weighs_the_centre_most"]()  # type: ignore[operator]
