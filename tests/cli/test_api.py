"""The Python API: every recipe is a function with the recipe's keys and defaults, and answers bad keys clearly."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.callbacks
from engine import api
from engine.configs import override_value
from engine.errors import UserError
from engine.results import Interrupted


def test_each_package_imports_first_on_its_own() -> None:
    root = Path(__file__).resolve().parents[2]
    packages = ["engine", "objectives", "regularizers", "recipes"]
    procs = [
        subprocess.Popen([sys.executable, "-c", f"import {p}"], cwd=root, stderr=subprocess.PIPE, text=True)
        for p in packages
    ]
    for package, proc in zip(packages, procs, strict=True):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"import {package}: {err[-500:]}"


def test_every_recipe_is_a_function_with_its_keys_and_defaults() -> None:
    for recipe in api.RECIPES:
        assert callable(getattr(api, recipe))
    params = inspect.signature(api.deepdream).parameters
    assert params["layer"].default == "features.10" and params["octaves"].default == 4
    assert params["steps"].default == 20 and params["seed"].default == 0  # a shared key, the recipe's value
    assert "frames" in inspect.signature(api.dream_zoom).parameters
    assert "to" in inspect.signature(api.interpolate).parameters  # "from" is Python's: it goes in **keys
    assert api.class_.__name__ == "class" and "class_" in dir(api)  # class is Python's: a trailing underscore
    assert inspect.signature(api.class_).parameters["target"].default == "flamingo"
    # defaults a recipe takes from its own defaults list (style_video inherits the style recipe's keys)
    assert inspect.signature(api.texture).parameters["octave_scale"].default == 1.5
    video = inspect.signature(api.style_video).parameters
    assert video["init"].default == "content" and video["colors"].default == "style"
    sweep = inspect.signature(api.inversion_sweep).parameters
    assert sweep["tv"].default == 0.5 and sweep["octaves"].default == 2
    assert inspect.signature(api.interpolate).parameters["param"].default == "shared"  # a config group's option
    assert api.render is api.run
    with pytest.raises(AttributeError, match="did you mean deepdream"):
        api.deepdraem  # noqa: B018


@pytest.mark.slow
def test_a_recipe_function_runs_and_hands_back_the_picture(tmp_path: Path) -> None:
    result = api.channel(out=tmp_path / "run", size=48, steps=2, channel=3, snapshot_every=0, device="cpu")
    assert result.folder == tmp_path / "run"
    assert result.metrics["steps"] == 2 and result.metrics["objective"] == "channel(features.10:3)"
    assert result.picture.shape == (1, 3, 48, 48)
    styled = api.run("texture", out=tmp_path / "tex", style=["brick"], size=[32, 48], steps=1, octaves=1)
    assert styled.picture.shape == (1, 3, 32, 48)
    table = api.layers(out=tmp_path / "layers")  # a table, no picture: asking for one is answered
    assert (table.folder / "layers.txt").is_file()
    with pytest.raises(UserError, match="recipe=layers writes no picture; read its files in"):
        table.picture  # noqa: B018


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda f: api.channel(out=f, stpes=2), ("no key 'stpes'", "did you mean steps", "--help lists its keys")),
        (lambda f: api.channel(out=f, steps=0), ("steps=0 is not valid",)),
        (lambda f: api.render(f.parents[1], out=f), ("is a folder, not a recipe", "engine.render.render_folder")),
        (lambda f: api.channel(out=""), ("out='' is not a folder path",)),
        (
            lambda f: api.run("channel", out=f, recipe="class", size=32, steps=1),
            ("recipe=class is not a key of the recipe called",),
        ),
        (lambda f: api.channel(out=f, model="nope"), ("unknown model 'nope'",)),
        (lambda f: api.channel(out=f, input="chelsea"), ("input=chelsea would only set", "set init=input")),
        (lambda f: api.channel(out=f, overrides=[None]), ("is not a list of 'key=value' texts",)),
        (lambda f: api.channel(out=f, overrides="steps=2"), ("is not a list of 'key=value' texts",)),
        (lambda f: api.deepdream(out=f, input=np.zeros((8, 8, 3))), ("input: a value of type ndarray", "file path")),
        (lambda f: api.deepdream(out=f, input=torch.zeros(1, 3, 8, 8)), ("input: a value of type Tensor",)),
        (lambda f: api.channel(out=f, model=object()), ("model: a value of type object",)),
        (lambda f: api.deepdream(out=f, input="~nosuchuser/cat.jpg"), ("this machine has no user ~nosuchuser",)),
    ],
    ids=[
        *("mistyped-key", "impossible-number", "render-a-folder", "empty-out", "recipe-twice", "unknown-model"),
        "input-without-init",
        "none-override",
        *("text-overrides", "array-picture", "tensor-picture", "object-option", "unknown-user"),
    ],
)
def test_bad_keys_raise_the_one_line_answer(tmp_path: Path, call, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError) as caught:
        call(tmp_path / "made" / "run")
    for w in words:
        assert w in str(caught.value)
    assert not (tmp_path / "made").exists()  # nor the folder made to hold it


def test_out_must_be_a_path_and_numpy_numbers_are_numbers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="out=5 is not a folder path"):
        api.channel(out=5)  # type: ignore[arg-type]
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a folder; choose another out="):
        api.channel(out=tmp_path / "file" / "run")
    assert [override_value(v) for v in (np.bool_(True), np.float32(0.5), (np.int64(2), 3))] == ["true", "0.5", "[2,3]"]
    run = api.channel(out=tmp_path / "run", steps=np.int64(1), size=np.int64(32), octaves=1, lr=np.float32(0.05))
    assert run.metrics["steps"] == 1


def test_keywords_only_and_resume_as_the_command_takes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A positional value is refused (it once became the run's folder); ``resume=`` refuses other keys and another
    recipe's run, and puts the new run beside the stopped one, as the command does."""
    with pytest.raises(UserError, match=r"api.class_\(\) takes keywords only, not 'goldfish'"):
        api.class_("goldfish", size=32)
    assert not (tmp_path / "goldfish").exists() and not Path("goldfish").exists()
    counted = engine.callbacks.Recorder.on_step

    def stop(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        counted(self, step, loss, image_fn)
        if self.steps == 3:
            raise KeyboardInterrupt  # as Ctrl-C would

    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        patch.setattr(engine.callbacks.Recorder, "on_step", stop)
        api.channel(out=tmp_path / "cut", size=32, steps=6, checkpoint_every=2, snapshot_every=0, device="cpu")
    with pytest.raises(UserError, match="so steps, size would be ignored"):
        api.channel(resume=str(tmp_path / "cut"), steps=9, size=40)
    with pytest.raises(
        UserError, match=r"holds a recipe=channel run, not class; resume it with api.run\(.channel., resume=…\)"
    ):
        api.class_(resume=str(tmp_path / "cut"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut"]
    done = api.channel(resume=str(tmp_path / "cut"))
    assert done.folder == tmp_path / "cut_resumed" and done.metrics["steps"] == 6


def test_a_failed_run_keeps_the_users_own_empty_folder(tmp_path: Path) -> None:
    """``out=`` may name a folder the user made: a run that fails leaves it as it was (and removes one it made)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    for out in (mine, tmp_path / "made" / "here"):
        with pytest.raises(UserError, match="out of range"):
            api.channel(out=out, channel=99999, size=32, steps=1)
    assert mine.is_dir() and not list(mine.iterdir())
    assert not (tmp_path / "made").exists()
    with pytest.raises(UserError, match="no user ~nosuchuser"):
        api.channel(resume="~nosuchuser/run")
