"""What the style recipe's keys do to the picture: the start, the weights, the blend, the colours and strength=."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.colors import keep_chroma
from engine.configs import compose
from engine.errors import UserError
from engine.images import load_image, resize_to, to_pil
from engine.measures import color_distance, feature_distance, texture_distance
from engine.models import load_model
from engine.runner import run_recipe

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, recipe: str, *overrides: str) -> dict[str, object]:
    return _picture(tmp_path, recipe, *overrides)[1]


def _picture(tmp_path: Path, recipe: str, *overrides: str) -> tuple[torch.Tensor, dict[str, object]]:
    """The run's picture as it left the optimizer (before the PNG rounds it) and its metrics."""
    cfg = compose([f"recipe={recipe}", "device=cpu", "snapshot_every=0", *overrides])
    done = run_recipe(cfg, tmp_path, recipe)
    assert done.picture is not None
    return done.picture.cpu(), done.metrics


def test_init_is_the_picture_the_optimization_starts_from(tmp_path: Path) -> None:
    """One step of a tiny learning rate leaves the start as it was: the photo (strength=0 adds none of the style's
    colours), a flat grey, grey with faint noise, or the picture a path names, enlarged to the output's size."""
    common = ("size=48", "steps=1", "lr=1e-6", "octaves=1", "strength=0", "flatten=null", "content=grace_hopper")
    Image.fromarray(np.asarray(to_pil(load_image("chelsea")))[:100, :80]).save(tmp_path / "start.png")
    starts = {}
    for init in ("content", "zeros", "noise", tmp_path / "start.png"):
        starts[str(init)] = _picture(tmp_path / Path(str(init)).stem, "style", *common, f"init={init}")[0]
    hw = starts["content"].shape[-2:]
    assert (starts["content"] - resize_to(load_image("grace_hopper"), tuple(hw))).abs().mean() < 0.005
    assert starts["zeros"].std() < 1e-4 and (starts["zeros"] - 0.5).abs().max() < 1e-3
    assert 5e-4 < starts["noise"].std() < 0.02
    given = resize_to(load_image(tmp_path / "start.png"), tuple(hw))
    assert (starts[str(tmp_path / "start.png")] - given).abs().mean() < 0.005


def test_zero_blend_weight_is_the_same_as_leaving_the_style_out(tmp_path: Path) -> None:
    common = ("size=48", "steps=3", "octaves=1")
    _run(tmp_path / "one", "style", *common, "style=[ihc]")
    _run(tmp_path / "two", "style", *common, "style=[ihc,brick]", "style_weights=[1,0]")
    one, two = (np.asarray(Image.open(tmp_path / n / "image.png")) for n in ("one", "two"))
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 1


def test_luminance_colors_keep_the_photos_chroma(tmp_path: Path) -> None:
    _run(tmp_path, "style", "size=48", "steps=5", "octaves=1", "colors=luminance")
    result = load_image(tmp_path / "image.png")
    photo = resize_to(load_image("grace_hopper"), (result.shape[-2], result.shape[-1]))
    recoloured = keep_chroma(result, photo)  # changes nothing when the chroma is already the photo's
    assert (recoloured - result).abs().mean() < 0.01


def test_histogram_colors_keep_the_photos_colours_where_style_colors_take_the_styles(tmp_path: Path) -> None:
    common = ("size=48", "steps=30", "octaves=1", "style=hubble_deep_field")
    photo = load_image("grace_hopper").mean(dim=(-2, -1))
    gaps = {}
    for mode in ("style", "histogram"):
        _run(tmp_path / mode, "style", *common, f"colors={mode}")
        gaps[mode] = float((load_image(tmp_path / mode / "image.png").mean(dim=(-2, -1)) - photo).abs().mean())
    assert gaps["histogram"] < 0.25 * gaps["style"], gaps  # measured 0.001 and 0.019: the field's colours stay out


def test_strength_moves_from_the_photo_towards_the_style(tmp_path: Path) -> None:
    """strength=0 keeps the photo's colours and the full content loss; strength=1 starts from the photo in the
    style's colours and weighs the content ten times less: the colours come much closer to the style's, and the
    picture moves away from the photo."""
    common = ("size=64", "steps=20", "octaves=1", "content=astronaut", "style=hubble_deep_field")
    field = resize_to(load_image("hubble_deep_field"), (64, 64))
    colours, changes = [], []
    for strength in (0, 1):
        assert _run(tmp_path / str(strength), "style", *common, f"strength={strength}")["strength"] == strength
        result = load_image(tmp_path / str(strength) / "image.png")
        photo = resize_to(load_image("astronaut"), (result.shape[-2], result.shape[-1]))
        colours.append(color_distance(result, field))
        changes.append(float((result - photo).abs().mean()))
    assert colours[1] < 0.5 * colours[0], colours
    assert changes[1] > 2 * changes[0], changes
    for wrong in ("1.5", "-1", "abc", "true"):
        with pytest.raises(UserError, match=r"strength=\S+ is not valid; use a number from 0 \(faithful\) to 1"):
            _run(tmp_path / "over", "style", *common, f"strength={wrong}")


def test_the_weights_balance_the_photo_against_the_style(tmp_path: Path) -> None:
    """From the photo (strength=0: neither its colours nor the content's weight changed): with a style weight of next
    to nothing the picture stays the photo to the network's deep features; the default weights move it toward the
    style by a judge the loss never saw (network-free texture statistics); a hundredfold content weight holds it
    near the photo, between the two. Measured 0.10 / 0.76 / 0.14 from the photo, texture 16.1 / 14.4 / 15.4."""
    common = ("size=64", "steps=60", "octaves=1", "strength=0", "flatten=null", "content=astronaut")
    field = resize_to(load_image("hubble_deep_field"), (64, 64))
    runs = {"none": ("style_weight=1e-6", "histogram_weight=0"), "default": (), "heavy": ("content_weight=100",)}
    mnet = load_model("mobilenet_v2", "IMAGENET1K_V1")
    kept, texture = {}, {}
    for name, keys in runs.items():
        picture = _picture(tmp_path / name, "style", *common, "style=hubble_deep_field", *keys)[0]
        photo = resize_to(load_image("astronaut"), tuple(picture.shape[-2:]))
        kept[name] = feature_distance(mnet, "features.13", picture, photo)
        texture[name] = texture_distance(picture, field)
    assert kept["none"] < 0.25 and kept["heavy"] < 0.3 * kept["default"], kept
    assert texture["default"] < texture["heavy"] < texture["none"] and texture["default"] < 0.95 * texture["none"]


def test_a_texture_refuses_a_content_it_would_read_only_for_its_shape(tmp_path: Path) -> None:
    """``content=`` with ``content_weight=0`` and a noise start sets the shape alone: refused. Read as the start, as
    the colours kept or with a content weight, it is taken, and it is the start (the cat's layout comes through)."""
    with pytest.raises(UserError, match=r"^content=chelsea would only set the picture's shape .* init=content"):
        _run(tmp_path / "refused", "texture", "content=chelsea")
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    tiny = ("size=48", "steps=1", "lr=1e-6", "octaves=1")
    for taken in ("init=content", "colors=luminance", "content_weight=1"):
        _run(tmp_path / taken, "texture", "content=chelsea", *tiny, taken)
    picture = _picture(tmp_path / "start", "texture", "content=chelsea", "strength=0", *tiny, "init=content")[0]
    cat = resize_to(load_image("chelsea"), tuple(picture.shape[-2:]))
    centred = [(p - p.mean()).flatten() for p in (picture, cat)]
    assert float(torch.nn.functional.cosine_similarity(*centred, dim=0)) > 0.9
