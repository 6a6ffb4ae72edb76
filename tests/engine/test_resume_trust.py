"""A checkpoint is data from a file a user was given: ``resume=`` answers a damaged, foreign or hostile one with one
line and exit 2, before it makes any folder (or removing the one it made), and never restores what does not fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import engine.callbacks
from engine.checkpoints import CHECKPOINT, FORMAT, load_checkpoint, resume_name
from engine.errors import UserError
from engine.results import Interrupted
from engine.runner import run_recipe
from tests.helpers import command, compose_recipe

pytestmark = pytest.mark.slow

KEYS = ("size=32", "steps=8", "checkpoint_every=2", "device=cpu")
"""A run of 8 steps stopped after 5: its checkpoint is of step 4."""


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checkpoint of a channel run stopped part way, as its folder holds it."""
    folder = tmp_path_factory.mktemp("run") / "cut"
    counted = engine.callbacks.Recorder.on_step

    def stop(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        counted(self, step, loss, image_fn)
        if self.steps == 5:
            raise KeyboardInterrupt  # as Ctrl-C would

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Interrupted):
        patch.setattr(engine.callbacks.Recorder, "on_step", stop)
        run_recipe(compose_recipe("channel", *KEYS), folder, "channel")
    return torch.load(folder / CHECKPOINT, weights_only=True)


