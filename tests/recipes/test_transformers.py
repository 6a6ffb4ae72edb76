"""Vision transformers in the recipes that read a layer: ViT-B/16 and Swin-T with random weights (none can be
downloaded here), at picture sizes the ViT does not take, so the resize on the way in is exercised too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run

VIT_BLOCK = "layer=encoder.layers.encoder_layer_5"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "recipe", "args"),
    [
        ("vit_b_16", "channel", [VIT_BLOCK, "channel=7", "steps=2"]),
        ("vit_b_16", "neuron", [VIT_BLOCK, "channel=7", "steps=2"]),
        ("vit_b_16", "class", ["steps=2"]),
        ("vit_b_16", "deepdream", [VIT_BLOCK, "steps=2", "octaves=2"]),
        ("vit_b_16", "style", ["steps=2"]),
        ("vit_b_16", "activations", [VIT_BLOCK]),
        ("vit_b_16", "saliency", ["method=integrated", "steps=4"]),
        ("vit_b_16", "gradcam", ["method=gradcam++"]),
        ("swin_t", "channel", ["layer=features.5", "channel=3", "steps=2"]),
        ("swin_t", "gradcam", ["method=layercam"]),
        ("swin_t", "style", ["steps=2"]),
    ],
)
def test_transformers_run_in_every_recipe_that_reads_a_layer(
    tmp_path: Path, model: str, recipe: str, args: list[str]
) -> None:
    metrics = run(tmp_path, recipe, f"model={model}", "model.weights=none", "size=[72,96]", *args)
    assert metrics["model"] == model
    assert (tmp_path / "image.png").is_file()
    if recipe == "activations":
        assert np.load(tmp_path / "activations.npy").shape == (768, 14, 14)  # the patch grid at ViT's 224 px
    if recipe in ("gradcam", "saliency"):
        maps = np.load(tmp_path / "maps.npy")
        assert maps.shape[-2:] == (72, 96) and np.isfinite(maps).all() and np.abs(maps).max() > 0


@pytest.mark.slow
def test_layers_lists_a_vit_s_blocks(tmp_path: Path) -> None:
    run(tmp_path, "layers", "model=vit_b_16")
    text = (tmp_path / "layers.txt").read_text()
    assert "* encoder.layers.encoder_layer_11" in text and "(768, 14, 14)" in text


@pytest.mark.slow
def test_max_patches_refuses_a_transformer_in_one_line(tmp_path: Path) -> None:
    from engine.errors import UserError

    with pytest.raises(UserError, match="no receptive field to cut a patch by") as caught:
        run(tmp_path, "max_patches", "model=swin_t", "model.weights=none", "layer=features.7", "size=64")
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_block_the_head_never_reads_is_refused_by_every_method_that_weighs_the_class(tmp_path: Path) -> None:
    """The ViT's head reads only the class token, so the last block's patch tokens have no bearing on the score:
    Score-CAM and Ablation-CAM would draw rounding noise there as Grad-CAM would divide by zero. Eigen-CAM, which
    ignores the class, still maps the block."""
    from engine.errors import UserError

    last = "layer=encoder.layers.encoder_layer_11"
    for method in ("gradcam", "scorecam", "ablationcam"):
        with pytest.raises(UserError, match="does not reach the score of class"):
            run(
                tmp_path / method,
                "gradcam",
                "model=vit_b_16",
                "model.weights=none",
                "size=64",
                last,
                f"method={method}",
            )
    run(tmp_path / "eigen", "gradcam", "model=vit_b_16", "model.weights=none", "size=64", last, "method=eigencam")
    assert np.load(tmp_path / "eigen" / "maps.npy").max() > 0
