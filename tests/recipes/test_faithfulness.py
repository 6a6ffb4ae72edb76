"""Faithfulness scores: the order a map gives, deletion and insertion curves, ROAD's imputation, and the recipe's
table, CSV and plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from engine.errors import UserError
from engine.images import SAMPLES
from engine.models import ModelView
from recipes.faithfulness import curve, impute, random_map, ranking, road
from tests.helpers import run


class LeftRed(nn.Module):
    """Class 0's logit is ten times the mean red of the picture's left half minus 5; class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = x[:, 0, :, : x.shape[-1] // 2].mean((1, 2)) * 10 - 5
        return torch.stack([left, torch.zeros_like(left)], dim=1)


def _view() -> ModelView:
    return ModelView(LeftRed(), ["red", "none"], name="toy", mean=(0.0,) * 3, std=(1.0,) * 3)


def test_ranking_reads_the_map_from_the_top_and_breaks_ties_by_the_seed() -> None:
    heat = torch.tensor([[0.1, 0.9, 0.5], [0.5, 0.0, 0.5]])
    place = ranking(heat, torch.Generator().manual_seed(0))
    assert sorted(place.flatten().tolist()) == list(range(6))
    assert place[0, 1] == 0 and place[1, 1] == 5 and place[0, 0] == 4
    assert {int(place[0, 2]), int(place[1, 0]), int(place[1, 2])} == {1, 2, 3}
    orders = {tuple(ranking(heat, torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(12)}
    assert len(orders) > 1  # the three equal values come in different orders under different seeds


def test_curves_start_and_end_where_they_should_and_follow_the_map() -> None:
    view = _view()
    x = torch.ones(1, 3, 8, 8)
    left_first = torch.zeros(8, 8)
    left_first[:, :4] = 1
    black = torch.zeros_like(x)
    good = curve(view, x, black, ranking(left_first, torch.Generator().manual_seed(0)), 0, points=4)
    bad = curve(view, x, black, ranking(1 - left_first, torch.Generator().manual_seed(0)), 0, points=4)
    full, none = torch.sigmoid(torch.tensor(5.0)), torch.sigmoid(torch.tensor(-5.0))
    assert good[0] == pytest.approx(float(full)) and good[-1] == pytest.approx(float(none))
    assert good[2] == pytest.approx(float(none))  # the left half went first: the class is gone at half
    assert bad[2] == pytest.approx(float(full))  # the right half went first: nothing changed yet
    assert float(good.mean()) < float(bad.mean())


def test_imputation_rebuilds_a_linear_ramp_and_adds_the_asked_noise() -> None:
    ys, xs = torch.meshgrid(torch.linspace(0.1, 0.9, 12), torch.linspace(0.2, 0.6, 16), indexing="ij")
    ramp = torch.stack([ys, xs, (ys + xs) / 2]).unsqueeze(0)
    removed = torch.zeros(12, 16, dtype=torch.bool)
    removed[2:10, 3:13] = True  # inside: the eight neighbours' weighted mean of a linear ramp is the ramp
    removed[5, 5:8] = False
    filled = impute(ramp, removed, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(filled, ramp, atol=1e-5)
    noisy = impute(ramp, removed, 0.05, torch.Generator().manual_seed(0))
    spread = (noisy - ramp)[:, :, removed].std()
    assert float(spread) == pytest.approx(0.05, rel=0.15)
    assert torch.equal(noisy[:, :, ~removed], ramp[:, :, ~removed])  # kept pixels are not touched
    with pytest.raises(UserError, match="every pixel removed"):
        impute(ramp, torch.ones(12, 16, dtype=torch.bool), 0.0, torch.Generator())


def test_road_removes_the_most_or_the_least_relevant_first() -> None:
    view = _view()
    x = torch.zeros(1, 3, 8, 8)
    x[:, 0, :, :4] = 1  # the red that decides is on the left
    left_first = torch.zeros(8, 8)
    left_first[:, :4] = 1
    place = ranking(left_first, torch.Generator().manual_seed(0))
    most = road(view, x, place, 0, [0.5], True, torch.Generator().manual_seed(0), noise=0.0)
    least = road(view, x, place, 0, [0.5], False, torch.Generator().manual_seed(0), noise=0.0)
    assert float(most[0]) < 0.5 < float(least[0])  # left filled from the black right: the red fades


def test_random_maps_are_smooth_at_the_layer_grid() -> None:
    heat = random_map((64, 64), (4, 4), torch.Generator().manual_seed(0))
    assert heat.shape == (64, 64)
    assert float((heat[:, 1:] - heat[:, :-1]).abs().max()) < 0.1  # no pixel noise: it changes over a grid cell
    assert float(heat.std()) > 0.1  # and it does change: a flat map would rank the pixels by chance alone
    other = random_map((64, 64), (4, 4), torch.Generator().manual_seed(1))
    assert float((heat - other).abs().mean()) > 0.05  # each draw its own


@pytest.mark.slow
def test_faithfulness_writes_its_table_csv_and_plot(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    cat = Image.fromarray(SAMPLES["chelsea"]())
    odd = 'b, "the cat".png'  # a comma and quotes: the CSV still reads back
    for name, box in (("a.png", (0, 0, 120, 120)), (odd, (100, 40, 220, 160))):
        cat.crop(box).save(pictures / name)
    (pictures / "notes.txt").write_text("not a picture")
    args = [f"input={pictures}", "methods=[gradcam,integrated]", "size=64", "points=4", "fractions=[0.25,0.5]"]
    metrics = run(tmp_path / "run", "faithfulness", *args, "random_maps=2", "steps=4")
    table = metrics["methods"]
    assert list(table) == ["random", "gradcam", "integrated"] and metrics["pictures"] == 2
    for method in ("gradcam", "integrated"):
        assert set(table[method]) == {
            "deletion",
            "insertion",
            "road_morf",
            "road_lerf",
            "deletion_below_random",
            "seconds",
        }
        assert table[method]["deletion_below_random"] in ("0/2", "1/2", "2/2")
    with open(tmp_path / "run" / "faithfulness.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["random", "gradcam", "integrated"] * 2
    assert {r["picture"] for r in rows} == {"a.png", odd}
    gradcam = [float(r["deletion"]) for r in rows if r["method"] == "gradcam"]
    assert table["gradcam"]["deletion"] == pytest.approx(sum(gradcam) / 2, abs=1e-4)
    with Image.open(tmp_path / "run" / "image.png") as plot:
        assert plot.width > 600 and plot.height > 400
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["layer"] == "features.18"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["methods=[gradcam,sobel]"], "methods=['gradcam', 'sobel'] names sobel"),
        (["methods=[]"], "names no method"),
        (["fractions=[0.5,1.0]"], "fractions=[0.5, 1.0] is not valid"),
        (["input=/no/such/picture.png"], "input"),
        (["target=top3"], "faithfulness scores one class per picture"),
        (["fractions=[]"], "fractions=[] is not valid"),
        (["points=1"], "points=1 is not valid; a curve takes from 2 points"),
        (["noise=100"], "noise=100 is not valid"),
        (["size=16"], "size=16 is too small to score"),
        (["methods=[gradcam,integrated]", "baseline=pink"], "baseline=pink is not known"),
    ],
)
def test_faithfulness_refuses_bad_keys_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    with pytest.raises(UserError, match=None) as caught:
        run(tmp_path, "faithfulness", "input=chelsea", "size=64", *args)
    assert says in str(caught.value) and "\n" not in str(caught.value)
