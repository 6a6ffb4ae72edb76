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
from engine.export import (
    atomic_write,
    contact_sheet,
    read_png_config,
    save_gif,
    save_json,
    save_png,
    save_state,
    write_text,
)


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
from engine.export import atomic_write, save_state

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


def test_a_contact_sheet_puts_each_picture_in_its_own_cell() -> None:
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
    batch = colours[:, :, None, None].expand(4, 3, 10, 10)
    sheet = contact_sheet(batch, columns=2, pad=4)
    assert sheet.size == (2 * 14 + 4, 2 * 14 + 4)
    for i, colour in enumerate(colours):
        row, col = divmod(i, 2)
        centre = (4 + col * 14 + 5, 4 + row * 14 + 5)
        assert sheet.getpixel(centre) == tuple(int(255 * c) for c in colour.tolist())


def test_a_picture_carries_its_config_and_a_plain_png_none(tmp_path: Path) -> None:
    save_png(tmp_path / "with.png", torch.rand(3, 8, 8), "name: channel\nsteps: 3\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_png_config(tmp_path / "with.png") == "name: channel\nsteps: 3\n"
    assert read_png_config(tmp_path / "plain.png") is None


def test_a_saved_state_is_the_same_bytes_wherever_it_goes(tmp_path: Path) -> None:
    """The archive's records are not named after the temporary file: a resumed run's cppn.pt is an unstopped one's."""
    state = {"weights": [torch.arange(6.0).view(2, 3)], "step": 3}
    first, second = save_state(tmp_path / "a" / "cppn.pt", state), save_state(tmp_path / "b.pt", state)
    assert first.read_bytes() == second.read_bytes()
    assert torch.load(first, weights_only=True)["step"] == 3
