"""Layer listings: block outputs, receptive fields checked by hand, and no weights needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.errors import UserError
from engine.layers import layer_rows, receptive_field
from engine.models import load_model
from tests.helpers import run


@pytest.fixture(scope="module")
def resnet18():  # type: ignore[no-untyped-def]
    return load_model("resnet18", None, fold=False)


def test_receptive_fields_of_a_residual_network_by_hand(resnet18) -> None:  # type: ignore[no-untyped-def]
    """conv1 7x7/2 -> 7, maxpool 3x3/2 -> 11 (jump 4); each 3x3 at jump j adds 2j. layer2.0's 1x1/2 projection
    shortcut runs beside the main path and must not double the jump."""
    assert receptive_field(resnet18, "layer1.0")[:2] == (27, 4)
    assert receptive_field(resnet18, "layer2.0")[:2] == (51 + 16, 8)  # 3x3/2 at jump 4 (+8), then 3x3 at jump 8
    assert receptive_field(resnet18, "layer4.1")[:2] == (435, 32)


def test_shortcuts_named_proj_run_beside_the_main_path() -> None:
    """RegNet's and MaxViT's projection shortcuts are called ``proj`` and come before the main path: each stage halves
    the grid once, so the jump doubles once per stage (RegNet: stem /2, then four stages: 32 at the last)."""
    regnet = load_model("regnet_y_400mf", None, fold=False)
    jumps = [receptive_field(regnet, f"trunk_output.block{k}")[1] for k in range(1, 5)]
    assert jumps == [4, 8, 16, 32]
    maxvit = load_model("maxvit_t", None, fold=False)
    assert receptive_field(maxvit, "blocks.3")[1] == 32


def test_inception_branches_run_side_by_side() -> None:
    """GoogLeNet's inception3a: after maxpool2 (27 px, jump 8) its widest branch is 1x1 then 3x3 (+16): 43, not the
    sum over its four branches."""
    view = load_model("googlenet", None, fold=False)
    assert receptive_field(view, "inception3a")[:2] == (43, 8)


def test_a_layer_that_never_runs_is_named() -> None:
    """GoogLeNet's auxiliary heads run in training only: asking for one is one line, not a missing key."""
    view = load_model("googlenet", None, fold=False)
    with pytest.raises(UserError, match=r"layer aux1\.conv does not run when googlenet classifies a picture"):
        view.check_maps(["aux1.conv"], "a map", (96, 96))


def test_blocks_are_the_main_path_modules(resnet18) -> None:  # type: ignore[no-untyped-def]
    rows = layer_rows(resnet18, (224, 224))
    blocks = [r.name for r in rows if r.block]
    assert blocks == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    vgg = layer_rows(load_model("vgg11", None, fold=False), (64, 64))
    assert [r.kind.split()[0] for r in vgg if r.block] == ["ReLU"] * 8  # a flat network: its activations


@pytest.mark.slow
def test_listing_reads_no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recipe=layers builds only the architecture: named weights that would need a download are never fetched."""

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("recipe=layers tried to fetch weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    metrics = run(tmp_path, "layers", "model=resnet50", "model.weights=IMAGENET1K_V2")
    assert metrics["blocks"][0] == "layer1.0" and len(metrics["blocks"]) == 16


def test_a_module_that_runs_twice_says_so(resnet18) -> None:  # type: ignore[no-untyped-def]
    rows = {r.name: r for r in layer_rows(resnet18, (64, 64))}
    assert rows["layer1.0.relu"].kind == "ReLU (runs 2x)" and rows["layer1.0.relu"].field is None
    assert rows["layer1.0.conv2"].field == 27 and "runs" not in rows["layer1.0.conv2"].kind
    # read (and edited) at its first run, whether the pass goes on to the logits or stops there
    x, name = torch.rand(1, 3, 64, 64), "layer4.1.relu"
    seen: list[tuple[int, ...]] = []

    def edit(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return t

    alone, with_logits = resnet18(x, [name])[name], resnet18(x, [name, "logits"], {name: edit})[name]
    assert torch.equal(alone, with_logits) and len(seen) == 1
