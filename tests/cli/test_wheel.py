"""The built wheel carries every config: installed (not editable) in a fresh environment, the command runs from a
folder outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = (".git", ".venv*", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache", "docs")
"""What a build does not need: the local environments, results, caches and the pictures."""


@pytest.mark.slow
def test_the_wheel_ships_every_yaml_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    source = tmp_path / "source"  # built from a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("dreamloom-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".yaml")}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "recipes").rglob("*.yaml")}
    assert on_disk == shipped and "recipes/hydra/launcher/slurm.yaml" in shipped

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the fresh environment borrows the installed torch and the rest, listed after its own packages
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", wheel]
    subprocess.run(pip, check=True, capture_output=True)

    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [python, "-c", "import engine, recipes; print(engine.__file__, recipes.__file__)"],
        cwd=away,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in where and where.count(site) == 2  # the installed copy, not the checkout
    command = env_dir / "bin" / "dreamloom"
    for args in (["recipe=layers"], ["recipe=channel", "steps=2", "size=32", "device=cpu"]):
        folder = away / args[0].split("=")[1]
        done = subprocess.run(
            [command, *args, f"hydra.run.dir={folder}"], cwd=away, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert (away / "channel" / "image.png").is_file() and (away / "layers" / "layers.txt").is_file()
