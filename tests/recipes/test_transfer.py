"""Style transfer, texture synthesis and feature inversion: the pieces alone, then whole recipes on MobileNetV2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from engine.colors import keep_chroma, luminance, match_colors, match_luminance, region_masks, transfer_colors
from engine.configs import compose
from engine.errors import UserError
from engine.export import contact_sheet
from engine.images import load_image, resize_long, resize_to, resize_wrapped
from engine.measures import color_distance, feature_distance, grid_strength, style_distance, texture_distance
from engine.models import ModelView, classic_names, load_model
from engine.runner import run_recipe
from engine.scales import shrink
from objectives import blend_weights, content, gram, histogram, smooth, style, style_grams
from objectives.base import INPUT
from regularizers.transforms import Roll

# --- Gram matrices, smoothing and the style objective ---


def test_gram_is_channel_cooccurrence_averaged_over_positions() -> None:
    f = torch.randn(2, 4, 5, 6)
    x = f.flatten(2)
    assert torch.allclose(gram(f), x @ x.transpose(1, 2) / 30, atol=1e-5)
    assert torch.allclose(gram(f, torch.ones(1, 1, 5, 6)), gram(f), atol=1e-5)


def test_masked_gram_only_sees_its_region() -> None:
    f = torch.randn(1, 3, 4, 8)
    left = torch.zeros(1, 1, 4, 8)
    left[..., :4] = 1
    assert torch.allclose(gram(f, left), gram(f[..., :4]), atol=1e-5)


def test_softmax_smoothing_keeps_a_flat_map_at_one_and_tames_peaks() -> None:
    assert torch.allclose(smooth(torch.full((1, 2, 3, 3), 7.0), "softmax"), torch.ones(1, 2, 3, 3))
    f = torch.zeros(1, 2, 4, 4)
    f[0, 0, 0, 0] = 50.0
    out = smooth(f, "softmax")
    assert out.sum().item() == pytest.approx(32.0, rel=1e-4)  # the mass stays the number of elements
    assert torch.equal(smooth(f, "none"), f)
    with pytest.raises(UserError, match="smoothing=blur is not known"):
        smooth(f, "blur")


def test_style_loss_is_zero_at_the_target_and_layer_weights_are_relative(tiny: ModelView) -> None:
    torch.manual_seed(0)
    picture, other = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    layers = ["features.1", "features.3"]
    grams = style_grams(tiny, [picture], layers)
    loss = style(grams)
    assert loss(tiny(picture, layers)).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(tiny(other, layers)).item() > 0.01
    a = style(grams, {"features.1": 1.0, "features.3": 3.0})(tiny(other, layers))
    b = style(grams, {"features.1": 2.0, "features.3": 6.0})(tiny(other, layers))
    assert torch.allclose(a, b)
    with pytest.raises(UserError, match="positive"):
        style(grams, {"features.1": 0.0, "features.3": 0.0})


def test_blended_grams_are_the_weighted_mean(tiny: ModelView) -> None:
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 24, 40)
    layers = ["features.1"]
    ga, gb = style_grams(tiny, [a], layers), style_grams(tiny, [b], layers)
    mixed = style_grams(tiny, [a, b], layers, [3.0, 1.0])
    assert torch.allclose(mixed["features.1"], 0.75 * ga["features.1"] + 0.25 * gb["features.1"], atol=1e-6)


def test_content_loss_is_relative_to_the_target(tiny: ModelView) -> None:
    torch.manual_seed(0)
    picture = torch.rand(1, 3, 32, 32)
    target = tiny(picture, ["features.3"])["features.3"]
    loss = content("features.3", target)
    assert loss({"features.3": target}).item() == pytest.approx(0.0)
    assert loss({"features.3": torch.zeros_like(target)}).item() == pytest.approx(1.0)


def test_histogram_loss_sees_colours_not_places() -> None:
    """Zero for the style's own pixels in any order; a dark blob the style lacks costs, and its gradient lightens it."""
    torch.manual_seed(0)
    sample = resize_to(load_image("ihc"), (64, 64))
    loss = histogram([sample], weight=1.0)
    shuffled = sample.flatten(2)[..., torch.randperm(64 * 64)].view_as(sample)
    assert float(loss({INPUT: shuffled})) < 1e-9
    blob = sample.clone()
    blob[..., 20:36, 20:36] = torch.tensor([0.0, 0.2, 0.2])[:, None, None]
    blob.requires_grad_(True)
    cost = loss({INPUT: blob})
    cost.backward()
    assert float(cost) > 1e-3
    assert blob.grad is not None and float(blob.grad[..., 20:36, 20:36].sum()) < 0  # descent makes it lighter
    both = histogram([sample, torch.zeros(1, 3, 8, 8)], shares=[1.0, 0.0])  # a share of 0 adds nothing
    assert float(both({INPUT: shuffled})) < 1e-9