def _crafted(state: dict[str, Any], tmp_path: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """A run folder holding ``state`` as ``change`` left it (a copy: the fixture's state stays as it was)."""
    crafted = {**state, "record": dict(state["record"]), "optimizer": _copied(state["optimizer"])}
    change(crafted)
    folder = tmp_path / "stopped"
    folder.mkdir()
    torch.save(crafted, folder / CHECKPOINT)
    return folder


def _copied(optimizer: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": {k: dict(v) for k, v in optimizer["state"].items()},
        "param_groups": [dict(g) for g in optimizer["param_groups"]],
    }


def _with_config(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """A change of the stored config's keys."""

    def apply(state: dict[str, Any]) -> None:
        config = yaml.safe_load(state["config"])
        change(config)
        state["config"] = yaml.safe_dump(config)

    return apply


def _two_groups(state: dict[str, Any]) -> None:
    groups = state["optimizer"]["param_groups"]
    groups.append({**groups[0], "params": [5]})


def _misfit_moments(state: dict[str, Any]) -> None:
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(5)


def _config_alone(state: dict[str, Any]) -> None:
    for key in set(state) - {"format", "config"}:
        del state[key]


def _views(count: int) -> list[torch.Tensor]:
    one = torch.zeros(64, 64, 3, dtype=torch.uint8)
    return [one[:] for _ in range(count)]


CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "config-a-number": (lambda s: s.update(config=12345), "its config is not the text of a run's keys"),
    "config-a-list": (lambda s: s.update(config=["a"]), "its config is not the text of a run's keys"),
    "config-missing": (lambda s: s.pop("config"), "its config is not the text of a run's keys"),
    "config-with-aliases": (lambda s: s.update(config="a: &x [1]\nb: *x\n"), "it uses YAML aliases"),
    "config-too-long": (lambda s: s.update(config="a: " + "x" * 1_000_001), "longer than 1000000 characters"),
    "config-not-a-mapping": (lambda s: s.update(config="- a\n- b\n"), "its config is not a mapping"),
    "config-nested-deep": (lambda s: s.update(config="a: " + "[" * 200 + "]" * 200), "nested more than 32 deep"),
    "config-nested-past-yaml": (lambda s: s.update(config="a: " + "[" * 5000 + "]" * 5000), "nested more than 32"),
    "config-steps-not-a-number": (_with_config(lambda c: c.update(steps="x")), "its config's steps is not a whole"),
    "config-foreign-target": (
        _with_config(lambda c: c["objective"].update(_target_="builtins.exec")),
        "target 'builtins.exec' at objective",
    ),
    "record-empty": (lambda s: s.update(record={}), "its 'record' is not what the run counted"),
    "record-steps-text": (lambda s: s["record"].update(steps="4"), "its 'record' is not what the run counted"),
    "record-seconds-huge": (lambda s: s["record"].update(seconds=10**400), "its 'record' is not what the run"),
    "optimizer-other-groups": (_two_groups, "optimizer state does not fit this run's Adam"),
    "optimizer-misfit-moments": (_misfit_moments, "optimizer state does not fit this run's Adam"),
    "optimizer-not-a-state": (lambda s: s.update(optimizer=[1, 2]), "its 'optimizer' is not an optimizer's state"),
    "generator-3-bytes": (lambda s: s.update(generator=torch.zeros(3, dtype=torch.uint8)), "its 'generator' is not"),
    "generator-not-mt19937": (
        lambda s: s.update(generator=torch.full_like(s["generator"], 255)),
        "its 'generator' is not a random generator's state",
    ),
    "frame-stride-text": (lambda s: s.update(frame_stride="x"), "its 'frame_stride' is not a power of two"),
    "step-beyond-the-run": (lambda s: s.update(step=10**12), "its 'step' is not a whole number from 0 to 8"),
    "step-negative": (lambda s: s.update(step=-1), "its 'step' is not a whole number from 0 to 8"),
    "octave-beyond-the-run": (lambda s: s.update(octave=3), "its 'octave' is not a whole number from 0 to 0"),
    "frames-not-pictures": (lambda s: s.update(frames=[torch.zeros(3)]), "its 'frames' is not a list of RGB frames"),
    "frames-views-of-one": (  # 600 frames that are one frame's bytes: a small file, gigabytes once read
        lambda s: s.update(frames=_views(600)),
        "its tensors are views of the same bytes",
    ),
    "params-missing": (lambda s: s.pop("params"), "it lacks params"),
    "params-blown-up": (lambda s: s.update(params=[torch.zeros(1).expand(10**9)]), "its 'params' is not a list"),
    "config-alone": (_config_alone, "it holds no optimization over octaves to carry on"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_checkpoint_is_one_line_and_leaves_no_folder(stopped: dict[str, Any], tmp_path: Path, case: str) -> None:
    change, says = CASES[case]
    folder = _crafted(stopped, tmp_path, change)
    code, err = command([f"resume={folder}"])
    assert code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dreamloom: error: "), err
    assert says in err and ("start the run again" in err or "start the recipe by name" in err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stopped"]  # no stopped_resumed/, not even its log


@pytest.mark.parametrize("name", ["a,b", "my run", "x=y", "${oc.env:HOME}", 5])
def test_a_stored_name_the_command_line_cannot_carry_becomes_run(
    stopped: dict[str, Any], tmp_path: Path, name: object
) -> None:
    folder = _crafted(stopped, tmp_path, _with_config(lambda c: c.update(name=name)))
    assert resume_name(folder) == "run"


def test_a_checkpoint_with_an_odd_name_still_resumes(stopped: dict[str, Any], tmp_path: Path) -> None:
    folder = _crafted(stopped, tmp_path, _with_config(lambda c: c.update(name="a,b")))
    code, err = command([f"resume={folder}"])
    assert code == 0, err
    assert (tmp_path / "stopped_resumed" / "image.png").is_file()


def test_the_checkpoints_dreamloom_writes_pass(stopped: dict[str, Any], tmp_path: Path) -> None:
    folder = _crafted(stopped, tmp_path, lambda s: s.pop("frame_stride"))  # an older checkpoint lacks it
    assert load_checkpoint(folder)["step"] == 4 and resume_name(folder) == "channel"
    alone = tmp_path / "frames"  # a run of frames keeps only its config: its progress is its frames folder
    alone.mkdir()
    torch.save({"format": FORMAT, "config": stopped["config"]}, alone / CHECKPOINT)
    assert load_checkpoint(alone)["config"] == stopped["config"]


def test_the_config_is_read_before_the_progress(stopped: dict[str, Any], tmp_path: Path) -> None:
    """A run rebuilt from a checkpoint reads its config alone first: a foreign target is named before anything
    else of the file is looked at."""
    hostile = _with_config(lambda c: c["objective"].update(_target_="builtins.exec"))
    folder = _crafted(stopped, tmp_path, lambda s: (hostile(s), s.pop("params")))
    with pytest.raises(UserError, match=r"target 'builtins.exec' at objective"):
        run_recipe(compose_recipe("channel", f"resume={folder}"), tmp_path / "resumed")
    with pytest.raises(UserError, match=r"it lacks params"):
        load_checkpoint(folder)


def _flagged(archive: bytes, flag: int = 0, method: int | None = None) -> bytes:
    """A zip whose entries all carry the general-purpose ``flag`` bit (1: encrypted) or compression ``method``, in
    both the local and the central headers, as another tool could have written it."""
    data = bytearray(archive)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            data[at + flags_at] |= flag
            if method is not None:
                data[at + flags_at + 2 : at + flags_at + 4] = method.to_bytes(2, "little")
            at = data.find(signature, at + 4)
    return bytes(data)


@pytest.mark.parametrize("kind", ["encrypted", "unknown-method"])
def test_a_zip_python_cannot_check_is_one_line(stopped: dict[str, Any], tmp_path: Path, kind: str) -> None:
    folder = _crafted(stopped, tmp_path, lambda state: None)
    archive = (folder / CHECKPOINT).read_bytes()
    changed = _flagged(archive, flag=1) if kind == "encrypted" else _flagged(archive, method=99)
    (folder / CHECKPOINT).write_bytes(changed)
    with pytest.raises(UserError, match="is not a checkpoint dreamloom can read"):
        load_checkpoint(folder)


@pytest.mark.parametrize("kind", ["nested", "pipe"])
def test_an_odd_metrics_file_beside_no_checkpoint_is_one_line(tmp_path: Path, kind: str) -> None:
    """Without a checkpoint the folder's metrics say whether the run finished: a file nested past any reader's depth,
    or a pipe that would never end, is read as no metrics, not followed."""
    import os

    folder = tmp_path / "shared"
    folder.mkdir()
    if kind == "nested":
        (folder / "metrics.json").write_text("[" * 100_000)
    else:
        os.mkfifo(folder / "metrics.json")
    with pytest.raises(UserError, match=r"holds no checkpoint\.pt"):
        load_checkpoint(folder)
