"""Runs can be repeated and resumed: the same keys and seed give the same bytes, a picture's embedded config reruns
it, and a run stopped part way carries on from its checkpoint to the picture it would have made."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import engine.callbacks
from engine.checkpoints import CHECKPOINT
from engine.cli import main as dreamloom_main
from engine.export import read_png_config
from engine.results import Interrupted
from engine.runner import run_recipe
from tests.helpers import command, compose_recipe

pytestmark = pytest.mark.slow

SMALL = {
    "channel": ("channel", ("size=64", "steps=6")),
    "deepdream": ("deepdream", ("size=[96,128]", "octaves=2", "steps=3", "tile_size=64")),  # tiled: seeded cuts too
    "maco": ("channel", ("size=64", "steps=6", "param=maco")),
    "alpha": ("channel", ("size=64", "steps=6", "param=alpha")),  # new random backgrounds each step, seeded
    "cppn": ("class", ("size=48", "octaves=2", "steps=3", "param=cppn", "param.fit_steps=5")),  # fitted to octave 1
    "shared": ("interpolate", ("size=32", "frames=3", "steps=4")),  # a batch with shared grids
}


def _dreamloom(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (:func:`tests.helpers.command`), answered as a finished process would be."""
    code, err = command(list(args))
    return subprocess.CompletedProcess(list(args), code, "", err)


@pytest.mark.parametrize("case", list(SMALL))
def test_the_same_keys_and_seed_give_the_same_bytes(tmp_path: Path, case: str) -> None:
    recipe, keys = SMALL[case]
    pictures = []
    for run in ("first", "second"):
        run_recipe(compose_recipe(recipe, *keys, "device=cpu"), tmp_path / run, recipe)
        pictures.append((tmp_path / run / "image.png").read_bytes())
    assert pictures[0] == pictures[1]
    run_recipe(compose_recipe(recipe, *keys, "device=cpu", "seed=1"), tmp_path / "seed1", recipe)
    assert (tmp_path / "seed1" / "image.png").read_bytes() != pictures[0]


def test_rerun_repeats_a_run_from_its_picture_alone(tmp_path: Path) -> None:
    first = tmp_path / "first"
    run_recipe(compose_recipe("channel", *SMALL["channel"][1], "device=cpu"), first, "channel")
    again = _dreamloom("rerun", str(first / "image.png"), f"hydra.run.dir={tmp_path / 'again'}")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "image.png").read_bytes() == (first / "image.png").read_bytes()
    longer = _dreamloom("rerun", str(first / "image.png"), "steps=9", f"hydra.run.dir={tmp_path / 'longer'}")
    assert longer.returncode == 0, longer.stderr
    assert json.loads((tmp_path / "longer" / "metrics.json").read_text())["steps"] == 9


def test_an_analysis_view_reruns_from_another_folder(tmp_path: Path) -> None:
    import numpy as np

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    Image.open(Path(__file__).parents[2] / "docs" / "images" / "sample_chelsea.png").save(home / "cat.png")
    with contextlib.chdir(home):  # the picture named relative to where the run starts
        code, err = command(["recipe=saliency", "input=cat.png", "size=64", "hydra.run.dir=run"])
    assert code == 0, err
    with contextlib.chdir(elsewhere):
        code, err = command(["rerun", str(home / "run" / "image.png"), "hydra.run.dir=again"])
    assert code == 0, err
    assert (elsewhere / "again" / "image.png").read_bytes() == (home / "run" / "image.png").read_bytes()
    assert np.array_equal(np.load(elsewhere / "again" / "maps.npy"), np.load(home / "run" / "maps.npy"))


@pytest.mark.parametrize(
    ("make", "args", "words"),
    [
        (None, ("nothere.png",), ("nothere.png' does not exist", "image.png of an earlier run")),
        ("plain", ("plain.png",), ("carries no dreamloom config", "image.png that a dreamloom run wrote")),
        ("run", ("run/image.png", "stpes=3"), ("no key 'stpes'", "did you mean steps")),
        ("run", ("run/image.png", "steps"), ("'steps' is not key=value",)),
    ],
    ids=["missing", "not-from-dreamloom", "mistyped-key", "not-key-value"],
)
def test_rerun_answers_bad_input_in_one_line(tmp_path: Path, make: str | None, args: tuple[str, ...], words) -> None:  # type: ignore[no-untyped-def]
    if make == "plain":
        Image.new("RGB", (8, 8), "teal").save(tmp_path / "plain.png")
    if make == "run":
        run_recipe(compose_recipe("channel", "size=32", "steps=1", "device=cpu"), tmp_path / "run", "channel")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = _dreamloom("rerun", *(str(tmp_path / a) if "/" in a or a.endswith(".png") else a for a in args))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("dreamloom: error: "), out.stderr
    for w in words:
        assert w in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


