"""Every recipe composes and instantiates; each runs end to end for a few steps on the real MobileNetV2."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.configs import recipes
from engine.export import read_png_config
from engine.runner import build, run_recipe
from objectives.base import Objective
from recipes import CONFIG_DIR
from regularizers.transforms import Compose
from tests.helpers import compose_recipe

RECIPES = recipes()
RUNS = {r: compose_recipe(r).run._target_ for r in RECIPES}
RENDERING = [
    r for r in RECIPES if RUNS[r].rsplit(".", 1)[1] in ("render", "dream", "style_transfer", "invert", "invert_sweep")
]
"""Recipes that optimize one picture for an objective (the others have their own tests beside their modules)."""
FAST = {
    "style": ["size=48", "octaves=2"],
    "texture": ["size=48", "octaves=2"],
    "inversion_sweep": ["layers=[features.2,features.5]"],
}
"""Extra overrides that keep the end-to-end runs of the heavier recipes small."""
CONTRACT = {"recipe", "model", "steps", "seconds", "iterations_per_second", "loss_first", "loss_last", "seed"}


def test_the_foundation_recipes_exist() -> None:
    assert {"deepdream", "class", "channel", "neuron", "layers"} <= set(RECIPES)
    assert {"style", "texture", "inversion", "inversion_sweep"} <= set(RECIPES)


@pytest.mark.parametrize("name", RENDERING)
def test_recipe_composes_and_instantiates(name: str) -> None:
    cfg = compose_recipe(name)
    assert cfg.name == name
    if RUNS[name] in ("recipes.visualize.render", "recipes.visualize.dream"):
        assert isinstance(build(cfg.objective), Objective)
    else:
        assert cfg.objective is None  # built in code from the recipe's pictures (style, inversion)
    assert isinstance(build(cfg.transforms), Compose)
    params, image = build(cfg.param)((1, 3, 32, 32))
    assert image().shape == (1, 3, 32, 32)
    assert isinstance(build(cfg.optimizer)(params), torch.optim.Optimizer)


@pytest.mark.parametrize("group", ["model", "param", "transforms", "optimizer"])
def test_every_option_of_every_group_composes(group: str) -> None:
    for option in sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml")):
        cfg = compose_recipe("channel", f"{group}={option}")
        node = cfg[group]
        if group == "model":
            assert node.name == option
        else:
            assert build(node) is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", RENDERING)
def test_recipe_runs_end_to_end(name: str, tmp_path: Path) -> None:
    cfg = compose_recipe(name, "steps=3", "size=64", "snapshot_every=1", "device=cpu", *FAST.get(name, []))
    result = run_recipe(cfg, tmp_path, name)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert CONTRACT <= set(metrics) and metrics == result.metrics
    assert metrics["recipe"] == name and metrics["model"] == "mobilenet_v2"
    runs = len(cfg.layers) if name == "inversion_sweep" else 1
    assert metrics["steps"] == 3 * cfg.octaves * runs
    assert max(metrics["image_size"]) == cfg.size
    assert (tmp_path / "progress.gif").stat().st_size > 0
    text = read_png_config(tmp_path / "image.png")
    assert text is not None and f"name: {name}" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("interpolate", ["frames=2", "size=32"]),
        ("layer_atlas", ["channels=0:2", "size=32"]),
        ("fooling", ["size=32", "confidence=0.999999"]),
        ("adversarial", ["size=32"]),
    ],
)
def test_every_optimizing_recipe_writes_a_progress_gif(name: str, extra: list[str], tmp_path: Path) -> None:
    cfg = compose_recipe(name, "steps=3", "snapshot_every=1", "gif_ms=50", "device=cpu", *extra)
    run_recipe(cfg, tmp_path, name)
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == 3 and gif.info["duration"] == 50


@pytest.mark.slow
def test_layers_recipe_lists_names_and_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_recipe(compose_recipe("layers", "device=cpu"), tmp_path, "layers")
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert rows[0].startswith("mobilenet_v2 at 224x224: 19 block outputs worth visualizing")
    marked = [r.split()[1] for r in rows if r.startswith("* ")]
    assert marked == [f"features.{i}" for i in range(19)]  # the blocks first, shallow to deep
    assert any(r.split()[:4] == ["*", "features.10", "InvertedResidual", "(64,"] and r.endswith("171 px") for r in rows)
    assert any(r.split()[:2] == ["features.0.1", "BatchNorm2d"] for r in rows)  # as torchvision defines it, unfolded
    assert (tmp_path / "layers.txt").read_text() == out


@pytest.mark.slow
def test_batch_of_pictures_writes_a_contact_sheet(tmp_path: Path) -> None:
    cfg = compose_recipe("channel", "steps=2", "size=48", "batch=3", "device=cpu")
    run_recipe(cfg, tmp_path, "channel")
    singles = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "images").glob("*.png"))]
    sheet = np.asarray(Image.open(tmp_path / "image.png"))
    assert len(singles) == 3 and len({s.tobytes() for s in singles}) == 3  # three pictures, each its own

    def placed(single: np.ndarray) -> bool:  # somewhere on the sheet, pixel for pixel
        h, w = single.shape[:2]
        spots = itertools.product(range(sheet.shape[0] - h + 1), range(sheet.shape[1] - w + 1))
        return any(np.array_equal(sheet[y : y + h, x : x + w], single) for y, x in spots)

    assert all(placed(single) for single in singles)


def test_the_progress_gif_keys_reach_the_gif(tmp_path: Path) -> None:
    keys = ("steps=12", "size=48", "snapshot_every=1", "gif_size=32", "gif_frames=4", "gif_ms=50", "device=cpu")
    run_recipe(compose_recipe("channel", *keys), tmp_path, "channel")
    with Image.open(tmp_path / "progress.gif") as gif:
        frames, size, first = gif.n_frames, gif.size, gif.info["duration"]
    assert (size, first) == ((32, 32), 50) and 2 < frames <= 5  # thinned past 4, the last picture added


@pytest.mark.slow
def test_a_guided_dream_grows_the_guides_motifs(tmp_path: Path) -> None:
    from engine.images import load_image, resize_to
    from engine.measures import style_distance
    from engine.models import load_model

    keys = ("size=128", "octaves=2", "steps=10", "device=cpu")
    run_recipe(compose_recipe("deepdream", *keys), tmp_path / "plain", "deepdream")
    run_recipe(compose_recipe("deepdream", *keys, "guide=hubble_deep_field"), tmp_path / "guided", "deepdream")
    metrics = json.loads((tmp_path / "guided" / "metrics.json").read_text())
    assert metrics["objective"].startswith("guided_dream(features.10, ")
    judge = load_model("mobilenet_v2", "IMAGENET1K_V1")  # on layers the dream never optimized
    held_out = ["features.3.conv.1", "features.6.conv.1", "features.12.conv.1"]
    guide = resize_to(load_image("hubble_deep_field"), (128, 128))
    plain, guided = (load_image(tmp_path / run / "image.png") for run in ("plain", "guided"))
    far = {run: style_distance(judge, held_out, pic, guide) for run, pic in (("plain", plain), ("guided", guided))}
    assert far["guided"] < 0.7 * far["plain"], far
    assert metrics["objective"].endswith("toward, gain 3)")
    run_recipe(compose_recipe("deepdream", *keys, "guide=hubble_deep_field", "guide_pull=along"), tmp_path / "a", "x")
    far["along"] = style_distance(judge, held_out, load_image(tmp_path / "a" / "image.png"), guide)
    assert far["guided"] < 0.9 * far["along"], far  # pulled past the guide's features: closer than pushed along them


@pytest.mark.slow
def test_diversity_pushes_a_batch_apart(tmp_path: Path, mobilenet) -> None:  # type: ignore[no-untyped-def]
    """With diversity=10 the four channel pictures of a batch differ more, by the penultimate features the objective
    never saw (measured at 160 px: mean pairwise cosine 0.97 without, 0.57 with)."""
    import torch.nn.functional as F

    from engine.images import load_image
    from recipes.folders import penultimate

    def spread(weight: int) -> float:
        folder = tmp_path / f"d{weight}"
        keys = ("batch=4", "size=96", "steps=80", "snapshot_every=0", f"diversity={weight}", "device=cpu")
        run_recipe(compose_recipe("channel", *keys), folder, "channel")
        pictures = torch.cat([load_image(p) for p in sorted((folder / "images").glob("*.png"))])
        features = F.normalize(penultimate(mobilenet, pictures), dim=1)
        return float(((features @ features.T).sum() - 4) / 12)

    alike, diverse = spread(0), spread(10)
    assert diverse < alike - 0.1, (alike, diverse)
    assert "diversity(features.10)" in json.loads((tmp_path / "d10" / "metrics.json").read_text())["objective"]


@pytest.mark.slow
def test_stop_at_ends_a_class_picture_once_the_model_is_sure(tmp_path: Path, mobilenet) -> None:  # type: ignore[no-untyped-def]
    """stop_at=0.9 ends the flamingo as soon as 15 of 16 random crops give it 0.9 (step 24 at 224 px); the picture
    it stops at passes the same test on crops it never drew (measured 31 of 32; at 160 px, where the model sees
    smaller shapes than it learned, 22 of 32); without stop_at all the steps run."""
    from engine.images import load_image
    from engine.measures import random_views
    from engine.models import LOGITS

    keys = ("target=flamingo", "size=224", "steps=96", "snapshot_every=0", "device=cpu")
    stopped = run_recipe(compose_recipe("class", *keys, "stop_at=0.9"), tmp_path / "stop", "class").metrics
    assert 0 < stopped["steps"] < 96 and stopped["steps"] % 8 == 0 and stopped["stop_at_step"] == stopped["steps"]
    views = random_views(load_image(tmp_path / "stop" / "image.png"), 32, torch.Generator().manual_seed(7), side=224)
    with torch.no_grad():
        sure = mobilenet(views, [LOGITS])[LOGITS].softmax(-1)[:, 130] >= 0.9
    assert float(sure.float().mean()) >= 0.8
    whole = run_recipe(compose_recipe("class", *keys, "steps=20"), tmp_path / "all", "class").metrics
    assert whole["steps"] == 20 and "stop_at_step" not in whole
