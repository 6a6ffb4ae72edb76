"""The code on docs/python.md runs as a reader pastes it: every block in turn, in one namespace, made small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import engine.api
from engine.configs import compose
from tests.helpers import CAPS, reads

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
SMALLER = [
    ('load_model("vit_b_16", "DEFAULT")', 'load_model("vit_b_16", "none")'),  # no ViT weights can be fetched here
    ('"scorecam")', '"gradcam")'),  # Score-CAM's 768 passes are the method's own test's to pay
    ("steps=64,", "steps=4,"),
    ("steps=128,", "steps=2,"),
    ("steps=150)", "steps=2)"),
]
"""Each ``(old, new)`` must be on the page as written: the blocks run with the new text, in seconds."""

pytestmark = pytest.mark.slow


def _blocks() -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE, re.S | re.M)
    code = "\n# --- next block ---\n".join(blocks)
    for old, new in SMALLER:
        assert code.count(old) == 1, f"docs/python.md no longer has {old!r} once; update SMALLER"
        code = code.replace(old, new)
    return code.split("\n# --- next block ---\n")


def test_every_block_of_the_python_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipes' functions run with the page's keys (made small with :data:`CAPS` where the recipe reads them),
    and the parts one by one make pictures of the shapes the page says."""
    monkeypatch.chdir(tmp_path)
    made: list[str] = []

    def small(args: list[str]) -> object:
        cfg = compose(args)
        made.append(str(cfg.name))
        return compose([*args, *(f"{k}={v}" for k, v in CAPS.items() if k in cfg and reads(cfg, k))])

    monkeypatch.setattr(engine.api, "compose", small)
    blocks = _blocks()
    assert len(blocks) == 4, "docs/python.md has another number of code blocks; check what this test runs"
    space: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/python.md", "exec"), space)  # the project's own page, as a reader pastes it
    assert list(dict.fromkeys(made)) == [
        "deepdream",
        "style",
        "gradcam",
        "adversarial",
        "dream_zoom",
        "embedding",
        "class",
        "interpolate",
    ]
    assert (tmp_path / "runs" / "hopper" / "image.png").is_file()  # out= names the folder
    assert space["dream"].picture.shape[:2] == (1, 3)  # type: ignore[attr-defined]
    assert space["heat"].shape == space["grads"].shape == (224, 224)  # type: ignore[attr-defined]
    deletion = space["deletion"]
    assert isinstance(deletion, torch.Tensor) and deletion.dim() == 1 and ((deletion >= 0) & (deletion <= 1)).all()
    assert (tmp_path / "flamingo.png").is_file()
    assert space["picture"].shape == (1, 3, 512, 437)  # type: ignore[attr-defined]
