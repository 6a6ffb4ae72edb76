"""Adversarial and fooling pictures: the eps box, 8-bit rounding, and that the model's answer really changes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.callbacks import Progress, Snapshots
from engine.configs import compose
from engine.errors import UserError
from engine.images import load_image, quantize, resize_to, to_pil
from engine.models import LOGITS, ModelView
from engine.runner import run_recipe
from recipes.adversarial import attack, fool, parse_eps


def test_eps_accepts_fractions_and_refuses_the_impossible() -> None:
    assert parse_eps("2/255") == pytest.approx(2 / 255) and parse_eps("0.5/255") == pytest.approx(0.5 / 255)
    assert parse_eps(0.5) == 0.5 and parse_eps(1) == 1.0
    for bad in (0, -0.1, 1.5, "abc", "1/0", float("nan")):
        with pytest.raises(UserError, match=r"eps=.* is not valid"):
            parse_eps(bad)


def test_attack_stays_in_the_eps_box_on_8_bit_levels(tiny: ModelView) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 24)
    for eps in (2 / 255, 0.013):
        adv = attack(tiny, x, eps, target=1, steps=5)
        x0 = (x * 255).round() / 255
        assert (adv - x0).abs().max() <= eps + 1e-6
        assert torch.allclose(adv * 255, (adv * 255).round(), atol=1e-4)
        assert (adv - x0).abs().max() > 0
    with pytest.raises(UserError, match="method=pgd is not known"):
        attack(tiny, x, 0.1, method="pgd")


@pytest.mark.parametrize("method", ["fgsm", "iterative"])
def test_an_attack_without_a_target_pushes_away_from_the_models_answer(mobilenet: ModelView, method: str) -> None:
    x = quantize(resize_to(load_image("chelsea"), (96, 96)))
    eps = 2 / 255
    adv = attack(mobilenet, x, eps, None, method, steps=5)
    with torch.no_grad():
        before, after = (mobilenet(p)[LOGITS].softmax(1)[0] for p in (x, adv))
    own = int(before.argmax())
    assert float(after[own]) < 0.5 * float(before[own]), (float(before[own]), float(after[own]))
    if method == "fgsm":  # one signed step of eps: nearly every pixel moved by exactly eps
        assert float(((adv - x).abs() - eps).abs().lt(1e-4).float().mean()) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["chelsea", "coffee", "rocket"])
def test_two_levels_per_pixel_turn_a_photo_into_a_toaster(mobilenet: ModelView, sample: str) -> None:
    picture = resize_to(load_image(sample), (160, 160))
    toaster = mobilenet.categories.index("toaster")
    adv = attack(mobilenet, picture, 2 / 255, toaster)
    with torch.no_grad():
        assert int(mobilenet(adv)[LOGITS].argmax()) == toaster


@pytest.mark.slow
def test_fooling_stops_at_the_confidence(mobilenet: ModelView) -> None:
    robin = mobilenet.categories.index("robin")
    bar, frames = io.StringIO(), Snapshots(every=50)
    callbacks = [Progress(stream=bar), frames]
    picture, taken = fool(mobilenet, robin, (96, 96), 0.9, 200, 0.05, torch.Generator().manual_seed(0), callbacks)
    with torch.no_grad():
        assert float(mobilenet(picture)[LOGITS].softmax(-1)[0, robin]) >= 0.85  # after 8-bit rounding
    assert 0 < taken < 50
    assert bar.getvalue().splitlines()[-1].split("]")[1].startswith(f" {taken}/200")  # where it stopped is shown
    assert len(frames.frames) == 2  # step 0, and the picture it stopped at
    assert np.array_equal(np.asarray(frames.frames[-1]), np.asarray(to_pil(picture[0])))


@pytest.mark.slow
def test_adversarial_recipe_writes_the_triptych_and_the_numbers(tmp_path: Path) -> None:
    cfg = compose(["recipe=adversarial", "device=cpu", "size=96"])
    run_recipe(cfg, tmp_path, "adversarial")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["success"] is True and metrics["adversarial"]["class"] == "toaster"
    assert metrics["linf_255"] <= 2.0 and metrics["clean"]["class"] != "toaster"
    with Image.open(tmp_path / "adversarial.png") as img:
        assert img.size == (96, 64)
    saved = load_image(tmp_path / "adversarial.png")
    original = resize_to(load_image("chelsea"), (64, 96))
    assert (saved - (original * 255).round() / 255).abs().max() <= 2 / 255 + 1e-6


@pytest.mark.slow
def test_a_stopped_fooling_run_writes_its_picture_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.callbacks
    from engine.results import Interrupted

    counted = engine.callbacks.Progress.on_step

    def stop(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        counted(self, step, loss, image_fn)
        if step == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, part way

    monkeypatch.setattr(engine.callbacks.Progress, "on_step", stop)
    with pytest.raises(Interrupted, match=r"interrupted after 3 steps; the picture so far and metrics\.json are in"):
        run_recipe(compose(["recipe=fooling", "size=48", "steps=50", "device=cpu"]), tmp_path, "fooling")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["steps"] == 3 and (tmp_path / "image.png").is_file()


def test_a_fooling_run_short_of_its_confidence_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two steps cannot reach 0.999: the picture is written, metrics.json says it fell short, and so does stderr."""
    run_recipe(compose(["recipe=fooling", "size=48", "steps=2", "confidence=0.999", "device=cpu"]), tmp_path, "fooling")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["reached"] is False and (tmp_path / "image.png").is_file()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("dreamloom: ") and "after 2 steps, short of confidence=0.999; raise steps=" in line, line
