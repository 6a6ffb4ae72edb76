"""What a newcomer tries first: a run folder where a picture is asked for, resume= on a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import command

pytestmark = pytest.mark.slow
SMALL = ["recipe=channel", "steps=2", "size=32", "snapshot_every=0", "device=cpu"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finished") / "run"
    code, err = command([*SMALL, f"hydra.run.dir={folder}"])
    assert code == 0, err
    return folder


def test_rerun_takes_a_run_folder(finished: Path, tmp_path: Path) -> None:
    code, err = command(["rerun", str(finished), f"hydra.run.dir={tmp_path / 'again'}"])
    assert code == 0, err
    assert (tmp_path / "again" / "image.png").read_bytes() == (finished / "image.png").read_bytes()


def test_rerun_with_resume_is_one_line(finished: Path, tmp_path: Path) -> None:
    code, err = command(["rerun", str(finished), f"resume={finished}", f"hydra.run.dir={tmp_path / 'again'}"])
    assert code == 2 and "to carry on a stopped run use dreamloom resume=FOLDER" in err
    assert not (tmp_path / "again").exists()


def test_resume_of_a_finished_run_points_to_rerun(finished: Path, tmp_path: Path) -> None:
    code, err = command([f"resume={finished}", f"hydra.run.dir={tmp_path / 'again'}"])
    assert code == 2 and "is a run that finished" in err and f"dreamloom rerun {finished}" in err, err
