"""Random command lines, within and beyond every key's range: each run either succeeds with the contract files or
stops with the one-line answer (exit status 2), never a traceback."""

from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main as dreamloom

pytestmark = pytest.mark.slow

PROGRESS = re.compile(r"^(octave \d+/\d+ )?\[[#.]+\] \d+/\d+ ")
RECIPES = ["channel", "neuron", "deepdream", "class", "texture", "saliency", "gradcam", "activations"]
NUMBERS = st.sampled_from(["-1", "0", "1", "2", "0.5", "1e38", "nan", "inf", "-inf", "abc", "[]", "null"])
KEYS = {
    "steps": st.sampled_from(["-1", "0", "1", "2", "2.5", "x", "nan"]),
    "size": st.sampled_from(["-5", "0", "8", "16", "32", "[24,40]", "[0,5]", "1.5", "abc", "null"]),
    "lr": NUMBERS,
    "octaves": st.sampled_from(["0", "1", "2", "3", "-2"]),
    "octave_scale": st.sampled_from(["0.5", "1", "1.4", "nan"]),
    "batch": st.sampled_from(["0", "1", "2", "-1"]),
    "seed": st.sampled_from(["0", "-1", "1099511627776", "a"]),
    "tv": NUMBERS,
    "l2": NUMBERS,
    "tile_size": st.sampled_from(["null", "8", "64", "-64"]),
    "layer": st.sampled_from(["features.2", "features.18", "features.99", "classifier.1", "nope"]),
    "channel": st.sampled_from(["0", "5", "-1", "100000", "x"]),
    "snapshot_every": st.sampled_from(["-1", "0", "1"]),
    "init": st.sampled_from(["noise", "zeros", "input", "sideways"]),
    "optimizer": st.sampled_from(["adam", "sgd", "lbfgs", "normalized", "adamw"]),
    "transforms": st.sampled_from(["robust", "dream", "none", "wobble"]),
}


def run(args: list[str]) -> tuple[int, str]:
    """The command in this process: its exit status and what it printed on stderr."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            dreamloom(args)
        except SystemExit as e:
            code = int(e.code or 0)
    return code, err.getvalue()


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    recipe=st.sampled_from(RECIPES),
    picked=st.dictionaries(st.sampled_from(sorted(KEYS)), st.just(None), min_size=1, max_size=5),
    data=st.data(),
)
def test_any_command_line_succeeds_or_gets_one_line(recipe: str, picked: dict[str, None], data: st.DataObject) -> None:
    keys = {key: data.draw(KEYS[key], label=key) for key in sorted(picked)}
    keys.setdefault("steps", "2")  # keep the runs that succeed short
    keys.setdefault("size", "32")
    if keys["size"] not in ("null",) and not keys["size"].startswith("["):
        with contextlib.suppress(ValueError):
            if math.isfinite(float(keys["size"])) and float(keys["size"]) > 48:
                keys["size"] = "48"
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [f"recipe={recipe}", *(f"{k}={v}" for k, v in keys.items()), f"hydra.run.dir={run_dir}"]
        code, stderr = run(args)
        assert "Traceback" not in stderr, f"{' '.join(args)}\n{stderr}"
        if code == 0:
            assert (run_dir / "image.png").is_file() or (run_dir / "layers.txt").is_file(), " ".join(args)
            assert (run_dir / "metrics.json").is_file(), " ".join(args)
            return
        lines = [line for line in stderr.splitlines() if not PROGRESS.match(line)]
        assert code == 2, f"exit {code}: {' '.join(args)}\n{stderr}"
        assert len(lines) == 1 and lines[0].startswith("dreamloom: error: "), f"{' '.join(args)}\n{stderr}"
