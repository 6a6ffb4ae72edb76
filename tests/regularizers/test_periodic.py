"""The periodic regularizers: each changes the pixels as it says, on its own period, and bad keys get one line."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from engine.errors import UserError
from regularizers import tv_map
from regularizers.periodic import Periodic, periodic


def _picture(seed: int = 0) -> torch.Tensor:
    return torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


def _step(rule: Periodic, step: int) -> None:
    rule.on_step(step, torch.zeros(()), lambda: rule.picture)


def test_decay_shrinks_toward_grey_on_its_period() -> None:
    p = _picture()
    before = p.clone()
    rule = Periodic(p, 10, decay=(2, 0.1))
    _step(rule, 0)  # step 1: not due
    assert torch.equal(p, before)
    _step(rule, 1)  # step 2: due
    assert torch.allclose(p, before * 0.9)


def test_blur_smooths_the_picture() -> None:
    p = _picture()
    rough = float(tv_map(p))
    _step(Periodic(p, 10, blur=(1, 1.0)), 0)
    assert float(tv_map(p)) < 0.5 * rough


def test_clip_norm_greys_the_weakest_pixels_of_each_picture() -> None:
    p = _picture()
    norms = p.norm(dim=1)
    _step(Periodic(p, 10, clip_norm=(1, 25.0)), 0)
    grey = (p.abs().sum(dim=1) == 0).float().mean(dim=(1, 2))
    assert torch.allclose(grey, torch.full((2,), 0.25), atol=0.01)
    for b in range(2):  # each picture's own cut: every kept pixel is stronger than every greyed one
        kept = p[b].abs().sum(dim=0) > 0
        assert float(norms[b][kept].min()) >= float(norms[b][~kept].max())


def test_clip_contribution_follows_value_times_gradient() -> None:
    p = _picture().requires_grad_(True)
    p.grad = torch.zeros_like(p)
    p.grad[..., :16] = 1.0  # only the left half contributes
    _step(Periodic(p, 10, clip_contribution=(1, 50.0)), 0)
    assert float(p.detach()[..., 16:].abs().max()) == 0 and float(p.detach()[..., :16].abs().min()) > 0


def test_centre_holds_the_border_until_the_region_grows() -> None:
    start = _picture()
    p = start.clone()
    rule = Periodic(p, 8, centre=0.5)
    p.add_(1.0)  # a step moved every pixel
    _step(rule, 0)  # 1 of the 4 growing steps: the box is 5/8 of the side
    assert torch.equal(p[..., 0, 0], start[..., 0, 0]) and torch.equal(p[..., 16, 16], start[..., 16, 16] + 1)
    p.add_(1.0)
    _step(rule, 3)  # grown: all of it moves
    assert torch.equal(p[..., 0, 0], start[..., 0, 0] + 1)


def _cfg(**keys: object) -> object:
    base = {"param": {"_target_": "engine.params.pixel"}, "blur": None, "decay": None, "clip_norm": None,
            "clip_contribution": None, "centre": None}  # fmt: skip
    return OmegaConf.create({**base, **keys})


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"blur": [0, 1.0]}, "blur=[0, 1.0] is not valid"),
        ({"decay": [1, 1.5]}, "below 1"),
        ({"clip_norm": "x"}, "[every, strength]"),
        ({"centre": 2}, "centre=2 is not valid"),
        ({"blur": [4, 0.5], "param": {"_target_": "engine.params.fft"}}, "add param=pixel"),
    ],
)
def test_bad_keys_get_one_line(keys: dict[str, object], words: str) -> None:
    with pytest.raises(UserError) as caught:
        periodic(_cfg(**keys), [torch.zeros(1, 3, 8, 8)], 10)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_nothing_on_gives_no_callback() -> None:
    assert periodic(_cfg(), [torch.zeros(1, 3, 8, 8)], 10) is None
    assert isinstance(periodic(_cfg(blur=[4, 0.5]), [torch.zeros(1, 3, 8, 8)], 10), Periodic)


def test_a_view_refuses_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.runner import run_recipe
    from tests.helpers import compose_recipe

    with pytest.raises(UserError, match=r"takes no penalties, so blur=\[4, 0.5\] would do nothing"):
        run_recipe(compose_recipe("saliency", "blur=[4,0.5]", "device=cpu"), tmp_path / "run", "saliency")
    assert not (tmp_path / "run").exists()
