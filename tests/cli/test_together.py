"""Runs started at the same moment never share a folder: default names stay apart, a named folder goes to one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import api
from engine.errors import UserError
from engine.results import RESERVED

pytestmark = pytest.mark.slow
SMALL = ("recipe=channel", "steps=2", "size=32", "snapshot_every=0", "device=cpu")


def _together(args: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "engine", *a], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
        for a in args
    ]
    return [
        subprocess.CompletedProcess(p.args, p.wait(timeout=600), "", p.stderr.read() if p.stderr else "") for p in procs
    ]


def _whole(folder: Path) -> dict[str, object]:
    assert (folder / "image.png").is_file() and not (folder / RESERVED).exists()
    return json.loads((folder / "metrics.json").read_text())


def test_runs_started_together_keep_every_result(tmp_path: Path) -> None:
    done = _together([[*SMALL, f"channel={c}"] for c in range(4)], tmp_path)
    assert all(d.returncode == 0 for d in done), [d.stderr[-500:] for d in done]
    folders = sorted(p.parent for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert len(folders) == 4
    channels = sorted(str(_whole(f)["objective"]) for f in folders)
    assert channels == [f"channel(features.10:{c})" for c in range(4)]


def test_one_named_folder_goes_to_one_run(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    done = _together([[*SMALL, f"channel={c}", f"hydra.run.dir={shared}"] for c in range(3)], tmp_path)
    won = [d for d in done if d.returncode == 0]
    lost = [d for d in done if d.returncode == 2]
    assert len(won) == 1 and len(lost) == 2, [d.stderr[-500:] for d in done]
    assert all(("is in use by another run" in d.stderr) != ("is not empty" in d.stderr) for d in lost)
    assert _whole(shared)["steps"] == 2 and len(list(shared.rglob("metrics.json"))) == 1


def test_sweeps_started_together_keep_every_job(tmp_path: Path) -> None:
    sweep = ["-m", *SMALL, "channel=0,1"]
    done = _together([[*sweep, "seed=1"], [*sweep, "seed=2"]], tmp_path)  # the same second: the same default name
    assert all(d.returncode == 0 for d in done), [d.stderr[-500:] for d in done]
    jobs = sorted(p.parent for p in (tmp_path / "outputs" / "multirun").rglob("metrics.json"))
    assert len(jobs) == 4 and len({j.parent for j in jobs}) == 2  # two sweep folders of two jobs each
    assert sorted(int(_whole(j)["seed"]) for j in jobs) == [1, 1, 2, 2]  # type: ignore[call-overload]
    assert not list((tmp_path / "outputs").rglob(RESERVED))


def test_sweeps_named_for_the_same_second_get_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    import hydra.core.utils

    from engine.arguments import check_sweep
    from engine.results import release

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Frozen:
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)  # Hydra's ${now:} reads the clock through it
    monkeypatch.chdir(tmp_path)
    sweep = ["-m", "recipe=channel", "channel=0,1"]
    first, second = check_sweep(sweep), check_sweep(sweep)
    assert first == Path("outputs/multirun/2026-01-02/03-04-05_channel")
    assert second == first.with_name("03-04-05_channel_2") and (second / RESERVED).exists()
    named = ["-m", "recipe=channel", "channel=0,1", f"hydra.sweep.dir={tmp_path / 'mine'}"]
    check_sweep(named)
    with pytest.raises(UserError, match=r"sweep folder .* is in use by another run"):
        check_sweep(named)
    for folder in (first, second, tmp_path / "mine"):
        release(folder)


def test_ctrl_c_before_a_sweeps_first_job_leaves_no_folder(tmp_path: Path) -> None:
    from engine.cli import _sweep_stopped
    from engine.results import claim

    folder = claim(tmp_path / "sweep", True, "hydra.sweep.dir=")
    (folder / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(SystemExit) as stopped:
        _sweep_stopped(folder)
    assert stopped.value.code == 130 and not folder.exists()


@pytest.mark.parametrize("name", ["sp ace & co", "hash#tag?q=1%20", "été/ünï", "it's"])
def test_the_python_api_takes_any_path(name: str, tmp_path: Path) -> None:
    picture = tmp_path / f"{name} in.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (40, 30), "orange").save(picture)
    out = tmp_path / name / "run"
    result = api.deepdream(input=str(picture), out=out, size=32, steps=1, octaves=1, device="cpu", snapshot_every=0)
    assert result.folder == out and _whole(out)["image_size"] == [24, 32]
    with pytest.raises(UserError, match="already exists and is not empty; choose another out="):
        api.channel(out=out, steps=1)


FAULTY_JOB = """
import sys
import engine.cli

real = engine.cli.run_recipe


def run_recipe(cfg, folder, recipe):
    if cfg.channel == 1:
        raise RuntimeError("a fault in one job")
    return real(cfg, folder, recipe)


engine.cli.run_recipe = run_recipe
engine.cli.main(sys.argv[1:])
"""


def test_a_fault_in_one_job_of_a_sweep_spares_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", *SMALL, "channel=0,1,2", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run([sys.executable, "-c", FAULTY_JOB, *args], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-800:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("dreamloom: error: ")]
    assert "job 1" in errors[0] and "failed unexpectedly (RuntimeError: a fault in one job)" in errors[0]
    assert "1 job(s) of the sweep failed" in errors[1] and f"the sweep's runs are in {sweep}" in errors[1]
    assert "Traceback" not in done.stderr
    assert "Traceback" in (sweep / "1" / "error.txt").read_text()
    assert [_whole(sweep / job)["objective"] for job in ("0", "2")] == [f"channel(features.10:{c})" for c in (0, 2)]


def test_a_sweep_ends_by_naming_its_folder(tmp_path: Path) -> None:
    (done,) = _together([["-m", *SMALL, "channel=0,1"]], tmp_path)
    assert done.returncode == 0, done.stderr[-800:]
    last = done.stderr.splitlines()[-1]
    assert last.startswith("dreamloom: wrote 2 runs in outputs/multirun/") and last.endswith(" (one folder per job)")
    said = done.stdout + done.stderr  # Hydra's lines in dreamloom's words, without the launcher's settings
    assert "dreamloom: Launching jobs, sweep output dir" in said and "Joblib" not in said and "[HYDRA]" not in said
    sweep = tmp_path / last.split(" in ", 1)[1].split(" (")[0]
    assert [_whole(sweep / job)["objective"] for job in ("0", "1")] == [f"channel(features.10:{c})" for c in (0, 1)]
