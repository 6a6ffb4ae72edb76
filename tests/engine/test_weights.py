"""Reading weights: an offline run says one line of its own, a download still shows what it fetches."""

from __future__ import annotations

import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import weights
from engine.errors import UserError


def _fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, online: bool) -> None:
    """torchvision's download as torch.hub does it: the "Downloading" line on standard output, then a progress bar
    on standard error once the server answers."""

    def get_model(name: str, weights: object = None, progress: bool = True) -> nn.Module:
        sys.stdout.write('Downloading: "https://example.org/resnet18.pth" to cache\n')
        if not online:
            raise urllib.error.URLError("Name or service not known")
        sys.stderr.write("100%|##########| 44.7M/44.7M\n")
        return nn.Linear(1, 1)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(weights.torchvision.models, "get_model", get_model)


def test_offline_prints_one_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_hub(monkeypatch, tmp_path, online=False)
    with pytest.raises(UserError, match=r"could not get weights .* model\.weights=none"):
        weights.build_model("resnet18", "DEFAULT", None)
    seen = capsys.readouterr()
    assert seen.out == "" and seen.err == ""  # torch's "Downloading" line was held, then dropped


def test_a_download_still_says_what_it_fetches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_hub(monkeypatch, tmp_path, online=True)
    model, categories = weights.build_model("resnet18", "DEFAULT", None)
    seen = capsys.readouterr()
    assert isinstance(model, nn.Linear) and len(categories) == 1000
    assert seen.out.startswith("Downloading:") and "44.7M" in seen.err
    print("after")
    assert capsys.readouterr().out == "after\n"  # the streams are given back
