"""A picture's or checkpoint's stored config is data: a rerun or resume rebuilds the run from the project's own
configs, keeps the stored plain values, and refuses anything that would build or resolve something else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

from engine.checkpoints import CHECKPOINT, FORMAT
from engine.cli import main
from engine.errors import UserError
from engine.export import read_png_config, save_png
from engine.runner import run_recipe
from engine.stored import rebuild
from tests.helpers import compose_recipe, run


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    run(folder, "channel", "steps=2", "size=32", "channel=3", "lr=0.07", "optimizer=sgd", "snapshot_every=0")
    return folder / "image.png"


def _stored(picture: Path) -> dict[str, Any]:
    text = read_png_config(picture)
    assert text is not None
    return yaml.safe_load(text)


def _tampered(picture: Path, folder: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    stored = _stored(picture)
    change(stored)
    out = folder / "shared.png"
    save_png(out, torch.rand(3, 8, 8), yaml.safe_dump(stored))
    return out


def _rerun(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["rerun", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("dreamloom: error: ")
    return err


def test_the_stored_plain_values_come_back_on_the_projects_own_configs(picture: Path) -> None:
    cfg = rebuild(read_png_config(picture) or "", str(picture))
    assert (cfg.channel, cfg.lr, cfg.steps, cfg.size) == (3, 0.07, 2, 32)
    assert cfg.choices.optimizer == "sgd" and cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.run._target_ == "recipes.visualize.render"
    changed = rebuild(read_png_config(picture) or "", str(picture), ["lr=0.5", "optimizer=adam"])
    assert changed.optimizer._target_ == "torch.optim.Adam" and changed.optimizer.lr == 0.5  # follows lr again


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("objective", lambda c: c["objective"].update(_target_="builtins.open", _args_=["{victim}", "w"])),
        ("run", lambda c: c["run"].update(_target_="pathlib.Path.write_text")),
        ("objective.layer", lambda c: c["objective"].update(layer={"_target_": "builtins.open", "file": "{victim}"})),
        ("optimizer", lambda c: c["optimizer"].update(_target_="builtins.open")),
        ("layer", lambda c: c.update(layer="${oc.decode:'{_target_: builtins.open}'}")),
        ("input", lambda c: c.update(input=["${oc.env:HOME}"])),
        ("size", lambda c: c.update(size=[{"_target_": "builtins.open"}])),
    ],
)
def test_a_hostile_picture_is_refused_and_touches_nothing(
    picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, change: Callable[..., None]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")

    def planted(stored: dict[str, Any]) -> None:
        change(stored)
        text = yaml.safe_dump(stored).replace("{victim}", str(victim))
        stored.clear()
        stored.update(yaml.safe_load(text))

    shared = _tampered(picture, tmp_path, planted)
    err = _rerun([str(shared), f"hydra.run.dir={tmp_path / 'out'}"], capsys)
    assert f"at {where}" in err and "was not run" in err
    assert victim.read_text() == "keep me" and not (tmp_path / "out").exists()


def test_an_earlier_versions_picture_still_reruns(picture: Path, tmp_path: Path) -> None:
    def older(stored: dict[str, Any]) -> None:  # before run= and choices: a task string named the code
        del stored["choices"], stored["run"]
        stored["task"] = "render"

    shared = _tampered(picture, tmp_path, older)
    cfg = rebuild(read_png_config(shared) or "", str(shared))
    assert cfg.run._target_ == "recipes.visualize.render" and cfg.channel == 3 and "task" not in cfg


def test_a_key_the_recipe_no_longer_has_is_named(
    picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _tampered(picture, tmp_path, lambda c: c.update(wobble=3))
    rebuild(read_png_config(shared) or "", str(shared))
    assert "left out: wobble" in capsys.readouterr().err


def test_a_hostile_checkpoint_is_refused_before_anything_is_restored(picture: Path, tmp_path: Path) -> None:
    stored = _stored(picture)
    stored["objective"]["_target_"] = "builtins.exec"
    folder = tmp_path / "stopped"
    folder.mkdir()
    torch.save({"format": FORMAT, "config": yaml.safe_dump(stored), "octave": 0}, folder / CHECKPOINT)
    with pytest.raises(UserError, match=r"target 'builtins.exec' at objective"):
        run_recipe(compose_recipe("channel", f"resume={folder}"), tmp_path / "resumed")


def test_a_rerun_of_a_foreign_recipe_name_is_one_line(
    picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = _tampered(picture, tmp_path, lambda c: c["choices"].update(recipe="../../etc/passwd"))
    assert "names no recipe dreamloom has" in _rerun([str(shared)], capsys)


def test_a_damaged_checkpoint_is_refused(picture: Path, tmp_path: Path) -> None:
    folder = tmp_path / "stopped"
    folder.mkdir()
    state = {"format": FORMAT, "config": read_png_config(picture), "octave": 0, "weights": torch.zeros(4096)}
    torch.save(state, folder / CHECKPOINT)
    data = bytearray((folder / CHECKPOINT).read_bytes())
    at = data.find(bytes(64))  # inside the tensor's bytes
    data[at + 32] ^= 0xFF
    (folder / CHECKPOINT).write_bytes(bytes(data))
    with pytest.raises(
        UserError, match=r"checkpoint.pt is damaged \(part of it fails its checksum\); run the recipe again"
    ):
        run_recipe(compose_recipe("channel", f"resume={folder}"), tmp_path / "resumed")


def test_resume_takes_only_the_frames_a_run_wrote(tmp_path: Path) -> None:
    from recipes.motion import start_frames

    frames = tmp_path / "stopped" / "frames"
    frames.mkdir(parents=True)
    for name in ("0000.png", "0001.png", "0003.png", ".0002.png.tmp.png", "notes.png"):
        Image.new("RGB", (8, 8), "red").save(frames / name)
    cfg = compose_recipe("style_video", f"resume={tmp_path / 'stopped'}")
    copied = start_frames(cfg, tmp_path / "new", limit=10, hw=(8, 8))
    assert [p.name for p in copied] == ["0000.png", "0001.png"]  # up to the first gap; hidden and odd names ignored
    with pytest.raises(UserError, match=r"0000.png' is not a frame the stopped run wrote"):  # another size
        start_frames(cfg, tmp_path / "other", limit=10, hw=(8, 16))


@pytest.mark.parametrize("odd", ["link", "text"])
def test_resume_copies_no_file_from_outside_the_stopped_run(tmp_path: Path, odd: str) -> None:
    from recipes.motion import start_frames

    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    frames = tmp_path / "stopped" / "frames"
    frames.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(frames / "0000.png")
    if odd == "link":  # a shared run folder whose second frame points at a private file
        (frames / "0001.png").symlink_to(secret)
    else:
        (frames / "0001.png").write_text("SECRET")
    cfg = compose_recipe("dream_zoom", f"resume={tmp_path / 'stopped'}")
    with pytest.raises(UserError, match=r"0001.png' is not a frame the stopped run wrote; resume a run folder"):
        start_frames(cfg, tmp_path / "new", limit=10, hw=(8, 8))
    assert not (tmp_path / "new").exists()  # nothing copied, nothing made


def test_a_fault_of_ours_leaves_the_folder_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.cli
    from engine.results import claim

    folder = claim(tmp_path / "run", True, "hydra.run.dir=")

    def fault(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(engine.cli, "run_recipe", fault)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback, for the report
        engine.cli._run_and_answer(compose_recipe("channel"), folder, "channel")
    assert not folder.exists()  # nothing was written: no folder, and the name is free for the next run
    assert claim(tmp_path / "run", True, "hydra.run.dir=") == tmp_path / "run"


def test_a_rerun_of_a_folder_without_a_picture_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sweep" / "0").mkdir(parents=True)
    (tmp_path / "sweep" / "1").mkdir()
    said = _rerun([str(tmp_path / "sweep")], capsys)
    assert "holds no image.png (a sweep's folder: pass one job's, such as" in said and "does not exist" not in said
    assert said.split("such as ")[1].startswith(str(tmp_path / "sweep" / "0"))


def test_a_value_left_missing_is_one_line_from_every_entry(
    picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``???`` is OmegaConf's mark of a value still to be given: stored in a picture, given to a rerun, on the
    command line or through the Python API, it is refused by name before anything runs."""
    from engine import api
    from tests.helpers import command

    stored = _tampered(picture, tmp_path, lambda c: c.update(seed="???"))
    assert "seed=??? leaves seed without a value" in _rerun([str(stored)], capsys)
    inside = _tampered(picture, tmp_path, lambda c: c.update(size=[32, "???"]))
    assert "size.1=??? leaves size.1 without a value" in _rerun([str(inside)], capsys)
    for change, words in (("name=???", "name=??? leaves name"), ("size=[32,???]", "cannot be applied")):
        assert words in _rerun([str(picture), change, f"hydra.run.dir={tmp_path / 'out'}"], capsys)
    code, err = command(["recipe=channel", "steps=1", "size=32", "seed=???", f"hydra.run.dir={tmp_path / 'out'}"])
    assert code == 2 and "seed=??? leaves seed without a value" in err and len(err.splitlines()) == 1, err
    with pytest.raises(UserError, match=r"steps=\?\?\? leaves steps without a value"):
        api.channel(steps="???", size=32, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_picture_to_rerun_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A chunk broken between the picture's data chunks (Pillow reads it only when it decodes the picture), and a
    picture of more pixels than any run makes, whose decoding would only warn: each one line, no warning."""
    import numpy as np

    save_png(tmp_path / "big.png", torch.rand(3, 300, 300), "name: channel\n")
    data = bytearray((tmp_path / "big.png").read_bytes())
    second = data.find(b"IDAT", data.find(b"IDAT") + 4)
    assert second > 0, "the picture needs two data chunks"
    data[second : second + 4] = b"ID!T"
    (tmp_path / "broken.png").write_bytes(bytes(data))
    assert "carries no dreamloom config" in _rerun([str(tmp_path / "broken.png")], capsys)
    Image.fromarray(np.zeros((10_000, 10_000), dtype=np.uint8)).save(tmp_path / "vast.png")
    assert "carries no dreamloom config" in _rerun([str(tmp_path / "vast.png")], capsys)


def test_home_folder_paths_are_read_where_the_shell_left_them(
    picture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``~`` reaches the command unexpanded when quoted, or after ``key=`` in zsh: rerun, resume and gallery read it as
    the home folder."""
    monkeypatch.setenv("HOME", str(picture.parent.parent))
    home = f"~/{picture.parent.name}"
    main(["rerun", home, f"hydra.run.dir={tmp_path / 'again'}"])
    assert (tmp_path / "again" / "image.png").is_file()
    said = _rerun_or_resume(["resume=" + home], capsys)
    assert "is a run that finished" in said, said
    main(["gallery", home])
    assert (picture.parent / "index.html").is_file()


def _rerun_or_resume(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    return capsys.readouterr().err.strip()