def test_the_style_recipes_keep_the_defaults_they_were_measured_with() -> None:
    """The defaults the measurements in docs/recipes.md and docs/video.md were made with."""
    names = ("style", "texture", "style_video")
    cfgs = {name: compose([f"recipe={name}"]) for name in names}
    picks = {name: (cfg.statistics, cfg.pyramid, cfg.histogram_weight) for name, cfg in cfgs.items()}
    assert picks == {"style": ("gram", 3, 300), "texture": ("gram", 1, 100), "style_video": ("gram", 1, 0)}
    assert (cfgs["style"].octave_colors, cfgs["style_video"].octave_colors) == (True, False)
    assert [cfgs[name].flatten for name in names] == ["auto", None, None]
    assert [(cfgs[name].octaves, cfgs[name].octave_scale) for name in names] == [(3, 1.5), (3, 1.5), (2, 1.5)]


def test_blend_weights_are_checked_and_normalized() -> None:
    assert blend_weights(None, 2) == [0.5, 0.5]
    assert blend_weights([3, 1], 2) == [0.75, 0.25]
    with pytest.raises(UserError, match="2 style pictures but 1 style_weights"):
        blend_weights([1.0], 2)
    with pytest.raises(UserError, match="add up to a positive number"):
        blend_weights([0.0, 0.0], 2)
    with pytest.raises(UserError, match=">= 0"):
        blend_weights([-1.0, 2.0], 2)
    with pytest.raises(UserError, match=">= 0"):
        blend_weights([float("nan"), 1.0], 2)


# --- colours and masks ---


def test_luminance_transfer_keeps_the_contents_chroma() -> None:
    torch.manual_seed(0)
    content_picture = torch.rand(1, 3, 16, 16) * 0.5 + 0.25
    result = torch.rand(1, 3, 16, 16) * 0.5 + 0.25
    out = keep_chroma(result, content_picture)
    assert torch.allclose(luminance(out), luminance(result), atol=1e-4)
    # a grey result takes the content's colours exactly where the content is grey-balanced
    grey = luminance(content_picture)
    assert torch.allclose(keep_chroma(grey, content_picture), content_picture, atol=1e-4)


def test_style_luminance_is_matched_to_the_content() -> None:
    torch.manual_seed(0)
    s, c = torch.rand(1, 3, 20, 20) * 0.3, torch.rand(1, 3, 20, 20) * 0.2 + 0.6
    y = match_luminance(s, c)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])  # grey
    assert y.mean().item() == pytest.approx(luminance(c).mean().item(), abs=0.01)


def test_histogram_mode_gives_the_style_the_contents_colour_statistics() -> None:
    torch.manual_seed(0)
    s = torch.rand(1, 3, 32, 32) * torch.tensor([0.3, 0.1, 0.2]).view(1, 3, 1, 1) + 0.1
    c = torch.rand(1, 3, 32, 32) * torch.tensor([0.2, 0.3, 0.1]).view(1, 3, 1, 1) + 0.5
    out = match_colors(s, c)
    flat_out, flat_c = out[0].flatten(1).double(), c[0].flatten(1).double()
    assert torch.allclose(flat_out.mean(1), flat_c.mean(1), atol=1e-3)
    assert torch.allclose(torch.cov(flat_out), torch.cov(flat_c), atol=1e-4)


def test_colour_transfer_takes_the_references_colours_and_keeps_each_pixels_rank() -> None:
    photo = resize_to(load_image("astronaut"), (96, 96))
    field = resize_to(load_image("hubble_deep_field"), (80, 120))
    out = transfer_colors(photo, [field])
    assert color_distance(out, field) < 0.1 * color_distance(photo, field)  # measured 0.02 of it
    grey, grey_out = photo.mean(1).flatten(), out.mean(1).flatten()
    rank = torch.corrcoef(torch.stack([grey.argsort().argsort().double(), grey_out.argsort().argsort().double()]))
    assert rank[0, 1] > 0.9  # the brighter parts of the photo stay the brighter parts
    halves = transfer_colors(photo, [torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)])  # references pooled
    assert 0.4 < float((halves > 0.5).double().mean()) < 0.6


