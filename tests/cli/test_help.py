"""The command's help pages: every recipe with its purpose and an example, every key with a meaning, at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.configs import compose, recipes
from engine.help import asks_for_help, page, read_recipe, recipe_page, shared_keys
from tests.helpers import command

SUBCOMMANDS = ("rerun", "gallery", "resume=", "render", "-m", "--help")


def test_the_page_lists_every_recipe_with_its_purpose_and_example() -> None:
    text = page()
    for name in recipes():
        doc = read_recipe(name)
        assert doc.purpose and doc.examples, f"recipes/recipe/{name}.yaml needs a description and an example"
        assert f"  {name} " in text and doc.examples[0] in text, name
    for form in SUBCOMMANDS:
        assert form in text
    for doc_page in Path(__file__).parents[2].joinpath("docs").glob("*.md"):  # the page points to every docs page
        assert doc_page.name in " ".join(text.split()), doc_page.name


def test_every_shared_key_and_group_is_on_the_page() -> None:
    text = page()
    for key in shared_keys():
        assert key.meaning, f"config.yaml: {key.name} needs a comment saying what it means"
        if key.name not in ("name", "objective"):
            assert f"{key.name}=" in text
    for group in ("model=", "param=", "transforms=", "optimizer="):
        assert group in text


@pytest.mark.parametrize("name", recipes())
def test_a_recipe_page_explains_each_of_its_keys(name: str) -> None:
    """Every key the recipe adds to the shared ones (as composed, so a key the page's reader misses fails) is listed
    with a meaning."""
    shared = compose([])
    own = [k for k in compose([f"recipe={name}"]) if k not in shared and k != "choices"]
    text = recipe_page(name)
    for key in own:
        assert f"  {key}=" in text, f"{name}: {key} is missing from its help"
    for key in read_recipe(name).keys:
        assert key.meaning, f"recipes/recipe/{name}.yaml: {key.name} needs a comment saying what it means"


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["--help"], "dreamloom: neural-network art"),
        (["-h"], "dreamloom: neural-network art"),
        (["help"], "dreamloom: neural-network art"),
        (["recipe=style", "--help"], "dreamloom recipe=style:"),
        (["help", "texture"], "dreamloom recipe=texture:"),
        (["rerun", "--help"], "usage: dreamloom rerun"),
        (["gallery", "-h"], "usage: dreamloom gallery"),
        (["render", "--help"], "usage: dreamloom render"),
    ],
)
def test_each_form_of_help_answers(args: list[str], first: str) -> None:
    text = asks_for_help(args)
    assert text is not None and text.startswith(first)


def test_runs_and_hydras_own_flags_are_not_help() -> None:
    assert asks_for_help(["recipe=channel", "steps=2"]) is None
    assert asks_for_help(["--hydra-help"]) is None
    assert asks_for_help(["rerun", "x.png"]) is None


def test_help_for_an_unknown_recipe_is_one_line() -> None:
    code, err = command(["recipe=stlye", "--help"])
    assert code == 2 and err.strip() == (
        "dreamloom: error: unknown recipe 'stlye' (did you mean style?); dreamloom --help lists every recipe"
    )


def test_help_loads_neither_torch_nor_hydra() -> None:
    """The page comes at once: the command answers it before the engine (torch, torchvision, Hydra) is imported."""
    probe = (
        "import sys; sys.argv = ['dreamloom', '--help']; from engine.launch import main; main(); "
        "heavy = [m for m in ('torch', 'torchvision', 'hydra') if m in sys.modules]; "
        "print('LOADED', heavy, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "recipes (" in done.stdout
    assert "LOADED []" in done.stderr


def test_the_input_key_names_every_sample() -> None:
    """The help page's list of samples is written in config.yaml; it must name each one dreamloom has."""
    from engine.images import SAMPLES

    meaning = next(k.meaning for k in shared_keys() if k.name == "input")
    assert all(name in meaning for name in SAMPLES if name != "immunohistochemistry"), meaning


def test_the_version_and_a_closed_pipe() -> None:
    done = subprocess.run([sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("dreamloom ") and "Hydra" not in done.stdout
    piped = subprocess.run(
        f"{sys.executable} -m engine --help | head -1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert piped.stdout.startswith("dreamloom:") and "Traceback" not in piped.stderr, piped.stderr


@pytest.mark.parametrize(("args", "words"), [(["--hlep"], "did you mean --help"), (["recipe=class", "-x"], "'-x'")])
def test_an_unknown_option_gets_one_line(args: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert "torch" not in done.stdout
