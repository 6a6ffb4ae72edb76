"""Transformers read as maps: ViT tokens and Swin's channels-last outputs become (C, H, W) maps whose gradients and
edits are the tokens' own, and pictures of any size reach a ViT at the one size it takes."""

from __future__ import annotations

import pytest
import torch

from engine.layers import layer_rows
from engine.models import LOGITS, ModelView, load_model


@pytest.fixture(scope="module")
def vit() -> ModelView:
    torch.manual_seed(0)
    return load_model("vit_b_16", "none")


@pytest.fixture(scope="module")
def swin() -> ModelView:
    torch.manual_seed(0)
    return load_model("swin_t", "none")


BLOCK = "encoder.layers.encoder_layer_3"


def _raw(view: ModelView, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output as the model makes it, and the logits, with a hook of the test's own."""
    seen: list[torch.Tensor] = []
    handle = view.module(layer).register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        logits = view.model(view._normalized(x))
    finally:
        handle.remove()
    return seen[0], logits


def test_vit_tokens_are_a_map_without_the_class_token(vit: ModelView) -> None:
    x = torch.rand(1, 3, 160, 200, generator=torch.Generator().manual_seed(0))  # resized to 224 x 224 on the way in
    out = vit(x, [BLOCK, "conv_proj", LOGITS])
    assert out[BLOCK].shape == (1, 768, 14, 14) and out["conv_proj"].shape == (1, 768, 14, 14)
    tokens, logits = _raw(vit, BLOCK, x)
    assert tokens.shape == (1, 197, 768)
    assert torch.equal(out[BLOCK][0, :, 2, 5], tokens[0, 1 + 2 * 14 + 5])  # row 2, column 5: token 1 + 2*14 + 5
    assert torch.allclose(out[LOGITS], logits)


def test_a_gradient_at_the_map_is_the_tokens_gradient(vit: ModelView) -> None:
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    out = vit(x, [BLOCK, LOGITS])
    (at_map,) = torch.autograd.grad(out[LOGITS][0, 7], out[BLOCK])
    tokens: list[torch.Tensor] = []

    def keep(m: torch.nn.Module, i: object, o: torch.Tensor) -> None:
        o.retain_grad()
        tokens.append(o)

    handle = vit.module(BLOCK).register_forward_hook(keep)
    try:
        vit.model(vit._normalized(x))[0, 7].backward()
    finally:
        handle.remove()
    grad = tokens[0].grad
    assert grad is not None and float(at_map.abs().sum()) > 0
    assert torch.allclose(at_map[0].flatten(1).T, grad[0, 1:], atol=1e-6)


def test_an_edited_map_reaches_the_head_as_edited_tokens(vit: ModelView) -> None:
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))

    def two_copies(a: torch.Tensor) -> torch.Tensor:
        copies = a.expand(2, -1, -1, -1).clone()
        copies[1, 5] = 0
        return copies

    with torch.no_grad():
        edited = vit(x, [LOGITS], edits={BLOCK: two_copies})[LOGITS]
        plain = vit(x, [LOGITS])[LOGITS]

        def zero_channel(m: torch.nn.Module, i: object, o: torch.Tensor) -> torch.Tensor:
            o = o.clone()
            o[:, 1:, 5] = 0  # the patch tokens' channel 5; the class token is left alone
            return o

        handle = vit.module(BLOCK).register_forward_hook(zero_channel)
        try:
            by_hand = vit.model(vit._normalized(x))
        finally:
            handle.remove()
    assert edited.shape == (2, 1000)
    assert torch.allclose(edited[0], plain[0], atol=1e-5) and torch.allclose(edited[1], by_hand[0], atol=1e-5)
    assert not torch.allclose(edited[1], plain[0], atol=1e-5)


def test_swin_maps_are_channels_first_at_any_size(swin: ModelView) -> None:
    x = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(3))
    out = swin(x, ["features.0.0", "features.3", "norm", "permute", LOGITS])
    assert out["features.0.0"].shape == (1, 96, 24, 40)  # the patch convolution is channels-first already
    assert out["features.3"].shape == (1, 192, 12, 20)
    raw, logits = _raw(swin, "features.3", x)
    assert torch.equal(out["features.3"], raw.permute(0, 3, 1, 2))
    assert out["norm"].shape == out["permute"].shape == (1, 768, 3, 5)
    assert torch.allclose(out[LOGITS], logits)


def test_layers_lists_the_transformer_blocks_as_maps(vit: ModelView) -> None:
    rows = {r.name: r for r in layer_rows(vit, (224, 224))}
    blocks = [name for name, r in rows.items() if r.block]
    assert blocks == [*(f"encoder.layers.encoder_layer_{i}" for i in range(12)), "encoder"]  # then the final norm
    assert rows[BLOCK].shape == (768, 14, 14) and rows[BLOCK].field is None
    assert rows["conv_proj"].field == 16


def test_random_weights_give_class_scores_that_depend_on_the_picture(vit: ModelView) -> None:
    # torchvision starts ViT's head at zero; random weights for tests must still answer the picture
    with torch.no_grad():
        a, b = vit(torch.zeros(1, 3, 224, 224))[LOGITS], vit(torch.ones(1, 3, 224, 224))[LOGITS]
    assert float((a - b).abs().max()) > 1e-3
