"""Measure the clip recipes on the sample clip and the flow on clips of known motion (the numbers in docs/video.md).

1. Flow end-point error (pixels) of DIS and Farnebäck on synthetic clips made by panning, zooming and turning a
   sample photo, whose true flow is known, and the milliseconds each flow takes.
2. ``style_video`` and ``dream_video`` on the sample clip (16 frames panning across chelsea), each run through the
   command line with the flow off (``flow=none``, each frame starts from the result before it unmoved) and on:
   flicker along the flow, content drift, seconds per later frame.
3. ``docs/images/style_video_flow.png``: frames 0, 5, 10 and 15 of style_video without and with the flow.

Run from the repository root (about 4 minutes on two cores)::

    .venv/bin/python docs/video_quality.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.flow import FLOW_METHODS, endpoint_error, optical_flow, turn_flow  # noqa: E402
from engine.images import load_image, resize_to  # noqa: E402
from recipes.motion import zoom_and_turn  # noqa: E402

RUNS = ROOT / "outputs" / "video_quality"
H, W = 192, 256


def synthetic(kind: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Two frames and the true flow between them: a 3-px pan, a 5 % zoom, a 3° turn, or a zoom and turn."""
    photo = resize_to(load_image("chelsea"), (240, 360))
    if kind == "pan 3 px":
        a, b = photo[..., 20 : 20 + H, 20 : 20 + W], photo[..., 20 : 20 + H, 23 : 23 + W]
        truth = np.zeros((H, W, 2), np.float32)
        truth[..., 0] = -3
        return a, b, truth
    zoom, degrees = {"zoom 5 %": (1.05, 0.0), "turn 3°": (1.0, 3.0), "zoom 3 % and turn 2°": (1.03, 2.0)}[kind]
    a = photo[..., 20 : 20 + H, 40 : 40 + W]
    return a, zoom_and_turn(a, zoom, degrees, (0.0, 0.0)), turn_flow(H, W, zoom, degrees)


def flow_table() -> None:
    print(f"| clip ({W}×{H}) | " + " | ".join(f"{m} EPE (px)" for m in FLOW_METHODS) + " |")
    print("| --- |" + " --- |" * len(FLOW_METHODS))
    times: dict[str, list[float]] = {m: [] for m in FLOW_METHODS}
    for kind in ("pan 3 px", "zoom 5 %", "turn 3°", "zoom 3 % and turn 2°"):
        a, b, truth = synthetic(kind)
        errors = []
        for method in FLOW_METHODS:
            t0 = time.perf_counter()
            flow = optical_flow(a, b, method)
            times[method].append(time.perf_counter() - t0)
            errors.append(endpoint_error(flow, truth, margin=16))
        print(
            f"| {kind} (largest move {np.abs(truth).max():.1f} px) | " + " | ".join(f"{e:.3f}" for e in errors) + " |"
        )
    print("\nmilliseconds per flow: " + ", ".join(f"{m} {1000 * np.median(t):.1f}" for m, t in times.items()))


def run(name: str, keys: list[str]) -> dict:  # type: ignore[type-arg]
    folder = RUNS / name
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "engine", *keys, f"hydra.run.dir={folder}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return json.loads((folder / "metrics.json").read_text())


def clip_table() -> None:
    cases = {
        "style_video as it was (flow=none lr_next=0.05: each frame from the one before, unmoved)": [
            "recipe=style_video",
            "flow=none",
            "lr_next=0.05",
        ],
        "style_video flow=none": ["recipe=style_video", "flow=none"],
        "style_video flow=farneback": ["recipe=style_video", "flow=farneback"],
        "style_video (flow=dis, the default)": ["recipe=style_video"],
        "dream_video blend=0 (each frame dreamed afresh)": ["recipe=dream_video", "blend=0"],
        "dream_video flow=none": ["recipe=dream_video", "flow=none"],
        "dream_video (flow=dis, blend=0.5, the default)": ["recipe=dream_video"],
    }
    print("\n| run on the sample clip | flicker along the flow | content drift | seconds per frame (mean of 16) |")
    print("| --- | --- | --- | --- |")
    for i, (label, keys) in enumerate(cases.items()):
        m = run(f"case{i}", keys)
        flicker = m["flicker"]
        print(
            f"| {label} | {flicker['output']:.2f} (input {flicker['input']:.2f}) | {m['content_drift']:.2f}× "
            f"| {m['seconds_per_frame']:.2f} |",
            flush=True,
        )


def sheet() -> None:
    """Frames 0, 5, 10, 15 of style_video unmoved (top) and along the flow (bottom), then the input frames."""
    rows = [RUNS / "case0" / "frames", RUNS / "case3" / "frames", RUNS / "case3" / "input"]
    pictures = [[Image.open(row / f"{k:04d}.png").convert("RGB") for k in (0, 5, 10, 15)] for row in rows]
    w, h = pictures[0][0].size
    out = Image.new("RGB", (4 * w, 3 * h))
    for r, row in enumerate(pictures):
        for c, picture in enumerate(row):
            out.paste(picture, (c * w, r * h))
    out.save(ROOT / "docs" / "images" / "style_video_flow.png", optimize=True)


if __name__ == "__main__":
    flow_table()
    clip_table()
    sheet()
