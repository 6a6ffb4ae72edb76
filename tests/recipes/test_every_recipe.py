"""Every recipe YAML found on disk composes, names a recipe function, and runs end to end; every recipe that takes
penalties names tv, l1 and l2 in its objective. No list of recipes is kept here: a new YAML is picked up."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import engine.runner
from engine.configs import recipes
from engine.errors import UserError
from engine.export import read_png_config
from engine.runner import prepare_function, run_recipe
from engine.samples import make_samples
from tests.helpers import compose_recipe, reads, top_keys_read

SMALL: dict[str, Any] = {
    "steps": 2,
    "steps_next": 1,
    "size": 48,
    "octaves": 1,
    "frames": 2,
    "channels": "0:2",
    "layers": "[features.2]",
    "samples": 2,
    "top": 2,
    "k": 2,
    "patch": 24,
    "stride": 24,
    "snapshot_every": 1,
    "methods": "[gradcam,gradient]",
    "random_maps": 1,
    "points": 4,
    "fractions": "[0.5]",
}
"""Small values for the keys a recipe has, so that every run takes seconds."""
PENALTIES = ("tv=0.01", "l1=0.01", "l2=0.01")
OPAQUE = {"deepdream", "dream_zoom", "dream_video", "style", "style_video", "inversion", "inversion_sweep"}
"""The recipes that refuse ``param=alpha``: they dream on, paint or rebuild a photo, or write videos (opaque)."""


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of sample crops and a four-frame clip panning across the cat."""
    root = tmp_path_factory.mktemp("assets")
    make_samples(root / "pictures", per_picture=1, side=64)
    cat = Image.open(sorted((root / "pictures").glob("chelsea*.png"))[0])
    frames = [cat.crop((4 * k, 0, 4 * k + 48, 48)) for k in range(4)]
    frames[0].save(root / "clip.gif", save_all=True, append_images=frames[1:], duration=100)
    return {"folder": root / "pictures", "clip": root / "clip.gif"}


def _overrides(name: str, assets: dict[str, Path]) -> list[str]:
    cfg = compose_recipe(name)
    args = [f"{key}={value}" for key, value in SMALL.items() if key in cfg and reads(cfg, key)]
    if "channels" in cfg and "top" in cfg:  # two ways to pick activations' maps: one at a time
        args.remove(f"top={SMALL['top']}")
    if "folder" in cfg:
        args.append(f"folder={assets['folder']}")
    if "target" in cfg and cfg.target is None and "channel" in cfg:  # no aim by default (facets): aim at a channel
        args += ["layer=features.2", "channel=0"]
    _, spec = prepare_function(cfg)
    return [*args, *(PENALTIES if spec.penalties else ())]


@pytest.mark.parametrize("name", recipes())
def test_every_recipe_names_a_recipe_function(name: str) -> None:
    cfg = compose_recipe(name)
    fn, spec = prepare_function(cfg)
    assert callable(fn) and cfg.run._target_.startswith("recipes.")
    assert all(key in cfg or key in ("query", "mask") for key in spec.paths), spec.paths


def _watched(seen: set[str], cfg: Any) -> tuple[Any, Any]:
    """:func:`engine.runner.prepare_function`, its function noting into ``seen`` every top-level key it reads."""
    fn, spec = prepare_function(cfg)

    def run(*args: Any, **kwargs: Any) -> Any:
        with top_keys_read() as keys:
            try:
                return fn(*args, **kwargs)
            finally:
                seen.update(keys)

    return run, spec


@pytest.mark.slow
@pytest.mark.parametrize("name", recipes())
def test_every_recipe_runs_and_honours_the_penalties(
    name: str, assets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each recipe runs, honours the penalties it takes, and reads none of the keys it refuses as unread."""
    args = ["device=cpu", *_overrides(name, assets)]
    seen: set[str] = set()
    monkeypatch.setattr(engine.runner, "prepare_function", partial(_watched, seen))
    try:
        result = run_recipe(compose_recipe(name, *args), tmp_path / "run", name)
    except UserError as e:  # a recipe of clips: given the clip it asks for
        assert "input=" in str(e), e
        result = run_recipe(compose_recipe(name, *args, f"input={assets['clip']}"), tmp_path / "clip", name)
    own = compose_recipe(name)
    ignored = {k for k in prepare_function(own)[1].ignores if own.get(k) is not None}  # a null one: read as null
    if "optimizer" in seen:  # its lr follows the shared lr=
        seen.add("lr")
    assert not seen & ignored, f"recipe={name} refuses keys it reads: {sorted(seen & ignored)}"
    metrics = json.loads((result.folder / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics)) and metrics["recipe"] == name
    assert {"recipe", "model", "seed", "steps"} <= set(metrics)
    if (result.folder / "image.png").exists():
        text = read_png_config(result.folder / "image.png")
        assert text is not None and f"name: {name}" in text
    else:  # a listing, not a picture
        assert (result.folder / "layers.txt").read_text().count("\n") > 10
    if "tv=0.01" in args:
        for term in ("tv(beta=1)", "l1(0.5)", "l2(0.5)"):
            assert f"0.01 * ({term})" in metrics["objective"], metrics["objective"]


@pytest.mark.slow
@pytest.mark.parametrize("param", ["maco", "alpha", "cppn"])
@pytest.mark.parametrize("name", [name for name in recipes() if reads(compose_recipe(name), "param")])
def test_every_optimizing_recipe_takes_each_parameterization(
    name: str, param: str, assets: dict[str, Path], tmp_path: Path
) -> None:
    cfg = compose_recipe(name)
    args = [
        "device=cpu",
        *(["snapshot_every=0"] if reads(cfg, "snapshot_every") else []),
        f"param={param}",
        *_overrides(name, assets)[:-3],
        "steps=1",
    ]
    args += ["param.fit_steps=2"] if param == "cppn" else []
    if "input" in cfg and cfg.get("input") is None and "frames" in cfg and "style" in cfg:
        args.append(f"input={assets['clip']}")
    try:
        result = run_recipe(compose_recipe(name, *args), tmp_path / "run", name)
    except UserError as e:  # a transparent picture where the recipe works on a photo, or a pixel preset: one line
        pixels = cfg.get("blur") is not None and "add param=pixel" in str(e)
        assert (pixels or (param == "alpha" and name in OPAQUE and "param=alpha" in str(e))) and "\n" not in str(e), e
        return
    assert name not in OPAQUE or param != "alpha", f"recipe={name} took param=alpha"
    if result.picture is not None and name != "inversion_sweep":  # the sweep shows the photo beside its results
        assert result.picture.shape[1] == (4 if param == "alpha" else 3), name
        if "frames" not in cfg:  # a video's frames are each a picture of their own, with no weights kept
            assert (result.folder / "cppn.pt").is_file() == (param == "cppn"), name
    assert (result.folder / "image.png").is_file() or (result.folder / "video.mp4").is_file()
