"""The sample folder and clip: made on first use, the same from any working folder, and of known content."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from engine.errors import UserError
from engine.samples import CLIP_FRAMES, CLIP_STEP, cache_dir, make_clip, sample_clip, sample_folder
from recipes.clips import read_clip
from tests.helpers import run


def test_the_sample_folder_is_made_once_in_the_cache() -> None:
    folder = sample_folder()
    assert folder.parent == cache_dir()
    pictures = sorted(folder.glob("*.png"))
    assert len(pictures) == 60 and not any(cache_dir().glob(".building-*"))
    stamp = pictures[0].stat().st_mtime_ns
    assert sample_folder() == folder and pictures[0].stat().st_mtime_ns == stamp  # not made again


def test_the_clip_pans_right_by_its_step(tmp_path: Path) -> None:
    """Frame k+1 is frame k moved left by CLIP_STEP pixels (the view moves right), up to the GIF's palette."""
    path = make_clip(tmp_path / "clip.gif")
    with Image.open(path) as gif:
        frames = [np.asarray(f.convert("RGB"), dtype=np.float32) for f in ImageSequence.Iterator(gif)]
    assert len(frames) == CLIP_FRAMES
    for a, b in itertools.pairwise(frames):
        moved = np.abs(b[:, :-CLIP_STEP] - a[:, CLIP_STEP:]).mean()
        still = np.abs(b - a).mean()
        assert moved < 3 and still > 4 * moved


def test_input_clip_reads_the_sample_clip() -> None:
    frames, fps = read_clip("clip")
    assert len(frames) == CLIP_FRAMES and fps == pytest.approx(10) and sample_clip().is_file()


@pytest.mark.slow
def test_folder_views_read_the_samples_from_any_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    metrics = run(tmp_path / "run", "neighbours", "size=64", "k=2")
    assert metrics["pictures"] == 60


def test_a_cache_that_cannot_be_made_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file where the cache folder should be: one line naming DREAMLOOM_CACHE, not a run-folder write error."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DREAMLOOM_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(
        UserError, match=r"cannot make the sample data in .*; point DREAMLOOM_CACHE at a writable folder"
    ):
        sample_clip()