RESUMABLE = {
    "channel": ("channel", ("size=64", "steps=12"), 10),  # Adam's moments must come back too
    "deepdream": ("deepdream", ("size=[64,96]", "octaves=3", "steps=4"), 9),  # stopped in the third octave
    "style": ("style", ("size=80", "octaves=2", "steps=4"), 5),  # its last octave reads a half-size copy too
    "flat style": ("style", ("content=coffee", "style=logo", "size=80", "octaves=2", "steps=4"), 5),  # flatten=auto
    "maco": ("channel", ("size=48", "steps=8", "param=maco"), 6),
    "alpha": ("channel", ("size=48", "steps=8", "param=alpha"), 6),
    "cppn": ("channel", ("size=48", "octaves=2", "steps=4", "param=cppn", "param.fit_steps=5"), 5),
    "shared": ("interpolate", ("size=32", "frames=3", "steps=8"), 6),
}


@pytest.mark.parametrize("case", list(RESUMABLE))
def test_a_resumed_run_ends_on_the_same_picture(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe, keys, stop_after = RESUMABLE[case]
    run_recipe(compose_recipe(recipe, *keys, "checkpoint_every=4", "device=cpu"), tmp_path / "whole", recipe)
    assert not (tmp_path / "whole" / CHECKPOINT).exists()  # a finished run keeps no checkpoint

    counted = engine.callbacks.Recorder.on_step

    def stop(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        counted(self, step, loss, image_fn)
        if self.steps == stop_after:
            raise KeyboardInterrupt  # as Ctrl-C would, part way through

    monkeypatch.setattr(engine.callbacks.Recorder, "on_step", stop)
    with pytest.raises(Interrupted, match="carry on with: dreamloom resume="):
        run_recipe(compose_recipe(recipe, *keys, "checkpoint_every=4", "device=cpu"), tmp_path / "cut", recipe)
    assert (tmp_path / "cut" / CHECKPOINT).is_file()

    taken: list[int] = []

    def count(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        taken.append(step)
        counted(self, step, loss, image_fn)

    monkeypatch.setattr(engine.callbacks.Recorder, "on_step", count)
    capsys.readouterr()
    dreamloom_main([f"resume={tmp_path / 'cut'}"])
    steps = next(k for k in keys if k.startswith("steps=")).split("=")[1]
    assert re.search(rf"dreamloom: carrying on from step \d+ of {steps}\b", capsys.readouterr().err)
    whole, resumed = tmp_path / "whole", tmp_path / "cut_resumed"  # beside the run it carries on
    total = json.loads((whole / "metrics.json").read_text())["steps"]
    assert len(taken) == total - stop_after // 4 * 4  # only the steps after the last checkpoint were run again
    assert (resumed / "image.png").read_bytes() == (whole / "image.png").read_bytes()
    assert (resumed / "progress.gif").read_bytes() == (whole / "progress.gif").read_bytes()
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and metrics["steps"] == json.loads((whole / "metrics.json").read_text())["steps"]
    if case == "flat style":  # flattened, and still auto in the resumed picture's config: a rerun decides again
        assert metrics["flatten"] is not None and "\nflatten: auto\n" in str(read_png_config(resumed / "image.png"))


@pytest.mark.parametrize("where", ["input-folder", "run-folder"])
def test_permission_denied_names_the_path_it_was_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Refused to read an input folder is no failure to write the run; refused inside the run folder still is."""
    import errno

    import engine.results
    from engine.errors import UserError

    pictures, folder = tmp_path / "pictures", tmp_path / "run"
    pictures.mkdir()
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (40, 40), (60 * k, 90, 200 - 60 * k)).save(pictures / f"{k}.png")
    denied = pictures if where == "input-folder" else folder / "metrics.json"

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied", str(denied))

    if where == "input-folder":
        listing = Path.iterdir
        monkeypatch.setattr(Path, "iterdir", lambda p: refuse() if p == pictures else listing(p))
    else:
        monkeypatch.setattr(engine.results, "save_json", refuse)
    cfg = compose_recipe("embedding", f"folder={pictures}", "method=pca", "size=32", "device=cpu")
    expected = (
        rf"^'{re.escape(str(pictures))}' could not be opened \(Permission denied\); give this user access to it or use"
        if where == "input-folder"
        else r"^could not write the results into .* \(Permission denied\); nothing was kept"
    )
    with pytest.raises(UserError, match=expected):
        run_recipe(cfg, folder, "embedding")


@pytest.mark.parametrize("every", [0, 1], ids=["nothing-to-resume", "checkpoint-kept"])
def test_a_full_disk_leaves_no_half_written_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    import errno

    import engine.results
    from engine.errors import UserError

    def no_space(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.results, "save_json", no_space)  # the picture and GIF are written, the metrics fail
    folder = tmp_path / "run"
    keys = ("size=32", "steps=3", f"checkpoint_every={every}", "device=cpu")
    fix = "the run so far is kept there: free some space, then dreamloom resume=" if every else "nothing was kept"
    with pytest.raises(UserError, match=rf"could not write the results into .* \(No space left on device\); {fix}"):
        run_recipe(compose_recipe("channel", *keys), folder, "channel")
    assert sorted(p.name for p in folder.iterdir()) == ([CHECKPOINT] if every else [])
