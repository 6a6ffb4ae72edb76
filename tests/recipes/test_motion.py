"""The zoom video: the warp moves pictures as asked, frames become a GIF and an MP4, a stopped run resumes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

import recipes.motion
from engine.checkpoints import CHECKPOINT
from engine.cli import main as dreamloom_main
from engine.errors import UserError
from engine.images import load_image, resize_to
from engine.results import Interrupted
from engine.runner import run_recipe
from recipes.motion import gif_timing, zoom_and_turn
from tests.helpers import compose_recipe

SMALL = ("size=64", "frames=3", "octaves=1", "steps=2", "device=cpu")


def _pattern(h: int = 40, w: int = 60) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([(x / w), (y / h), ((x + y) % 7) / 7])[None]


def test_warp_without_motion_is_the_identity() -> None:
    picture = _pattern()
    assert torch.allclose(zoom_and_turn(picture, 1.0, 0.0, (0.0, 0.0)), picture, atol=1e-5)


def test_warp_shifts_by_whole_pixels() -> None:
    picture = _pattern()
    moved = zoom_and_turn(picture, 1.0, 0.0, (3.0, -2.0))  # content moves 3 px right and 2 px up
    assert torch.allclose(moved[..., 4:30, 5:50], picture[..., 6:32, 2:47], atol=1e-4)


def test_warp_zooms_about_the_centre() -> None:
    picture = _pattern(41, 61)
    zoomed = zoom_and_turn(picture, 2.0, 0.0, (0.0, 0.0))
    assert torch.allclose(zoomed[..., 20, 30], picture[..., 20, 30], atol=1e-4)  # the centre stays
    # a point 10 px right of the centre shows what was 5 px right of it
    assert torch.allclose(zoomed[..., 20, 40], picture[..., 20, 35], atol=1e-4)


def test_warp_turns_a_quarter_turn_like_rot90() -> None:
    picture = _pattern(31, 31)
    turned = zoom_and_turn(picture, 1.0, 90.0, (0.0, 0.0))
    best = min(float((turned - torch.rot90(picture, k, dims=(-2, -1))).abs().max()) for k in (1, 3))
    assert best < 1e-4


@pytest.mark.slow
def test_dream_zoom_writes_frames_gif_and_mp4(tmp_path: Path) -> None:
    largest = f"seed={2**64 - 1}"  # each frame's seed is the run's plus the frame's number, wrapped round
    run_recipe(compose_recipe("dream_zoom", *SMALL, "zoom=1.1", "rotate=2", largest), tmp_path, "dream_zoom")
    frames = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert frames == ["0000.png", "0001.png", "0002.png"]
    with Image.open(tmp_path / "video.gif") as gif:
        assert gif.n_frames == 3
    with imageio.get_reader(tmp_path / "video.mp4", format="FFMPEG") as reader:
        video = [frame for frame in reader]
        assert reader.get_meta_data()["fps"] == pytest.approx(12)
    with Image.open(tmp_path / "frames" / "0000.png") as frame:
        w, h = frame.size
    assert len(video) == 3 and video[0].shape[:2] == (h + h % 2, w + w % 2)  # H.264 wants even sides
    first, last = (torch.from_numpy(video[i]).float() for i in (0, 2))
    assert float((first - last).abs().mean()) > 5  # the video moves
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["frames"] == 3 and metrics["videos"] == ["video.gif", "video.mp4"]
    assert not (tmp_path / CHECKPOINT).exists()


@pytest.mark.slow
def test_each_zoom_frame_is_dreamed_not_only_moved(tmp_path: Path) -> None:
    run_recipe(compose_recipe("dream_zoom", *SMALL, "zoom=1.0"), tmp_path, "dream_zoom")
    first = load_image(tmp_path / "frames" / "0000.png")
    photo = resize_to(load_image("chelsea"), (first.shape[-2], first.shape[-1]))
    last = load_image(tmp_path / "frames" / "0002.png")
    assert float((first - photo).abs().mean()) * 255 > 0.5  # the first frame is the photo dreamed on (1.0)
    assert float((last - first).abs().mean()) * 255 > 0.5  # at zoom=1 only the dream moves the rest (1.4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "turn", "shift"), [("rotate=30", 30.0, (0.0, 0.0)), ("shift=[5,-3]", 0.0, (5.0, -3.0))]
)
def test_rotate_and_shift_move_each_frame_before_it_is_dreamed(
    tmp_path: Path, key: str, turn: float, shift: tuple[float, float]
) -> None:
    """With a step too small to change a pixel, the second frame is the first warped as the keys say."""
    still = ("size=64", "frames=2", "octaves=1", "steps=1", "lr=1e-9", "zoom=1.0", "device=cpu")
    run_recipe(compose_recipe("dream_zoom", *still, key), tmp_path, "dream_zoom")
    first, second = (load_image(tmp_path / "frames" / f"000{k}.png") for k in (0, 1))
    inside = (..., slice(12, -12), slice(12, -12))  # away from the corners the turn brings in from outside
    warped = zoom_and_turn(first, 1.0, turn, shift)
    assert float((second - warped)[inside].abs().mean()) < 0.01
    assert float((second - first)[inside].abs().mean()) > 0.05


@pytest.mark.slow
def test_a_stopped_zoom_video_resumes_to_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_recipe(compose_recipe("dream_zoom", *SMALL), tmp_path / "whole", "dream_zoom")
    written = recipes.motion.save_png

    def stop_after_two(path, img, config_text=None):  # type: ignore[no-untyped-def]
        written(path, img, config_text)
        if Path(path).name == "0001.png":
            raise KeyboardInterrupt  # Ctrl-C just after the second frame

    monkeypatch.setattr(recipes.motion, "save_png", stop_after_two)
    with pytest.raises(Interrupted, match="carry on with: dreamloom resume="):
        run_recipe(compose_recipe("dream_zoom", *SMALL), tmp_path / "cut", "dream_zoom")
    assert sorted(p.name for p in (tmp_path / "cut" / "frames").iterdir()) == ["0000.png", "0001.png"]
    made: list[str] = []

    def record(path, img, config_text=None):  # type: ignore[no-untyped-def]
        made.append(Path(path).name)
        written(path, img, config_text)

    monkeypatch.setattr(recipes.motion, "save_png", record)
    dreamloom_main([f"resume={tmp_path / 'cut'}", f"hydra.run.dir={tmp_path / 'resumed'}"])
    assert made == ["0002.png"]  # the two frames made before the stop are reused, not made again
    for name in ("0000.png", "0001.png", "0002.png"):
        whole, resumed = (Image.open(tmp_path / run / "frames" / name) for run in ("whole", "resumed"))
        assert whole.tobytes() == resumed.tobytes(), name


def test_interpolation_weights_blend_the_two_channels() -> None:
    from objectives import interpolation

    acts = {"f": torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])[..., None, None]}  # (3 pictures, 2 channels)
    loss = interpolation("f", 0, 1, 3)(acts)
    assert float(loss) == pytest.approx(-(1.0 + (0.5 * 2 + 0.5 * 20) + 30.0))
    with pytest.raises(UserError, match="frames=1 is too few"):
        interpolation("f", 0, 1, 1)


def test_interpolation_ends_can_be_channels_of_other_layers_or_classes() -> None:
    from objectives import interpolation

    logits = torch.zeros(3, 1000)
    logits[:, 130] = torch.tensor([4.0, 5.0, 6.0])  # flamingo
    acts = {"f": torch.zeros(3, 2, 1, 1), "g": torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1), "logits": logits}
    blend = interpolation("f", "g:0", "class:flamingo", 3)
    assert set(blend.layers) == {"g", "logits"} and "class(flamingo)" in blend.name
    assert float(blend(acts)) == pytest.approx(-(1.0 + (0.5 * 2 + 0.5 * 5) + 6.0))
    for bad in ("wobble", "class:", "g:x"):
        with pytest.raises(UserError, match="not an objective to interpolate"):
            interpolation("f", bad, 0, 3)
    with pytest.raises(UserError, match="unknown class 'flamingoo'"):
        interpolation("f", 0, "class:flamingoo", 3)


def test_shared_grids_move_every_picture_of_the_batch_alike() -> None:
    from engine.params import shared_fft

    params, image = shared_fft((3, 3, 32, 48), sd=0.0)
    grids = params[1:]
    assert [tuple(g.shape) for g in grids] == [(1, 3, 4, 6), (1, 3, 2, 3)]
    with torch.no_grad():
        grids[0].normal_()
    pictures = image()
    assert torch.allclose(pictures[0], pictures[2])
    assert not torch.allclose(pictures[0], torch.full_like(pictures[0], 0.5))
    image()[1].mean().backward()
    assert all(g.grad is not None and float(g.grad.abs().sum()) > 0 for g in grids)


@pytest.mark.slow
def test_interpolate_blends_from_one_channel_to_the_other(tmp_path: Path) -> None:
    keys = ("frames=4", "size=48", "steps=24", "from=7", "to=42", "device=cpu")
    run_recipe(compose_recipe("interpolate", *keys), tmp_path, "interpolate")
    singles = [torch.from_numpy(imageio.imread(p)).float() for p in sorted((tmp_path / "images").glob("*.png"))]
    assert len(singles) == 4
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames == 6  # there and back
    steps = [float((a - b).abs().mean()) for a, b in itertools.pairwise(singles)]
    ends = float((singles[0] - singles[-1]).abs().mean())
    assert max(steps) < ends, f"neighbours differ by {steps}, the ends by {ends:.1f}"


def test_a_stopped_interpolation_keeps_its_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.callbacks

    counted = engine.callbacks.Recorder.on_step

    def stop(self, step, loss, image_fn):  # type: ignore[no-untyped-def]
        counted(self, step, loss, image_fn)
        if self.steps == 3:
            raise KeyboardInterrupt  # as Ctrl-C would

    monkeypatch.setattr(engine.callbacks.Recorder, "on_step", stop)
    with pytest.raises(Interrupted):
        run_recipe(compose_recipe("interpolate", "frames=3", "size=32", "steps=9", "device=cpu"), tmp_path, "x")
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames == 4  # the three pictures so far, there and back


def test_an_odd_sized_clip_is_written_whole_and_quietly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """H.264 needs even sides: a 33x21 clip is padded by its own edge, not resized (which imageio warns about)."""
    frames = [Image.new("RGB", (33, 21), (40 * k, 90, 160)) for k in range(3)]
    recipes.motion.write_video(tmp_path, frames, 10)
    with imageio.get_reader(tmp_path / "video.mp4") as reader:
        first = np.asarray(reader.get_data(0))  # type: ignore[attr-defined]
    assert first.shape == (22, 34, 3)
    assert "WARNING" not in capfd.readouterr().err


@pytest.mark.slow
def test_a_long_zoom_keeps_its_fine_detail(tmp_path: Path) -> None:
    """Resampled 30 times over, the frames keep their fine structure (1.07 of the first frame's; a bilinear zoom
    kept 0.53)."""
    from engine.measures import detail

    keys = ("size=192", "frames=30", "device=cpu", "snapshot_every=0")
    run_recipe(compose_recipe("dream_zoom", *keys), tmp_path, "dream_zoom")
    first, last = (detail(load_image(tmp_path / "frames" / f"{k:04d}.png")) for k in (0, 29))
    assert last > 0.9 * first, (first, last)


@pytest.mark.parametrize("fps", [12, 24, 25, 30, 50, 60, 120])
def test_a_gif_plays_at_the_clips_own_speed(fps: int) -> None:
    """GIF delays are whole hundredths and browsers slow those of one hundredth to ten: a fast clip keeps every
    second frame (or more), and the delays add up to the clip's length."""
    step, delays = gif_timing(241, fps)
    assert step == (1 if fps <= 50 else -(-fps // 50)) and len(delays) == len(range(0, 241, step))
    assert all(d % 10 == 0 and d >= 20 for d in delays)
    assert sum(delays) / 1000 == pytest.approx(len(delays) * step / fps, abs=0.005)
