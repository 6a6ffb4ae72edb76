"""The README's examples run as written, and each of its pictures is what the command beside it makes."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from engine.configs import compose, recipes
from engine.help import read_recipe
from recipes.clips import is_clip
from tests.helpers import CAPS, command, reads

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\|[^|]*\| `(dreamloom [^`]*)`[^|]*\| !\[[^\]]*\]\(docs/images/([\w.]+)\.(?:png|gif)\) \|$", re.M)
NOT_RUN = {
    "dreamloom resume=outputs/2026-11-22/19-30-05_deepdream": "needs a stopped run; resuming is tested in "
    "tests/engine/test_reliability.py",
}


def _gallery() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "docs" / "make_gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.EXAMPLES)


def _commands() -> list[str]:
    """Every ``dreamloom …`` command of the README: in its tables and code blocks, comments dropped."""
    found = re.findall(r"`(dreamloom [^`]+)`", README)
    found += [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("dreamloom ")]
    found = [c for c in found if not re.search(r"=[A-Z]{2,}", c)]  # a form (recipe=NAME), not an example
    return sorted({c for c in found if "recipe=" in c or " rerun " in f" {c} " or "resume=" in c})


def test_every_readme_picture_command_is_the_one_the_gallery_script_runs() -> None:
    """The commands beside the pictures are those `docs/make_gallery.py` runs to make them (the pictures, resized
    for the page, carry no config to compare)."""
    examples = _gallery()
    rows = ROW.findall(README)
    assert len(rows) >= 25
    for shown, name in rows:
        assert name in examples, f"docs/make_gallery.py has no example {name} for: {shown}"
        assert shown == "dreamloom " + " ".join(examples[name]), f"{name}: the README shows {shown}"


@pytest.mark.slow
@pytest.mark.parametrize("line", _commands())
def test_each_readme_command_runs_as_written(line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if line in NOT_RUN:
        pytest.skip(NOT_RUN[line])
    monkeypatch.chdir(tmp_path)
    args = shlex.split(line)[1:]
    if args[0] == "rerun":  # the picture it names, made first where the README says it is
        earlier = Path(args[1]).parent
        code, err = command(["recipe=channel", "steps=2", "size=32", f"hydra.run.dir={earlier}"])
        assert code == 0, err
    sweep = "-m" in args
    given = [a for a in args if "=" in a and not a.startswith("hydra.")]
    cfg = compose([a for a in given if a.startswith("recipe=")] if args[0] != "rerun" else ["recipe=channel"])
    source = next((a.split("=", 1)[1] for a in given if a.startswith("input=")), str(cfg.get("input") or ""))
    still = cfg.get("name") == "style_fast" and not is_clip(source)  # frames= there is refused for a picture
    caps = [
        f"{k}={v}"
        for k, v in CAPS.items()
        if k in cfg
        and reads(cfg, k)
        and not (sweep and any(a.startswith(f"{k}=") for a in given))
        and not (still and k == "frames")
    ]
    folder = f"hydra.sweep.dir={tmp_path / 'sweep'}" if sweep else f"hydra.run.dir={tmp_path / 'run'}"
    code, err = command([*args, *caps, folder])
    assert code == 0, f"{line}\n{err[-1500:]}"
    assert err.rstrip().splitlines()[-1].startswith("dreamloom: wrote "), err[-300:]


@pytest.mark.parametrize("name", recipes())
def test_the_examples_in_each_recipe_file_compose(name: str) -> None:
    """The examples ``dreamloom --help`` prints come from the recipe files' comments: each must name real keys,
    recipes and options."""
    for example in read_recipe(name).examples:
        args = [a for a in shlex.split(example.split("#")[0].split("  (")[0])[1:] if "=" in a]
        compose(args)


def test_the_help_page_shows_the_readme_example_of_each_recipe() -> None:
    """``dreamloom recipe=NAME --help`` and the README table lead with the same command for each recipe."""
    first: dict[str, str] = {}
    for line in re.findall(r"^\| (?:`(\w+)`)? \| `(dreamloom [^`]*)`", README, re.M):
        name = line[0] or re.search(r"recipe=(\w+)", line[1]).group(1)  # type: ignore[union-attr]
        first.setdefault(name, line[1])
    assert len(first) >= 24
    for name, shown in first.items():
        examples = [e.split("#")[0].split("  (")[0].strip() for e in read_recipe(name).examples]
        assert shown in examples, f"recipes/recipe/{name}.yaml: its examples {examples} lack the README's {shown}"
