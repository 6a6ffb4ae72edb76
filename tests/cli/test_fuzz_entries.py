"""Hostile values for every key of every config group, and through every entry point (command, rerun, resume,
gallery, Python API): each case exits 2 with one line (the API: raises UserError), or succeeds with whole files."""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from engine import api
from engine.errors import UserError
from engine.export import read_png_config
from recipes import CONFIG_DIR
from tests.helpers import assert_answered, command

pytestmark = pytest.mark.slow

HOSTILE = [
    "nan", "inf", "-inf", str(2**70), "-1", "0", "1", "2.5", "abc", "[1,2]", "[]", "[nan]", "{a: 1}", "null", "true",
    "ünïcødé", "x" * 300, "/no/such/" + "d" * 250 + "/f.png", "'a b#c%d&e'", "${steps}", "'${oc.env:HOME}'",
]  # fmt: skip
# steps is left out of the drawn keys: 2**70 steps is a valid, endless run
SMALL = ["steps=1", "size=32", "snapshot_every=0", "device=cpu"]


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _leaves(node: Any, name: str) -> list[str]:
    """Every key of an option file, dotted, down to list items and the parts of ``_args_``."""
    if isinstance(node, dict):
        return [name] + [leaf for key in node for leaf in _leaves(node[key], f"{name}.{key}")]
    if isinstance(node, list):
        return [name] + [leaf for k, item in enumerate(node) for leaf in _leaves(item, f"{name}.{k}")]
    return [name]


def _group_keys() -> list[tuple[str, str]]:
    """(option pick, dotted key) for every key of the optimizer, param and transforms options and of the model."""
    found = []
    for group in ("optimizer", "param", "transforms", "model"):
        for option in sorted((Path(CONFIG_DIR) / group).glob("*.yaml")):
            if group == "model" and option.stem != "mobilenet_v2":
                continue  # the others' keys are the same; their weights cannot be fetched here
            keys = _leaves(OmegaConf.to_container(OmegaConf.load(option)), group)[1:]
            found += [(f"{group}={option.stem}", key) for key in keys if key != "model.name"]
    return found


@fuzz(60)
@given(picked=st.sampled_from(_group_keys()), value=st.sampled_from(HOSTILE))
def test_any_group_key_succeeds_or_gets_one_line(picked: tuple[str, str], value: str) -> None:
    option, key = picked
    recipe = "recipe=style" if key.startswith("model.style") else "recipe=channel"
    with tempfile.TemporaryDirectory() as tmp:
        args = [recipe, *SMALL, "octaves=1", option, f"{key}={value}", f"hydra.run.dir={tmp}/run"]
        code, stderr = command(args)
        assert_answered(code, stderr, args, Path(tmp) / "run")


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run, for rerun and resume to start from."""
    folder = tmp_path_factory.mktemp("earlier") / "run"
    code, stderr = command(["recipe=channel", *SMALL, "steps=2", "checkpoint_every=1", f"hydra.run.dir={folder}"])
    assert code == 0, stderr
    return folder


RERUN_KEYS = ["size", "lr", "channel", "layer", "seed", "tv", "optimizer.lr", "param.sd", "param.decay",
              "transforms._args_.0.pad", "model.weights", "device", "resume", "name", "hydra.run.dir"]  # fmt: skip


@fuzz(30)
@given(key=st.sampled_from(RERUN_KEYS), value=st.sampled_from(HOSTILE))
def test_rerun_with_any_change_succeeds_or_gets_one_line(earlier: Path, key: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "again"
        where = [] if key == "hydra.run.dir" else [f"hydra.run.dir={folder}"]
        args = ["rerun", str(earlier / "image.png"), f"{key}={value}", *where]
        with contextlib.chdir(tmp):  # a relative hydra.run.dir= lands here, not in the repository
            code, stderr = command(args)
        if code == 0 and key == "hydra.run.dir":  # the folder the value names, as the command's last line says
            folder = Path(tmp) / stderr.strip().splitlines()[-1].removeprefix("dreamloom: wrote ")
        assert_answered(code, stderr, args, folder)


@fuzz(15)
@given(value=st.sampled_from([*HOSTILE, "{earlier}/image.png", "{earlier}/.hydra", "{earlier}/../.."]))
def test_resume_from_anything_gets_one_line(earlier: Path, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = [f"resume={value.replace('{earlier}', str(earlier))}", f"hydra.run.dir={tmp}/run"]
        code, stderr = command(args)
        assert_answered(code, stderr, args, Path(tmp) / "run")


@fuzz(15)
@given(value=st.sampled_from([*HOSTILE, "{earlier}/image.png", "{earlier}", "a=b", "recipe=nope", "recipe="]))
def test_gallery_of_anything_succeeds_or_gets_one_line(earlier: Path, value: str) -> None:
    args = ["gallery", value.replace("{earlier}", str(earlier))]
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        code, stderr = command(args)
    assert "Traceback" not in stderr, f"{args}\n{stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dreamloom: wrote " if code == 0 else "dreamloom: error: "), stderr
    assert code in (0, 2), stderr


API_VALUES = [math.nan, math.inf, -math.inf, 2**70, -1, 0, 2.5, True, None, "abc", "ünï", "x" * 300, [1, 2], [],
              {"a": 1}, "a b#c%d&e", "${steps}", "/no/such/" + "d" * 250]  # fmt: skip
API_KEYS = ["size", "lr", "channel", "layer", "seed", "tv", "snapshot_every", "param", "optimizer",
            "transforms", "model", "init", "device"]  # fmt: skip


@fuzz(40)
@given(key=st.sampled_from(API_KEYS), value=st.sampled_from(API_VALUES))
def test_the_api_with_any_value_succeeds_or_raises_one_line(key: str, value: Any) -> None:
    keys = {"steps": 1, "size": 32, "snapshot_every": 0, "device": "cpu", key: value}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = api.channel(out=Path(tmp) / "run", **keys)
        except UserError as e:
            assert "\n" not in str(e) and str(e), repr(e)
            assert not (Path(tmp) / "run").exists(), f"{key}={value!r} failed but left its folder"
            return
        assert read_png_config(result.folder / "image.png") is not None
