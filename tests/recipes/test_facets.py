"""Multi-faceted visualization: the clustering, the anchor objective, and a run whose facets stay with their
clusters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from engine.errors import UserError
from engine.export import read_png_config
from engine.images import load_image
from engine.samples import make_samples
from recipes.facets import kmeans
from recipes.folders import load_folder
from tests.helpers import run


def test_kmeans_finds_separate_groups_and_keeps_every_group() -> None:
    g = torch.Generator().manual_seed(0)
    blobs = [torch.randn(6, 2, generator=g) * 0.1 + torch.tensor(c) for c in ([0.0, 0.0], [5.0, 0.0], [0.0, 5.0])]
    labels = kmeans(torch.cat(blobs), 3, torch.Generator().manual_seed(1))
    groups = labels.view(3, 6)
    assert all(len(set(row.tolist())) == 1 for row in groups)  # each blob one group
    assert len(set(groups[:, 0].tolist())) == 3  # three blobs, three groups
    same = kmeans(torch.zeros(5, 2), 3, torch.Generator().manual_seed(0))  # identical points: no group left empty
    assert sorted(set(same.tolist())) == [0, 1, 2]


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crops")
    make_samples(folder, per_picture=3, side=96)
    return folder


@pytest.mark.slow
def test_facets_start_from_the_means_of_clusters_of_pictures_that_show_the_class(tmp_path: Path, crops: Path) -> None:
    metrics = run(tmp_path, "facets", "target=tabby", f"folder={crops}", "k=2", "size=96", "steps=3", "lr=0.01")
    clusters = metrics["clusters"]
    assert len(clusters) == 2 and not set(clusters[0]) & set(clusters[1])
    assert all(name.startswith("chelsea") for c in clusters for name in c)  # only the cat's crops show a tabby
    assert len(metrics["crop_probability"]) == 2 and 0 < metrics["cluster_similarity"] <= 1
    assert "1600 * (diversity(features.10))" in metrics["objective"]  # a class's defaults: 1600 and 30
    assert "30 * (log_prob(tabby))" in metrics["objective"]
    stored = OmegaConf.create(read_png_config(tmp_path / "image.png"))
    assert (stored.diversity, stored.log_prob) == (1600.0, 30.0)  # stored as used: a rerun is the same picture
    names, pictures, _ = load_folder(crops, 96)
    means = [pictures[[names.index(n) for n in c]].mean(0) for c in clusters]
    for j in range(2):  # after three small steps each facet is still nearest the mean picture it started from
        facet = load_image(tmp_path / "images" / f"{j:03d}.png")[0]
        assert (facet - means[j]).norm() < (facet - means[1 - j]).norm()
    sheet = Image.open(tmp_path / "image.png")
    assert sheet.width > 2 * 96 and sheet.height > 2 * 96  # two rows: each facet, then its cluster's nearest pictures


@pytest.mark.slow
def test_a_channels_facets_cluster_the_pictures_it_fires_on(tmp_path: Path, crops: Path) -> None:
    keys = ("layer=features.10", "channel=7", "k=3", "pool=9", "size=64", "steps=2")
    metrics = run(tmp_path, "facets", f"folder={crops}", *keys)
    assert sum(len(c) for c in metrics["clusters"]) == 9
    assert "crop_probability" not in metrics and metrics["aim"] == "features.10:7"
    assert "diversity" not in metrics["objective"] and "log_prob" not in metrics["objective"]  # a channel's default
    assert len(list((tmp_path / "images").glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "needs an aim: target=CLASS"),
        (["target=tabby", "k=4", "pool=2"], "pool=2 is smaller than k=4"),
        (["target=tabby", "k=4"], "show tabby among their top 5 classes; 4 facets need 4: use k="),
        (["target=tabby", "batch=3"], "batch=3 would be ignored; set k= instead"),
        (["target=flamingo", "k=1"], "none of the .* pictures in folder .* shows flamingo among its top 5 classes"),
        (["target=tabby", "size=[32,48]"], r"size=\[32,48\]: this recipe reads square pictures; give one side"),
        (["target=tabby", "k=0"], "k=0 is not valid"),
        (["target=tabby", "diversity_layer=features.99"], "no layer 'features.99'"),
        (["channel=3"], "channel= needs its layer"),
        (["layer=features.10", "channel=3", "stop_at=0.9"], "stop_at= is about a class's probability"),
        (["layer=features.10", "channel=3", "log_prob=5"], "log_prob= is about a class's probability"),
        (["target=tabby", "log_prob=-1"], "log_prob=-1 is not valid"),
        (["layer=features.10", "channel=999"], "channel 999 is out of range for layer features.10"),
    ],
)
def test_facets_answer_wrong_keys_in_one_line(tmp_path: Path, crops: Path, keys: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        run(tmp_path, "facets", f"folder={crops}", "size=32", "steps=1", *keys)