def _two_tone(h: int = 10, w: int = 12) -> torch.Tensor:
    mask = torch.zeros(1, 3, h, w)
    mask[..., : w // 3] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)  # blue on the left
    mask[..., w // 3 :] = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1)  # yellow on the right
    return mask


def test_mask_regions_go_darkest_first_and_cover_the_picture() -> None:
    left, right = region_masks(_two_tone(), 2)
    assert left[..., :4].min() == 1 and left[..., 4:].max() == 0  # blue is darker than yellow: the first style
    assert torch.equal(left + right, torch.ones_like(left))
    named = region_masks(_two_tone(), 2, ["yellow", "#0000ff"])
    assert torch.equal(named[0], right) and torch.equal(named[1], left)


def test_mask_errors_name_the_colours() -> None:
    with pytest.raises(UserError, match=r"the mask has 2 colours \(#0000ff, #ffff00\) but there are 3 styles"):
        region_masks(_two_tone(), 3)
    with pytest.raises(UserError, match="mask colour #ffff00 maps to no style"):
        region_masks(_two_tone(), 2, ["blue", "red"])
    with pytest.raises(UserError, match="no part of the mask has the colour of style 3"):
        region_masks(_two_tone(), 3, ["blue", "yellow", "red"])
    with pytest.raises(UserError, match="'chartreuse-ish' is not a colour"):
        region_masks(_two_tone(), 2, ["blue", "chartreuse-ish"])


# --- the model and the picture around the loss ---


def test_vgg_classic_layer_names() -> None:
    names = classic_names(torchvision.models.vgg19())
    assert names["conv1_1"] == "features.0" and names["relu1_1"] == "features.1"
    assert names["conv4_2"] == "features.21" and names["relu5_1"] == "features.29" and names["pool5"] == "features.36"
    assert classic_names(torchvision.models.vgg16())["conv4_2"] == "features.19"
    assert classic_names(torchvision.models.resnet18()) == {}


def test_vgg_view_answers_to_classic_names() -> None:
    torch.manual_seed(0)
    view = load_model("vgg16", "none")
    x = torch.rand(1, 3, 32, 32)
    acts = view(x, ["relu1_2", "features.3"])
    assert torch.equal(acts["relu1_2"], acts["features.3"])
    with pytest.raises(UserError, match="no layer 'relu6_1'"):
        view.check_layers(["relu6_1"])


def test_wrapped_edges_make_the_features_shift_with_the_picture() -> None:
    torch.manual_seed(0)
    view = load_model("mobilenet_v2", "none")
    x = torch.rand(1, 3, 32, 32)
    rolled = torch.roll(x, (4, 8), dims=(-2, -1))
    layer = "features.3"  # stride 4 so far
    plain = view(rolled, [layer])[layer], torch.roll(view(x, [layer])[layer], (1, 2), dims=(-2, -1))
    assert not torch.allclose(*plain, atol=1e-4)  # zero padding: the edges differ
    view.wrap_edges()
    a, b = view(rolled, [layer])[layer], torch.roll(view(x, [layer])[layer], (1, 2), dims=(-2, -1))
    assert torch.allclose(a, b, atol=1e-4)


def test_wrapped_resize_keeps_a_repeating_picture_seamless() -> None:
    torch.manual_seed(0)
    tile = torch.rand(1, 3, 12, 12)
    big = resize_wrapped(tile, (30, 30))
    assert big.shape == (1, 3, 30, 30)
    # the wrapped result, repeated, equals resizing the repeated picture (away from its outer border)
    reference = resize_to(tile.repeat(1, 1, 3, 3), (90, 90))[..., 30:60, 30:60]
    assert torch.allclose(big, reference, atol=1e-5)


def test_resize_long_reads_the_size_key_as_target_size_does() -> None:
    picture = torch.rand(1, 3, 30, 60)
    assert resize_long(picture, 20).shape[-2:] == (10, 20)  # the long side, the aspect ratio kept
    assert resize_long(picture, [12, 16]).shape[-2:] == (12, 16)  # a pair is [h, w] as given
    assert resize_long(picture, 60) is picture  # already that size: the picture itself


def test_roll_shifts_by_at_most_its_limit() -> None:
    torch.manual_seed(0)
    roll = Roll(2)
    x = torch.arange(100.0).view(1, 1, 10, 10)
    seen = set()
    for _ in range(30):
        y = roll(x)
        dy, dx = (int(i) for i in (y[0, 0] == 0).nonzero()[0])  # where the first pixel went
        assert min(dy, 10 - dy) <= 2 and min(dx, 10 - dx) <= 2
        assert torch.equal(y.flatten().sort().values, x.flatten())
        seen.add((dy, dx))
    assert len(seen) > 5
    assert torch.equal(Roll(0)(x), x)


def test_contact_sheet_captions_add_a_strip_under_each_row() -> None:
    pictures = torch.rand(3, 3, 20, 30)
    plain, captioned = contact_sheet(pictures, 3), contact_sheet(pictures, 3, labels=["a", "b", "c"])
    assert captioned.width == plain.width and captioned.height == plain.height + 14
    text = np.asarray(captioned)[-14:-2]
    assert (text < 128).any()  # the captions are drawn in dark ink


def test_a_long_caption_stays_under_its_own_picture_and_keeps_its_ends() -> None:
    pictures = torch.ones(2, 3, 40, 60)
    sheet = contact_sheet(pictures, 2, pad=4, labels=["features chelsea_3.png with a very long name", ""])
    ink = (np.asarray(sheet)[-14:].min(axis=2) < 128).any(axis=0)
    assert ink[:64].any() and not ink[64:].any()  # cut to fit: nothing spills under the next picture
    two_words = contact_sheet(pictures[:1], 1, labels=["ab cd"])
    columns = (np.asarray(two_words)[-14:].min(axis=2) < 128).any(axis=0).nonzero()[0]
    assert np.diff(columns).max() >= 4  # the words are apart, not run together


def test_grid_strength_finds_a_checkerboard() -> None:
    torch.manual_seed(0)
    smooth_picture = resize_to(torch.rand(1, 3, 8, 8), (64, 64))
    board = smooth_picture.clone()
    board[..., ::2, ::2] += 0.1
    assert grid_strength(board) > 10 * grid_strength(smooth_picture)


# --- whole recipes on the packaged MobileNetV2 ---


def _run(tmp_path: Path, recipe: str, *overrides: str) -> dict[str, object]:
    cfg = compose([f"recipe={recipe}", "device=cpu", "snapshot_every=0", *overrides])
    return run_recipe(cfg, tmp_path, recipe).metrics


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _wrap_match(picture: torch.Tensor) -> float:
    """How alike the last column and the first are, over how alike neighbouring columns inside are: about 1 when the
    picture continues across its wrapped edge, well under 1 when the two edges were made apart."""
    w = picture.shape[-1]
    inside = sum(_correlation(picture[..., i], picture[..., i + 1]) for i in range(w - 1)) / (w - 1)
    return _correlation(picture[..., -1], picture[..., 0]) / inside


@pytest.mark.slow
@pytest.mark.parametrize("statistics", ["sliced", "gram"])
def test_style_transfer_carries_the_style_and_keeps_the_content(tmp_path: Path, statistics: str) -> None:
    """The quality bar, small: a judge the optimization never saw (a random VGG19) finds the result well over
    half way from the photo to the style, while MobileNetV2's deep features still find the photo."""
    metrics = _run(tmp_path, "style", "size=128", "steps=60", f"statistics={statistics}")
    assert str(metrics["objective"]).startswith(f"1000 * ({'sliced' if statistics == 'sliced' else 'style'}(")
    result = load_image(tmp_path / "image.png")
    hw = (result.shape[-2], result.shape[-1])
    photo = resize_to(load_image("grace_hopper"), hw)
    painting = resize_to(load_image("ihc"), (128, 128))
    torch.manual_seed(0)
    judge = load_model("vgg19", "none")
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    moved = style_distance(judge, layers, result, painting) / style_distance(judge, layers, photo, painting)
    mnet = load_model("mobilenet_v2", "IMAGENET1K_V1")
    kept = feature_distance(mnet, "features.13", result, photo) / feature_distance(
        mnet, "features.13", resize_to(painting, hw), photo
    )
    assert moved < 0.5, f"style distance ratio {moved:.3f}"
    assert kept < 0.5, f"content distance ratio {kept:.3f}"


@pytest.mark.slow
def test_the_pyramid_brings_the_styles_coarse_statistics(tmp_path: Path) -> None:
    """With ``pyramid=3`` the style layers also read the picture at half and a quarter of its size: two judges the
    loss never saw find the result nearer the style than with the picture's own scale alone, the network-free
    texture statistics (which span four octaves of scale) and a random VGG19's Gram matrices on both pictures at half
    size. Measured at 256 px: 0.46 -> 0.29 and 0.018 -> 0.011 of the photo's own distances."""
    style = resize_to(load_image("ihc"), (256, 256))
    torch.manual_seed(0)
    judge = load_model("vgg19", "none")
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    texture, coarse = {}, {}
    for levels in (1, 3):
        metrics = _run(tmp_path / str(levels), "style", "size=256", "steps=60", f"pyramid={levels}")
        assert ("features.11.conv.0@4" in str(metrics["objective"])) == (levels == 3)
        result = load_image(tmp_path / str(levels) / "image.png")
        texture[levels] = texture_distance(result, style)
        coarse[levels] = style_distance(judge, layers, shrink(result, 2), shrink(style, 2))
    assert texture[3] < 0.8 * texture[1], texture
    assert coarse[3] < 0.8 * coarse[1], coarse


@pytest.mark.slow
def test_tiled_texture_has_no_seam(tmp_path: Path) -> None:
    """The wrapped edge against the steps inside, both ways: measured 0.74, 0.85 and 1.03 tiled against 0.37, 0.47
    and 0.76 plain over seeds 0 to 2 at 96 px (a jump ratio of the pixel values could not tell them apart on some
    seeds: busy textures step as much inside as across an edge)."""
    pixels = ("size=96", "steps=150", "param=pixel", "lr=0.05")  # a Fourier picture repeats whatever the padding
    _run(tmp_path / "tiled", "texture", *pixels, "seamless=true")
    _run(tmp_path / "plain", "texture", *pixels, "seamless=false")
    tiled, plain = load_image(tmp_path / "tiled" / "image.png"), load_image(tmp_path / "plain" / "image.png")
    both = [(_wrap_match(p) + _wrap_match(p.transpose(-1, -2))) / 2 for p in (tiled, plain)]
    assert both[0] > 0.65 and both[0] > both[1] + 0.2, both


@pytest.mark.slow
@pytest.mark.parametrize("statistics", ["gram", "sliced"])
def test_mask_puts_each_style_in_its_region(tmp_path: Path, statistics: str) -> None:
    """A dark sky and a light stained slide, split by a mask of another size: each half takes its own style."""
    mask = np.zeros((30, 40, 3), dtype=np.uint8)
    mask[:, 20:] = 255  # black left (first style), white right (second)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    metrics = _run(
        tmp_path / "run",
        "texture",
        "size=80",
        "steps=100",
        "style=[hubble_deep_field,ihc]",
        f"mask={tmp_path}/mask.png",
        f"statistics={statistics}",
        "pyramid=2",  # the last octave's regions are also read at half size
    )
    assert metrics["styles"] == ["hubble_deep_field", "ihc"]
    assert f"{statistics}(" in str(metrics["objective"]).replace("style(", "gram(")
    assert "features.11.conv.0@2" in str(metrics["objective"])
    picture = load_image(tmp_path / "run" / "image.png")
    w = picture.shape[-1]  # the halves, less a band of an eighth of the width around the border
    left, right = picture[..., : 7 * w // 16].mean().item(), picture[..., 9 * w // 16 :].mean().item()
    assert right - left > 0.25, (left, right)


@pytest.mark.slow
def test_shallow_inversion_is_nearly_exact(tmp_path: Path) -> None:
    metrics = _run(tmp_path, "inversion", "layer=features.1", "size=64", "steps=60")
    assert metrics["feature_error"] < 0.05
    assert json.loads((tmp_path / "metrics.json").read_text())["objective"].startswith("content(features.1)")


@pytest.mark.slow
def test_inversion_sweep_lays_out_input_and_layers(tmp_path: Path) -> None:
    layers = "layers=[features.1,features.10]"
    metrics = _run(tmp_path, "inversion_sweep", layers, "size=48", "steps=30", "snapshot_every=10", "octaves=1")
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == 2 * 4  # steps 0, 10, 20 and the last, for each layer in turn
    errors = metrics["errors"]
    assert isinstance(errors, dict) and list(errors) == ["features.1", "features.10"]
    assert len(list((tmp_path / "images").glob("*.png"))) == 3  # the input and one picture per layer
    with Image.open(tmp_path / "image.png") as sheet:
        assert sheet.width > 3 * 40
