"""A Ctrl-C or SIGTERM that comes while the results are being written waits until they are whole."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

import engine.results
from engine.cli import main
from engine.loop import STOP


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_saving_lets_the_results_finish(
    sig: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = engine.results.save_metrics

    def pressed_while_saving(folder: Path, metrics: dict[str, object]) -> engine.results.RunResult:
        signal.raise_signal(sig)  # arrives between the picture and the metrics, in this (the main) thread
        return real(folder, metrics)

    monkeypatch.setattr(engine.results, "save_metrics", pressed_while_saving)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # as at a terminal, even when the tests run in the background
    try:
        main(["recipe=channel", "steps=2", "size=32", "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    err = capsys.readouterr().err
    assert "saving the results first" in err and "wrote" in err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2
    assert (tmp_path / "run" / "image.png").is_file()
    assert not STOP.is_set()  # the next run in this process is not stopped by it
