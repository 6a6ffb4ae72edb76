"""Style transfer's octave recolouring: each later octave starts from the picture before in the style's colours."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import recipes.transfer as transfer
from engine.configs import compose
from engine.errors import UserError
from engine.images import load_image, resize_to
from engine.measures import color_distance
from engine.results import config_yaml
from engine.runner import run_recipe
from engine.stored import rebuild

COMMON = ("recipe=style", "device=cpu", "snapshot_every=0", "content=grace_hopper", "style=strokes", "size=64")


def _restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *overrides: str) -> object:
    """The ``restart`` the style recipe hands the octave loop (the loop itself is not run)."""
    seen: dict[str, object] = {}

    def capture(*args: object, restart: object = None, **kwargs: object) -> object:
        seen["restart"] = restart
        raise KeyboardInterrupt  # enough: the recipe has said what it wants

    monkeypatch.setattr(transfer, "optimize_octaves", capture)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(compose([*COMMON, *overrides]), tmp_path, "style")
    return seen["restart"]


def test_a_later_octave_starts_in_the_styles_colours(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    restart = _restart(monkeypatch, tmp_path)
    assert callable(restart)
    strokes = load_image("strokes")
    drifted = resize_to(load_image("grace_hopper"), (48, 48))  # a start still in the photo's colours
    moved = restart(drifted)
    assert moved.shape == drifted.shape
    before, after = color_distance(drifted, strokes), color_distance(moved, strokes)
    assert after < 0.2 * before, (before, after)  # measured 0.09 of 0.87 (12 rounds on a 256-px style: 0.37)


def test_octave_colors_false_and_strength_zero_leave_the_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _restart(monkeypatch, tmp_path / "off", "octave_colors=false") is None
    faithful = _restart(monkeypatch, tmp_path / "zero", "strength=0")
    picture = torch.rand(1, 3, 20, 20)
    assert callable(faithful) and torch.equal(faithful(picture), picture)  # strength=0 keeps the photo's colours


def test_each_picture_of_a_batch_is_recoloured_by_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    restart = _restart(monkeypatch, tmp_path)
    assert callable(restart)
    pair = torch.cat([resize_to(load_image(n), (24, 24)) for n in ("grace_hopper", "chelsea")])
    both = restart(pair)
    assert torch.allclose(both[1:], restart(pair[1:]), atol=1e-6)
    assert not torch.allclose(both[0], both[1], atol=0.05)


def test_masked_regions_recolour_a_smaller_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    restart = _restart(monkeypatch, tmp_path, "style=[ihc,hubble_deep_field]", "mask=halves")
    assert callable(restart)
    start = resize_to(load_image("grace_hopper"), (30, 30))  # smaller than the masks, as a first octave's output is
    moved = restart(start)
    left, right = moved[..., :, :10], moved[..., :, 20:]
    ihc, field = load_image("ihc"), load_image("hubble_deep_field")
    assert color_distance(left, ihc) < color_distance(left, field)  # halves: the darker half is the first style
    assert color_distance(right, field) < color_distance(right, ihc)


@pytest.mark.slow
def test_the_recoloured_octave_ends_nearer_the_styles_colours(tmp_path: Path) -> None:
    """Two octaves, no colour loss: the second octave's start in the style's colours leaves the result nearer them."""
    strokes = load_image("strokes")
    distance = {}
    for switch in ("true", "false"):
        folder = tmp_path / switch
        run_recipe(compose([*COMMON, "octaves=2", "steps=15", "histogram_weight=0", f"octave_colors={switch}"]), folder)
        distance[switch] = color_distance(load_image(folder / "image.png"), strokes)
    assert distance["true"] < 0.7 * distance["false"], distance  # measured 0.26 and 0.52


def test_a_run_stored_before_the_octave_recolouring_is_rebuilt_without_it(tmp_path: Path) -> None:
    text = config_yaml(compose(list(COMMON)))
    assert rebuild(text, "new.png").octave_colors is True
    old = "\n".join(line for line in text.splitlines() if not line.startswith("octave_colors:"))
    assert rebuild(old, "old.png").octave_colors is False


def test_a_wrong_switch_is_answered_before_the_model_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded first")

    monkeypatch.setattr(transfer, "load_view", no_model)
    for recipe in ("style", "texture", "style_video"):
        for key in ("octave_colors", "seamless"):
            with pytest.raises(UserError, match=f"{key}=maybe is not valid; {key} is a switch: true or false"):
                run_recipe(compose([f"recipe={recipe}", f"{key}=maybe"]), tmp_path / recipe, recipe)
