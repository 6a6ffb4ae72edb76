"""How soon a class picture is good, and what ``stop_at=`` saves: for 10 classes on MobileNetV2 at 224 px.

"Good" is the judge of ``docs/quality.py``'s crops: on 64 random crops-and-shifts (seed 0, never the ones the run
tested), the model gives the class at least 0.9 on at least 80 % of them. For each class it prints:
  - full: today's run of 256 steps: its seconds and the judge's share of crops at p >= 0.9;
  - first: the first step (of every 8) at which the judge holds during that same run, and the seconds to it;
  - stop: a run with ``stop_at=0.9``: its steps, seconds (its own tests included) and the judge's share.

    .venv/bin/python docs/class_speed.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine import api
from engine.callbacks import Goal
from engine.configs import compose
from engine.measures import random_views
from engine.models import LOGITS
from engine.runner import build_objective, load_view, optimize_octaves
from recipes.visualize import STOP_SHARE, STOP_VIEWS

CLASSES = [1, 31, 107, 130, 323, 437, 949, 963, 980, 985]
OUT = Path("outputs/class_speed")


def judge_share(view, picture: torch.Tensor, target: int) -> float:  # type: ignore[no-untyped-def]
    """The share of 64 random crops (seed 0) on which the model gives ``target`` at least 0.9."""
    views = random_views(picture[:1], 64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = view(views, [LOGITS])[LOGITS].softmax(-1)[:, target]
    return float((p >= 0.9).float().mean())


def first_good(target: int) -> tuple[int, float, float, float]:
    """Today's run, judged every 8 steps: (first good step or 0, seconds to it, seconds in all, final share); the
    judge's own time is left out of the seconds."""
    cfg = compose(["recipe=class", f"target={target}", "device=cpu", "snapshot_every=0", "checkpoint_every=0"])
    view = load_view(cfg)
    objective = build_objective(cfg, view)
    state = {"calls": 0, "judging": 0.0, "step": 0, "seconds": 0.0}
    t0 = time.perf_counter()

    def reached(picture: torch.Tensor) -> bool:
        start = time.perf_counter()
        state["calls"] += 1
        if not state["step"] and judge_share(view, picture, target) >= 0.8:
            state["step"], state["seconds"] = 8 * state["calls"], start - t0 - state["judging"]
        state["judging"] += time.perf_counter() - start
        return False  # keep going: the whole run is measured too

    out = optimize_octaves(cfg, view, [(224, 224)], lambda hw: objective, goal=Goal(reached))
    total = time.perf_counter() - t0 - state["judging"]
    return int(state["step"]), float(state["seconds"]), total, judge_share(view, out.picture, target)


def main() -> None:
    print(f"{'class':>5} {'full s':>6} {'share':>5} {'first':>5} {'s':>5} {'stop':>4} {'s':>5} {'share':>5}")
    rows = []
    for target in CLASSES:
        first_step, first_s, full_s, full_share = first_good(target)
        folder = OUT / f"stop_{target}_{STOP_VIEWS}_{STOP_SHARE}"
        result = api.run("class", out=folder, target=target, stop_at=0.9) if not folder.exists() else None
        metrics = result.metrics if result else api.Result(folder, {}).metrics
        view = load_view(compose(["recipe=class", "device=cpu"]))
        share = judge_share(view, api.Result(folder, {}).picture, target)
        steps, seconds = metrics.get("steps", 0), metrics.get("seconds", 0.0)
        rows.append((full_s, full_share, first_step, first_s, steps, seconds, share))
        print(
            f"{target:5d} {full_s:6.1f} {full_share:5.2f} {first_step:5d} {first_s:5.1f} {steps:4d} {seconds:5.1f} "
            f"{share:5.2f}",
            flush=True,
        )
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(7)]
    print(
        f"{'mean':>5} {mean[0]:6.1f} {mean[1]:5.2f} {mean[2]:5.0f} {mean[3]:5.1f} {mean[4]:4.0f} {mean[5]:5.1f} "
        f"{mean[6]:5.2f}"
    )
    good = sum(r[6] >= 0.8 for r in rows), sum(r[1] >= 0.8 for r in rows)
    print(
        f"judged good: stop_at=0.9 {good[0]}/{len(rows)}, full runs {good[1]}/{len(rows)}; "
        f"seconds {mean[0] / max(mean[5], 1e-9):.1f}x fewer"
    )


if __name__ == "__main__":
    main()
