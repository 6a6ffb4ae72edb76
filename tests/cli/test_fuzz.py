"""Random command lines, within and beyond every key's range: each run either succeeds with the contract files or
stops with the one-line answer (exit status 2), never a traceback."""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import recipe_keys
from recipes import CONFIG_DIR
from tests.helpers import assert_answered, command

pytestmark = pytest.mark.slow

RECIPES = sorted(p.stem for p in (Path(CONFIG_DIR) / "recipe").glob("*.yaml"))
NUMBERS = st.sampled_from(["-1", "0", "1", "2", "0.5", "1e38", "nan", "inf", "-inf", "abc", "[]", "null"])
COUNTS = st.sampled_from(["-1", "0", "1", "2", "2.5", "x", "nan", "null"])
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
    "gif_ms": st.sampled_from(["-80", "0", "50", "100000", "x"]),
    "init": st.sampled_from(["noise", "zeros", "input", "content", "sideways"]),
    "optimizer": st.sampled_from(["adam", "sgd", "lbfgs", "normalized", "adamw"]),
    "transforms": st.sampled_from(["robust", "dream", "none", "wobble"]),
    # keys of some recipes only
    "target": st.sampled_from(["flamingo", "130", "top2", "top0", "flamingoo", "-3", "null"]),
    "eps": st.sampled_from(["2/255", "0", "1", "5", "1/0", "x"]),
    "method": st.sampled_from(["fgsm", "iterative", "pca", "tsne", "pgd"]),
    "magnify": NUMBERS,
    "confidence": st.sampled_from(["0.5", "0", "1", "2", "x"]),
    "patch": COUNTS,
    "stride": COUNTS,
    "chunk": COUNTS,
    "samples": COUNTS,
    "sigma": NUMBERS,
    "k": COUNTS,
    "top": COUNTS,
    "thumb": st.sampled_from(["0", "8", "32", "x"]),
    "perplexity": NUMBERS,
    "frames": st.sampled_from(["0", "1", "2", "3", "-1", "x"]),
    "fps": st.sampled_from(["0", "0.05", "12", "61", "x"]),
    "zoom": st.sampled_from(["0", "0.4", "1.05", "3", "x"]),
    "rotate": NUMBERS,
    "from": st.sampled_from(["3", "features.6:2", "class:flamingo", "wobble", "class:"]),
    "colors": st.sampled_from(["style", "luminance", "histogram", "sepia"]),
    "style_weight": NUMBERS,
    "style_scale": st.sampled_from(["0", "0.5", "1", "-1", "x"]),
    "style_weights": st.sampled_from(["[1]", "[1,1]", "[0]", "[-1]", "x"]),
    "rule": st.sampled_from(["guided", "deconvnet", "gradient", "magic"]),
    "cam_layer": st.sampled_from(["null", "features.18", "classifier.1", "nope"]),
    "channels": st.sampled_from(["0:2", "[1,3]", "5", "0:0", "x"]),
    "query": st.sampled_from(["chelsea", "missing.png", "null"]),
    "flatten": st.sampled_from(["auto", "null", "[1,0.7]", "[0,0.5]", "[2,1]", "0.5", "x"]),
}
SMALL = {"steps": "2", "size": "32", "frames": "2", "steps_next": "1", "samples": "2", "chunk": "64"}
"""Values that keep a run that succeeds short, for the keys a draw leaves alone."""
OWN_KEYS = {recipe: sorted(k for k in KEYS if k in recipe_keys(recipe)) for recipe in RECIPES}


@settings(max_examples=90, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(recipe=st.sampled_from(RECIPES), data=st.data())
def test_any_command_line_succeeds_or_gets_one_line(recipe: str, data: st.DataObject) -> None:
    picked = data.draw(st.lists(st.sampled_from(OWN_KEYS[recipe]), min_size=1, max_size=5, unique=True), "keys")
    keys = {key: data.draw(KEYS[key], label=key) for key in sorted(picked)}
    for key, value in SMALL.items():
        if key in recipe_keys(recipe):
            keys.setdefault(key, value)
    if "size" in keys and keys["size"] not in ("null",) and not keys["size"].startswith("["):
        with contextlib.suppress(ValueError):
            if math.isfinite(float(keys["size"])) and float(keys["size"]) > 48:
                keys["size"] = "48"
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [f"recipe={recipe}", *(f"{k}={v}" for k, v in keys.items()), f"hydra.run.dir={run_dir}"]
        code, stderr = command(args)
        assert_answered(code, stderr, args, run_dir, picture=recipe != "layers")
