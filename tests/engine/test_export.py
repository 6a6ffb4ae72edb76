"""Results are written whole or not at all: a writer that dies half way leaves the file as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import engine.export
from engine.export import atomic_write, save_gif, save_json, save_png, write_text


def test_a_writer_that_fails_half_way_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}')

    def half(tmp: str) -> None:
        Path(tmp).write_text('{"new": tr')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, half)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("image.png", lambda p: save_png(p, torch.rand(3, 8, 8), "steps: 1")),
        ("metrics.json", lambda p: save_json(p, {"steps": 1})),
        ("progress.gif", lambda p: save_gif(p, [Image.new("RGB", (8, 8))] * 2, 50)),
        ("layers.txt", lambda p: write_text(p, "features.0\n")),
    ],
)
def test_every_result_goes_through_the_atomic_writer(name: str, write, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[Path] = []
    real = engine.export.atomic_write

    def spy(path, writer):  # type: ignore[no-untyped-def]
        seen.append(Path(path))
        return real(path, writer)

    monkeypatch.setattr(engine.export, "atomic_write", spy)
    write(tmp_path / name)
    assert seen == [tmp_path / name] and (tmp_path / name).stat().st_size > 0


CHILD = """
import sys, time
from pathlib import Path
from engine.export import atomic_write

def slow(tmp):
    with open(tmp, "wb") as f:
        for _ in range(400):
            f.write(b"n" * 65536)
            f.flush()
            Path(sys.argv[2]).touch()  # the parent sees the writing has begun
            time.sleep(0.01)

atomic_write(sys.argv[1], slow)
"""


def test_a_writer_killed_mid_file_leaves_the_old_file(tmp_path: Path) -> None:
    target, started = tmp_path / "image.png", tmp_path / "started"
    target.write_bytes(b"old picture")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(started)])
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert started.exists() and target.read_bytes() == b"old picture"
