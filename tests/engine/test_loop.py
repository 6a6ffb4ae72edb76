"""The loop: a few steps lower the loss with every optimizer, weights stay frozen, the head is skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.callbacks import Goal, Progress, Recorder, Snapshots
from engine.images import to_pil
from engine.loop import NormalizedGradient, Tiling, optimize
from engine.models import ModelView
from engine.params import fft, pixel
from objectives import channel, class_logit, deepdream
from regularizers import Compose, Jitter, Pad, l2, total_variation

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    "lbfgs": lambda p: torch.optim.LBFGS(p, lr=0.5, max_iter=1),
    "normalized": lambda p: NormalizedGradient(p, lr=0.05),
}


def _run(tiny: ModelView, objective, make_param, make_opt, steps: int = 12) -> Recorder:  # type: ignore[no-untyped-def]
    params, image = make_param((1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    rec = Recorder()
    optimize(params, image, objective, tiny, Compose(), make_opt(params), steps, [rec])
    return rec


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("make_param", [pixel, fft])
def test_a_few_steps_lower_the_loss(tiny: ModelView, opt: str, make_param) -> None:  # type: ignore[no-untyped-def]
    rec = _run(tiny, channel("features.2", 3), make_param, OPTIMIZERS[opt])
    assert rec.steps == 12
    assert rec.loss_last is not None and rec.loss_first is not None
    assert rec.loss_last < rec.loss_first


@pytest.mark.parametrize(
    "objective", [deepdream("features.4"), class_logit(2, ["a", "b", "c", "d", "e"]), channel("features.0", 1)]
)
def test_objectives_descend_with_penalties_and_transforms(tiny: ModelView, objective) -> None:  # type: ignore[no-untyped-def]
    obj = objective + 0.1 * total_variation()
    params, image = fft((1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    rec = Recorder()
    tf = Compose(Pad(4), Jitter(4), generator=torch.Generator().manual_seed(0))
    optimize(params, image, obj, tiny, tf, torch.optim.Adam(params, lr=0.05), 15, [rec])
    assert rec.loss_last < rec.loss_first  # type: ignore[operator]


def test_weights_get_no_gradient_and_stay_put(tiny: ModelView) -> None:
    before = [p.clone() for p in tiny.parameters()]
    _run(tiny, channel("features.2", 0), pixel, OPTIMIZERS["adam"], steps=3)
    for old, new in zip(before, tiny.parameters(), strict=True):
        assert new.grad is None and torch.equal(old, new)


def test_early_layers_never_run_the_head(tiny: ModelView) -> None:
    called: list[str] = []
    tiny.model.classifier.register_forward_hook(lambda *a: called.append("head"))
    tiny.model.features[4].register_forward_hook(lambda *a: called.append("conv3"))
    acts = tiny(torch.rand(1, 3, 16, 16), ["features.2"])
    assert set(acts) == {"features.2"} and called == []
    tiny(torch.rand(1, 3, 16, 16), ["logits", "features.2"])
    assert called == ["conv3", "head"]


def test_snapshots_collect_frames_every_n_steps(tiny: ModelView) -> None:
    params, image = pixel((1, 3, 20, 20))
    snaps = Snapshots(every=4)
    final = optimize(params, image, channel("features.0", 0), tiny, Compose(), torch.optim.Adam(params), 10, [snaps])
    assert len(snaps.frames) == 4 and snaps.frames[0].size == (20, 20)  # steps 0, 4 and 8, then the last one
    assert np.array_equal(np.asarray(snaps.frames[-1]), np.asarray(to_pil(final[0])))  # the GIF ends on the result


def test_snapshots_show_every_picture_of_a_batch(tiny: ModelView) -> None:
    """Three pictures: two to a row, two rows, 2 px of white round and between them (the GIF of an atlas shows the
    atlas)."""
    params, image = pixel((3, 3, 20, 20))
    snaps = Snapshots(every=4)
    final = optimize(params, image, channel("features.0", 0), tiny, Compose(), torch.optim.Adam(params), 5, [snaps])
    last = np.asarray(snaps.frames[-1])
    assert last.shape == (46, 46, 3) and (last[22:24] == 255).all() and (last[24:, 24:] == 255).all()
    for i, (top, left) in enumerate(((2, 2), (2, 24), (24, 2))):
        assert np.array_equal(last[top : top + 20, left : left + 20], np.asarray(to_pil(final[i])))


def test_snapshots_thin_out_past_their_cap_and_keep_an_even_pace(tiny: ModelView) -> None:
    params, image = pixel((1, 3, 40, 60))
    snaps = Snapshots(every=1, max_side=30, max_frames=4)
    optimize(params, image, channel("features.0", 0), tiny, Compose(), torch.optim.Adam(params), 11, [snaps])
    # steps 0-4 fill and overflow the cap (kept: 0, 2, 4), then every 2nd step until 8 overflows it (kept: 0, 4, 8),
    # then the last step (10)
    assert len(snaps.frames) == 4 and snaps.stride == 4
    assert snaps.frames[0].size == (30, 20)  # shrunk to max_side on the long side


def test_a_goal_reached_ends_the_loop_and_closes_the_gif(tiny: ModelView) -> None:
    params, image = pixel((1, 3, 16, 16))
    rec, snaps, asked = Recorder(), Snapshots(every=5), []

    def reached(picture: torch.Tensor) -> bool:
        asked.append(picture.requires_grad)
        return len(asked) == 3  # the third test: after step 12

    final = optimize(params, image, channel("features.0", 0), tiny, Compose(), torch.optim.Adam(params), 40,
                     [rec, snaps, Goal(reached, every=4)])  # fmt: skip
    assert rec.steps == 12 and asked == [False, False, False]  # tested every 4 steps, without gradients
    assert np.array_equal(np.asarray(snaps.frames[-1]), np.asarray(to_pil(final[0])))  # the GIF ends on the result


def test_a_stop_request_ends_the_loop_before_its_next_step(tiny: ModelView) -> None:
    from engine.loop import STOP

    params, image = pixel((1, 3, 16, 16))
    rec = Recorder()

    class StopAfterTwo(Recorder):
        def on_step(self, step: int, loss: torch.Tensor, image_fn) -> None:  # type: ignore[no-untyped-def]
            if step == 1:
                STOP.set()  # as Ctrl-C does, even if its KeyboardInterrupt never arrives

    try:
        with pytest.raises(KeyboardInterrupt):
            optimize(params, image, channel("features.0", 0), tiny, Compose(), torch.optim.Adam(params), 10,
                     [rec, StopAfterTwo()])  # fmt: skip
        assert rec.steps == 2
    finally:
        STOP.clear()


def test_tiles_cover_the_picture_once_and_move_every_step() -> None:
    tiling = Tiling(64, torch.Generator().manual_seed(0))
    layouts = set()
    for _ in range(20):
        tiles = tiling.tiles(150, 200)
        count = torch.zeros(150, 200)
        for rows, cols in tiles:
            count[rows, cols] += 1
            for span in (rows, cols):
                assert 16 <= span.stop - span.start < 80  # a quarter tile up to a tile and a quarter
        assert torch.equal(count, torch.ones(150, 200))
        layouts.add(tuple((r.start, c.start) for r, c in tiles))
    assert len(layouts) >= 10  # the cuts move from step to step
    assert Tiling(64).tiles(40, 64) == [(slice(0, 40), slice(0, 64))]  # a picture within one tile is not cut


def test_tiled_gradient_and_loss_match_the_whole_picture(tiny: ModelView) -> None:
    """A per-pixel objective sees no tile edges, so tile by tile must give exactly the whole picture's step."""
    results = []
    for tiling in (None, Tiling(24, torch.Generator().manual_seed(3))):
        params, image = pixel((2, 3, 50, 70), generator=torch.Generator().manual_seed(0), sd=0.3)
        rec = Recorder()
        optimizer = torch.optim.SGD(params, lr=10.0)
        out = optimize(params, image, l2(), tiny, Compose(), optimizer, 3, [rec], tiling=tiling)
        results.append((out, rec.loss_first))
    (whole, loss_whole), (tiled, loss_tiled) = results
    assert loss_whole == pytest.approx(loss_tiled, rel=1e-5)
    assert torch.allclose(whole, tiled, atol=1e-6)
    assert not torch.allclose(whole, pixel((2, 3, 50, 70), generator=torch.Generator().manual_seed(0), sd=0.3)[1]())


def test_the_progress_bar_says_the_time_left_and_the_time_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    clock = iter([0.0, 2.0, 8.0])  # start, after one step of four (2 s each), after the fourth
    monkeypatch.setattr("engine.callbacks.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = Progress(stream=out)
    bar.on_start(4, lambda: torch.zeros(1))
    bar.on_step(0, torch.tensor(1.0), lambda: torch.zeros(1))
    bar.on_step(3, torch.tensor(0.5), lambda: torch.zeros(1))
    first, last = out.getvalue().splitlines()
    assert first.endswith("1/4 loss 1 2.0 s/it, 0:06 left"), first
    assert last.endswith("4/4 loss 0.5 2.0 s/it, in 0:08"), last
