"""Clips painted and dreamed along the optical flow: the result moves with the scene, keeps its content, and a
stopped run resumes to the same frames."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

import recipes.clips
from engine.checkpoints import CHECKPOINT
from engine.cli import main as dreamloom_main
from engine.errors import UserError
from engine.images import load_image, resize_to, to_pil
from engine.results import Interrupted
from engine.runner import run_recipe
from tests.helpers import compose_recipe

STYLE = ("size=64", "octaves=1", "steps=30", "steps_next=10", "device=cpu")
DREAM = ("size=64", "octaves=1", "steps=6", "steps_next=3", "device=cpu")


def _moving_clip(path: Path, frames: int = 4, step: int = 2) -> Path:
    """A GIF of the astronaut sample sliding ``step`` pixels a frame."""
    photo = resize_to(load_image("astronaut"), (64, 64 + step * frames))
    shots = [to_pil(photo[..., :, k * step : k * step + 64]) for k in range(frames)]
    shots[0].save(path, save_all=True, append_images=shots[1:], duration=100, loop=0)
    return path


def _metrics(run: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_style_video_moves_with_the_scene_where_the_unmoved_start_does_not(tmp_path: Path) -> None:
    clip = _moving_clip(tmp_path / "clip.gif", step=3)
    for flow in ("dis", "none"):
        run_recipe(compose_recipe("style_video", f"input={clip}", f"flow={flow}", *STYLE), tmp_path / flow, "x")
    run = tmp_path / "dis"
    assert sorted(p.name for p in (run / "frames").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    followed, unmoved = _metrics(run), _metrics(tmp_path / "none")
    assert followed["fps"] == pytest.approx(10) and followed["videos"] == ["video.gif", "video.mp4"]
    assert followed["steps"] == 30 + 3 * 10  # the first frame's steps, then each later frame's
    assert followed["flicker"]["output"] < 0.5 * unmoved["flicker"]["output"], (followed, unmoved)
    # the later frames keep their content (1.25 here at 64 px and 10 steps a frame; 1.84 unmoved)
    assert followed["content_drift"] < min(1.3, unmoved["content_drift"]), followed["content_distance"]
    assert len(followed["content_distance"]) == 4 and followed["seconds_per_frame"] > 0
    first = torch.from_numpy(imageio.imread(run / "frames" / "0000.png")).float()
    given = torch.from_numpy(imageio.imread(run / "input" / "0000.png")).float()
    assert float((first - given).abs().mean()) > 10  # and it is painted, not the clip copied


@pytest.mark.slow
def test_a_stopped_style_video_keeps_its_frames_and_resumes_to_the_same_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = _moving_clip(tmp_path / "clip.gif", frames=3)
    keys = (f"input={clip}", "size=48", "octaves=1", "steps=6", "steps_next=3", "device=cpu")
    run_recipe(compose_recipe("style_video", *keys), tmp_path / "whole", "style_video")
    paint = recipes.clips.paint
    calls: list[int] = []

    def stop_at_the_third_frame(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third frame is painted
        return paint(*args, **kwargs)

    monkeypatch.setattr(recipes.clips, "paint", stop_at_the_third_frame)
    cut = tmp_path / "cut"
    with pytest.raises(Interrupted, match=r"after 2 frames; .* carry on with: dreamloom resume="):
        run_recipe(compose_recipe("style_video", *keys), cut, "style_video")
    calls.clear()
    monkeypatch.setattr(recipes.clips, "paint", lambda *a, **k: calls.append(1) or paint(*a, **k))
    assert sorted(p.name for p in (cut / "frames").iterdir()) == ["0000.png", "0001.png"]
    assert _metrics(cut)["interrupted"] is True
    with Image.open(cut / "video.gif") as gif:
        assert gif.n_frames == 2  # the video so far
    dreamloom_main([f"resume={cut}", f"hydra.run.dir={tmp_path / 'resumed'}"])
    assert len(calls) == 1  # only the third frame is painted: the first two are reused
    for name in ("0000.png", "0001.png", "0002.png"):
        whole, resumed = (Image.open(tmp_path / run / "frames" / name) for run in ("whole", "resumed"))
        assert whole.tobytes() == resumed.tobytes(), name
    assert not (tmp_path / "resumed" / CHECKPOINT).exists()


@pytest.mark.slow
def test_dream_video_carries_the_dream_along_the_flow(tmp_path: Path) -> None:
    clip = _moving_clip(tmp_path / "clip.gif", step=3)
    for name, keys in {"flow": ("blend=0.5",), "fresh": ("blend=0",)}.items():
        run_recipe(compose_recipe("dream_video", f"input={clip}", *DREAM, *keys), tmp_path / name, "dream_video")
    run = tmp_path / "flow"
    assert sorted(p.name for p in (run / "frames").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    with Image.open(run / "video.gif") as gif:
        assert gif.n_frames == 4
    carried, fresh = _metrics(run), _metrics(tmp_path / "fresh")
    assert carried["steps"] == 6 + 3 * 3
    # dreamed afresh, each frame grows its own motifs from a few steps: they flicker; carried over, they flow
    assert carried["flicker"]["output"] < fresh["flicker"]["output"], (carried["flicker"], fresh["flicker"])
    dream = load_image(run / "frames" / "0003.png")
    given = load_image(run / "input" / "0003.png")
    assert float((dream - given).abs().mean()) * 255 > 2  # the last frame is dreamed on, not the clip copied


@pytest.mark.slow
def test_a_stopped_dream_video_resumes_to_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = (f"input={_moving_clip(tmp_path / 'clip.gif', frames=3)}", *DREAM)
    run_recipe(compose_recipe("dream_video", *keys), tmp_path / "whole", "dream_video")
    written = recipes.clips.save_png
    made: list[str] = []

    def stop_after_two(path, img, config_text=None):  # type: ignore[no-untyped-def]
        written(path, img, config_text)
        made.append(f"{Path(path).parent.name}/{Path(path).name}")
        if made[-1] == "frames/0001.png":
            raise KeyboardInterrupt  # Ctrl-C just after the second frame

    monkeypatch.setattr(recipes.clips, "save_png", stop_after_two)
    with pytest.raises(Interrupted, match="carry on with: dreamloom resume="):
        run_recipe(compose_recipe("dream_video", *keys), tmp_path / "cut", "dream_video")
    made.clear()
    dreamloom_main([f"resume={tmp_path / 'cut'}", f"hydra.run.dir={tmp_path / 'resumed'}"])
    assert [m for m in made if m.startswith("frames/")] == ["frames/0002.png"]  # the first two are reused
    for name in ("0000.png", "0001.png", "0002.png"):
        whole, resumed = (Image.open(tmp_path / run / "frames" / name) for run in ("whole", "resumed"))
        assert whole.tobytes() == resumed.tobytes(), name


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        (("recipe=dream_video", "blend=1.5"), "blend=1.5 is not valid; give the carried dream's share from 0 to 1"),
        (("recipe=dream_video", "flow=raft"), "flow=raft is not known; use flow=dis, flow=farneback or flow=none"),
        (("recipe=style_video", "lr_next=0"), "lr_next=0 is not valid; lr_next must be a number > 0"),
        (("recipe=style_video", "temporal_weight=-1"), "temporal_weight=-1 is not valid"),
        (("recipe=dream_video", "content_layer=nope"), "nope"),
        (("recipe=style_video", "content_layer=null"), "content_layer=null leaves no layer to hold the photo by"),
    ],
)
def test_wrong_clip_keys_are_one_line(keys: tuple[str, ...], line: str, tmp_path: Path) -> None:
    clip = _moving_clip(tmp_path / "clip.gif", frames=2)
    cfg = compose_recipe(keys[0].split("=")[1], *keys[1:], f"input={clip}", *DREAM)
    with pytest.raises(UserError, match=line.replace("(", r"\(").replace(")", r"\)")):
        run_recipe(cfg, tmp_path / "run", "x")
    assert not (tmp_path / "run" / "frames").exists() or not any((tmp_path / "run" / "frames").iterdir())


def test_a_run_folder_named_clip_does_not_hide_the_sample_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hydra.run.dir=clip input=clip``: Hydra makes ./clip first; the key still means the sample clip."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip").mkdir()
    assert recipes.clips.is_clip("clip")
    frames, _ = recipes.clips.read_clip("clip", limit=2)
    assert len(frames) == 2
    (tmp_path / "other").mkdir()
    assert not recipes.clips.is_clip(str(tmp_path / "other"))


def test_a_clip_of_grey_frames_is_read_whole(tmp_path: Path) -> None:
    """A GIF whose palette is every grey level decodes to (H, W) frames, not (H, W, 3): each is read as the grey
    picture it is."""
    ramp = np.tile(np.arange(256, dtype=np.uint8), (30, 1))
    shots = [Image.fromarray(np.roll(ramp, k, axis=1)) for k in (0, 1, 2)]
    shots[0].save(tmp_path / "grey.gif", save_all=True, append_images=shots[1:], duration=100, loop=0)
    frames, _ = recipes.clips.read_clip(str(tmp_path / "grey.gif"))
    assert [(f.size, f.getpixel((5, 0))) for f in frames] == [((256, 30), (v, v, v)) for v in (5, 4, 3)]


@pytest.mark.slow
def test_a_luminance_style_video_paints_every_frame_in_grey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With colors=luminance the painting is made in grey and the photo's colours put back at the end: a later
    frame starts from the grey of the painting carried over, as the first starts from the photo's grey."""
    starts: list[torch.Tensor | None] = []
    paint = recipes.clips.paint

    def watched(cfg, view, photo, init=None, folder=None, extra=None):  # type: ignore[no-untyped-def]
        starts.append(init)
        return paint(cfg, view, photo, init, folder, extra)

    monkeypatch.setattr(recipes.clips, "paint", watched)
    clip = _moving_clip(tmp_path / "clip.gif", frames=2)
    keys = ("colors=luminance", "steps=4", "steps_next=2")
    run_recipe(compose_recipe("style_video", f"input={clip}", *STYLE, *keys), tmp_path / "run", "style_video")
    later = starts[1]
    assert starts[0] is None and later is not None
    assert float((later - later[:, :1]).abs().max()) < 1e-6  # its three channels alike


