"""Flattening (L0 gradient smoothing with a budget of flat pixels): flat regions, kept edges, the share asked for, and
``flatten=auto`` in style transfer taking the style's share only when the style is the flatter picture."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from engine.errors import UserError
from engine.images import load_image, resize_long, resize_to
from engine.params import from_rgb, pixel
from regularizers.flat import MOST_SHARE, auto_share, flat_share, flatten
from regularizers.periodic import Periodic, periodic


def _two_colours(noise: float = 0.03, seed: int = 0) -> torch.Tensor:
    """A red left half and a blue right half, with Gaussian noise: ``(1, 3, 32, 48)``."""
    picture = torch.zeros((1, 3, 32, 48))
    picture[:, 0, :, :24], picture[:, 2, :, 24:] = 0.8, 0.7
    noisy = picture + noise * torch.randn(picture.shape, generator=torch.Generator().manual_seed(seed))
    return noisy.clamp(0, 1)


def test_flat_share_counts_the_flat_pixels() -> None:
    assert flat_share(torch.full((1, 3, 16, 16), 0.4)) == 1.0
    assert flat_share(_two_colours(noise=0.1)) < 0.05
    stripes = torch.zeros((1, 3, 16, 16))
    stripes[..., ::2] = 1.0  # every pixel differs from its right neighbour
    assert flat_share(stripes) == 0.0


def test_flatten_makes_flat_regions_and_keeps_the_edge() -> None:
    noisy = _two_colours()
    out = flatten(noisy, 0.9)
    inner = out[..., 2:-2, 2:22], out[..., 2:-2, 26:46]  # away from the edge and the wrapped border
    assert all(float(part.std(dim=(-2, -1)).max()) < 0.01 for part in inner)  # the noise was 0.03
    assert float(inner[0][:, 0].mean()) == pytest.approx(0.8, abs=0.03)
    assert float(inner[1][:, 2].mean()) == pytest.approx(0.7, abs=0.03)
    assert float((out[:, 0, :, 23] - out[:, 0, :, 24]).mean()) > 0.6  # the edge is sharp, not smeared
    assert flat_share(out) > 0.85


@pytest.mark.parametrize("share", [0.3, 0.6, 0.85])
def test_flatten_reaches_the_share_asked_on_a_photo(share: float) -> None:
    photo = resize_to(load_image("coffee"), (64, 96))
    assert flat_share(photo) < 0.5
    assert flat_share(flatten(photo, share)) == pytest.approx(share, abs=0.06)


def test_flatten_of_no_share_leaves_the_picture() -> None:
    photo = resize_to(load_image("chelsea"), (32, 32))
    assert torch.allclose(flatten(photo, 0.0), photo, atol=2e-3)
    with pytest.raises(ValueError, match="share"):
        flatten(photo, 1.0)


def test_each_picture_of_a_batch_gets_its_own_flat_pixels() -> None:
    batch = torch.cat([_two_colours(seed=0), _two_colours(noise=0.1, seed=1)])
    out = flatten(batch, 0.8)
    assert torch.allclose(out[:1], flatten(batch[:1], 0.8), atol=1e-5)
    assert flat_share(out[1:]) == pytest.approx(0.8, abs=0.06)


def test_auto_share_is_the_style_s_when_the_style_is_flatter() -> None:
    photo = _two_colours(noise=0.1)  # nothing flat
    flat, busy = torch.full((1, 3, 32, 48), 0.5), _two_colours(noise=0.2, seed=3)
    assert auto_share([flat], [1.0], photo, 1.0) == MOST_SHARE  # a blank style does not ask for a blank picture
    assert auto_share([flat], [1.0], photo, 0.5) == pytest.approx(0.5, abs=0.05)  # half way from the photo's
    assert auto_share([flat, busy], [0.5, 0.5], photo, 1.0) == pytest.approx(0.5, abs=0.05)  # the blend
    assert auto_share([busy], [1.0], photo, 1.0) is None  # no flatter than the photo: off
    assert auto_share([flat], [1.0], None, 1.0) is None  # no photo (texture): off
    assert auto_share([flat], [1.0], photo, 0.0) is None  # strength 0: off


@pytest.mark.parametrize("decorrelate", [False, True])
def test_periodic_flatten_acts_on_its_period_at_the_last_step_and_at_an_early_end(decorrelate: bool) -> None:
    start = torch.cat([_two_colours(seed=0), _two_colours(seed=1)])  # a batch: each picture flattened
    params, image_fn = pixel((2, 3, 32, 48), init=start, decorrelate=decorrelate)
    p = params[0]
    rule = Periodic(p, 7, flatten=(3, 0.9), decorrelate=decorrelate)
    before = p.detach().clone()
    rule.on_step(0, torch.zeros(()), image_fn)  # step 1: not due
    assert torch.equal(p, before)
    picture = image_fn().detach()
    rule.on_step(2, torch.zeros(()), image_fn)  # step 3: due, the picture's colours flattened
    assert torch.allclose(image_fn().detach(), flatten(picture, 0.9), atol=2e-3)
    for end in ("last step", "early end", "early end on a flattening"):
        with torch.no_grad():
            p.copy_(from_rgb(start, decorrelate))
        if end == "last step":
            rule.on_step(6, torch.zeros(()), image_fn)  # step 7: not a multiple of 3, but the last
        else:
            rule.on_end(6 if end.endswith("flattening") else 5, image_fn)  # a goal reached after step 5 or 6
        if end.endswith("flattening"):  # step 6 was flattened already: nothing more
            assert torch.allclose(image_fn().detach(), start, atol=2e-3)
        else:
            assert flat_share(image_fn().detach()) > 0.85


def test_periodic_reads_the_pictures_colour_space() -> None:
    for decorrelate in (False, True):
        cfg = _cfg(flatten=[3, 0.5], param={"_target_": "engine.params.pixel", "decorrelate": decorrelate})
        rule = periodic(cfg, [torch.zeros(1, 3, 8, 8)], 10)
        assert isinstance(rule, Periodic) and rule.decorrelate is decorrelate and rule.flatten == (3, 0.5)


def test_flatten_takes_odd_sizes_and_refuses_a_single_row() -> None:
    photo = resize_to(load_image("coffee"), (33, 47))
    out = flatten(photo, 0.6)
    assert out.shape == photo.shape and flat_share(out) == pytest.approx(0.6, abs=0.06)
    with pytest.raises(ValueError, match="2 x 2"):
        flatten(torch.rand(1, 3, 1, 40), 0.5)


def _cfg(**keys: object) -> object:
    base = {"param": {"_target_": "engine.params.pixel", "decorrelate": False}}
    return OmegaConf.create({**base, **keys})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("auto", "only style transfer has it"),
        ([30, 1.5], "flatten=[30, 1.5] is not valid"),
        ([0, 0.5], "a whole number of steps from 1"),
    ],
)
def test_bad_flatten_gets_one_line(value: object, words: str) -> None:
    with pytest.raises(UserError) as caught:
        periodic(_cfg(flatten=value), [torch.zeros(1, 3, 8, 8)], 10)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_style_flattens_for_a_flat_style_and_keeps_auto_in_its_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.export import read_png_config
    from engine.runner import run_recipe
    from tests.helpers import compose_recipe

    found = {}
    for name, keys in {
        "logo": ["style=[logo]"],
        "ihc": ["style=[ihc]"],  # busier than the photo: off
        "faithful": ["style=[logo]", "strength=0"],  # strength 0: off
        "fourier": ["style=[logo]", "param=fft"],  # not pixels: off, and the run works
    }.items():
        cfg = compose_recipe("style", "content=coffee", "size=96", "steps=3", "octaves=1", "snapshot_every=0",
                             "device=cpu", *keys)  # fmt: skip
        metrics = run_recipe(cfg, tmp_path / name, "style").metrics
        stored = OmegaConf.create(read_png_config(tmp_path / name / "image.png"))
        assert stored.flatten == "auto" == cfg.flatten  # a rerun with other keys decides again
        found[name] = (metrics["flatten"], flat_share(load_image(tmp_path / name / "image.png")))
    (every, share), flat = found["logo"]  # the logo is flatter than the photo: its share at the picture's size
    logo = load_image("logo")
    assert share == pytest.approx(flat_share(resize_long(logo, 96)), abs=0.002)
    assert every == 30 and flat == pytest.approx(share, abs=0.08)
    assert [found[name][0] for name in ("ihc", "faithful", "fourier")] == [None, None, None]
    assert found["ihc"][1] < 0.5