def test_a_clip_past_the_pixel_budget_is_refused_with_the_frames_that_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames are counted as they are decoded, so a long clip is refused before it fills memory."""
    clip = _moving_clip(tmp_path / "clip.gif", frames=6)
    with Image.open(clip) as first:
        each = first.width * first.height
    monkeypatch.setattr(recipes.clips, "CLIP_PIXELS", 4 * each)
    with pytest.raises(UserError, match=r"holds more than .* megapixels of frames \(5 frames of .*pass frames=4 or"):
        recipes.clips.read_clip(str(clip))
    assert len(recipes.clips.read_clip(str(clip), 4)[0]) == 4


def test_a_video_that_ffmpeg_cannot_write_is_one_line_and_keeps_the_gif(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imageio_ffmpeg._io

    from recipes.motion import write_video

    broken = tmp_path / "ffmpeg"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg._io, "get_ffmpeg_exe", lambda: str(broken))  # where the writer reads it
    shots = [Image.new("RGB", (32, 32), (k * 60, 0, 0)) for k in range(3)]
    with pytest.raises(UserError, match=r"could not write video.mp4 in .*its frames and video.gif are there"):
        write_video(tmp_path, shots, 12.0)
    assert (tmp_path / "video.gif").is_file() and not list(tmp_path.glob("*.mp4"))
