"""Moving pictures: the DeepDream zoom video, each frame dreamed on the zoomed and turned frame before it.

Frames are written one by one to ``frames/`` as they are made, then joined into ``video.gif`` and ``video.mp4``.
Each frame carries on from the 8-bit picture of the one before, with its own seed (``seed + frame``), so a run
stopped part way resumes from its last written frame (``resume=FOLDER``) and ends on the same video.
"""

from __future__ import annotations

import itertools
import math
import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, open_dict
from PIL import Image

from engine.callbacks import Recorder, Snapshots
from engine.checkpoints import CHECKPOINT, FORMAT
from engine.checks import check_number
from engine.errors import UserError
from engine.export import atomic_write, save_gif, save_png
from engine.images import from_pil, load_image, quantize, to_pil
from engine.models import ModelView
from engine.octaves import octave_sizes
from engine.results import Interrupted, Rendered, RunResult, config_yaml, finish, write_view
from engine.runner import build_objective, input_picture, load_view, optimize_octaves, recipe
from engine.samples import CLIP, sample_clip
from recipes.transfer import WEIGHTS, paint, style_view
from recipes.visualize import render

__all__ = ["dream_zoom", "flicker", "interpolate", "read_clip", "style_video", "write_video", "zoom_and_turn"]

FPS = (0.1, 60.0)
"""The slowest and fastest frame rates a video may have (a GIF holds a frame at most 10 s here)."""


def check_fps(value: object, given: str = "fps") -> float:
    """A frame rate within :data:`FPS`, or one :class:`UserError` line naming where it came from."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and FPS[0] <= value <= FPS[1]
    if not ok:
        raise UserError(f"{given}={value} is not valid; use frames per second from {FPS[0]:g} to {FPS[1]:g}")
    return float(value)  # type: ignore[arg-type]


def zoom_and_turn(picture: torch.Tensor, zoom: float, degrees: float, shift: tuple[float, float]) -> torch.Tensor:
    """Enlarge by ``zoom`` and turn by ``degrees`` about the centre, then move by ``shift`` pixels ``(x, y)``;
    the size stays and edges are reflected (one bilinear resampling). Shape: ``(B, 3, H, W)``."""
    b, _, h, w = picture.shape
    a = math.radians(degrees)
    cos, sin = math.cos(a) / zoom, math.sin(a) / zoom
    # output pixel -> input pixel, in the [-1, 1] coordinates of affine_grid, with the aspect ratio kept
    theta = torch.tensor(
        [[cos, -sin * h / w, -2 * shift[0] / w], [sin * w / h, cos, -2 * shift[1] / h]],
        dtype=picture.dtype,
        device=picture.device,
    )
    grid = F.affine_grid(theta.expand(b, 2, 3), list(picture.shape), align_corners=False)
    return F.grid_sample(picture, grid, mode="bilinear", padding_mode="reflection", align_corners=False).clamp(0, 1)


def write_video(folder: Path, frames: list[Image.Image], fps: float) -> list[str]:
    """``video.gif`` and ``video.mp4`` (H.264 through imageio-ffmpeg) from the frames; the names written."""
    save_gif(folder / "video.gif", frames, round(1000 / fps))
    import imageio.v2 as imageio

    def write_mp4(tmp: str) -> None:
        with imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=2, pixelformat="yuv420p"
        ) as writer:
            for frame in frames:  # H.264 in yuv420p needs even sides: an odd one gets its last row or column again
                rgb = np.asarray(frame.convert("RGB"))
                rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
                writer.append_data(rgb)  # type: ignore[attr-defined]

    atomic_write(folder / "video.mp4", write_mp4)
    return ["video.gif", "video.mp4"]


def _motion_keys(cfg: DictConfig) -> tuple[int, float, float, float, tuple[float, float]]:
    frames = int(check_number(cfg, "frames", int, 0))
    fps = check_fps(cfg.fps)
    zoom = cfg.zoom
    if isinstance(zoom, bool) or not isinstance(zoom, int | float) or not 0.5 <= zoom <= 2:
        raise UserError(f"zoom={cfg.zoom} is not valid; use a scale per frame from 0.5 to 2, such as zoom=1.03")
    rotate = check_number(cfg, "rotate", low=-math.inf)
    shift = cfg.shift
    ok = isinstance(shift, ListConfig | list) and len(shift) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in shift)
    if not ok:
        raise UserError(f"shift={shift} is not valid; give pixels per frame as shift=[x,y], such as shift=[0,2]")
    return frames, fps, zoom, rotate, (float(shift[0]), float(shift[1]))


def _start_frames(cfg: DictConfig, folder: Path, limit: int) -> list[Path]:
    """Make ``folder/frames``, copy into it the frames (up to ``limit``) that the run named by ``resume`` wrote, and
    leave a ``checkpoint.pt`` holding this run's keys (what ``resume=`` reads, as the step checkpoints of the other
    recipes are); returns the copied frames."""
    made = folder / "frames"
    made.mkdir(parents=True, exist_ok=True)
    copied = []
    if cfg.get("resume"):  # carry on after the last frame the stopped run wrote
        frames = Path(str(cfg.resume)) / "frames"
        for path in [frames / f"{k:04d}.png" for k in range(limit)]:  # 0000.png, 0001.png … up to the first gap
            if not path.is_file():
                break
            atomic_write(made / path.name, partial(shutil.copyfile, path))
            copied.append(made / path.name)
    atomic_write(folder / CHECKPOINT, lambda tmp: torch.save({"format": FORMAT, "config": config_yaml(cfg)}, tmp))
    return copied


@recipe(numbers={"frames": (int, 0, True)}, lists={"shift": (float, -math.inf, False)})
def dream_zoom(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The zoom video: frame ``k + 1`` is frame ``k`` warped (zoom, rotate, shift), then dreamed on.

    Keys: ``input``, ``size``, ``layer``, ``frames``, ``fps``, ``zoom``, ``rotate`` (degrees per frame), ``shift``
    (pixels per frame, ``[x, y]``), and per frame ``octaves``, ``octave_scale``, ``steps``, ``lr``.
    """
    frames, fps, zoom, rotate, shift = _motion_keys(cfg)
    view = load_view(cfg)
    objective = build_objective(cfg, view)
    current = quantize(input_picture(cfg, recipe, view.device))
    sizes = octave_sizes((current.shape[-2], current.shape[-1]), cfg.octaves, float(cfg.octave_scale))
    made = folder / "frames"
    pictures: list[Image.Image] = []
    for path in _start_frames(cfg, folder, frames):
        current = load_image(path).to(view.device)
        pictures.append(to_pil(current[0]))
    each = cfg.copy()  # one frame's optimization: no GIF of its steps, no step checkpoints
    with open_dict(each):
        each.snapshot_every, each.resume = 0, None
    record, stopped, interrupted = Recorder(), None, False
    try:
        for k in range(len(pictures), frames):
            start = zoom_and_turn(current, zoom, rotate, shift) if k > 0 else current
            generator = torch.Generator().manual_seed(int(cfg.seed) + k)
            out = optimize_octaves(each, view, sizes, lambda hw: objective, base=start, generator=generator)
            record.merge(out.record)
            if out.interrupted or out.stopped:
                interrupted, stopped = out.interrupted, out.stopped
                break
            current = quantize(out.picture)
            save_png(made / f"{k:04d}.png", current[0])
            pictures.append(to_pil(current[0]))
            print(f"frame {k + 1}/{frames} written", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # between two frames' optimizations: the video so far is written all the same
        interrupted = True
    videos = write_video(folder, pictures, fps) if pictures else []
    result = Rendered(current, record, Snapshots(0), interrupted, stopped)
    return finish(cfg, folder, recipe, view, result, objective.name, frames=len(pictures), fps=fps, videos=videos)


@recipe()
def interpolate(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """A batch of ``frames`` pictures blending objective ``from`` into ``to`` (channels of ``layer``, channels of other
    layers as ``LAYER:CHANNEL``, or classes as ``class:NAME``): the contact sheet
    ``image.png``, each picture in ``images/``, and ``interpolation.gif`` going there and back."""
    frames = int(check_number(cfg, "frames", int, 1))
    with open_dict(cfg):
        cfg.batch = frames
    labels = [f"{i / (frames - 1):.2f}" for i in range(frames)]
    result = render(cfg, folder, recipe, labels)
    assert result.picture is not None
    singles = [to_pil(picture) for picture in quantize(result.picture)]
    save_gif(folder / "interpolation.gif", singles + singles[-2:0:-1], int(cfg.gif_ms) * 2)
    return result


def read_clip(source: str, limit: int | None = None) -> tuple[list[Image.Image], float | None]:
    """The frames of a GIF or video file (MP4, MOV, WebM … through imageio-ffmpeg), the first ``limit`` of them
    (None: all; the rest are not decoded), and its frame rate if it says."""
    import imageio.v2 as imageio

    path = Path(source).expanduser()
    if source == CLIP and not path.exists():
        path = sample_clip()
    if not path.is_file():
        raise UserError(f"input '{source}' does not exist; pass a GIF or video file, or input=clip (the sample clip)")
    try:
        with imageio.get_reader(path) as reader:
            meta = reader.get_meta_data()  # type: ignore[attr-defined]
            decoded = itertools.islice(reader, limit)  # type: ignore[call-overload]
            frames = [Image.fromarray(np.asarray(f)[..., :3]).convert("RGB") for f in decoded]
    except Exception as e:  # imageio raises many kinds for a file it cannot decode
        reason = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        raise UserError(f"input '{source}' could not be read as a GIF or video ({reason}); pass a GIF or MP4") from None
    if not frames:
        raise UserError(f"input '{source}' holds no frames; pass a GIF or video with at least one frame")
    if len(frames) == 1 and limit != 1:
        raise UserError(
            f"input '{source}' is a still picture, not a clip; pass a GIF or video with several frames "
            "(recipe=style paints a single picture)"
        )
    fps = meta.get("fps") or (1000 / meta["duration"] if meta.get("duration") else None)
    return frames, float(fps) if fps else None


def flicker(frames: list[torch.Tensor]) -> float:
    """Mean absolute change from one frame to the next, in 8-bit levels (0 for a single frame)."""
    steps = [float((b - a).abs().mean()) * 255 for a, b in itertools.pairwise(frames)]
    return sum(steps) / len(steps) if steps else 0.0


def _paint_frames(
    cfg: DictConfig,
    view: ModelView,
    clip: list[Image.Image],
    pictures: list[Image.Image],
    folder: Path,
    steps_next: int,
) -> tuple[float, int, str | None, bool]:
    """Paint the frames of ``clip`` after those in ``pictures`` (appending to it and writing ``frames/``): the first
    as ``recipe=style`` would, each later one from the painted frame before it, with one octave of ``steps_next``.

    Returns the seconds spent optimizing, the optimizer steps taken, the objective's name and whether Ctrl-C or
    SIGTERM stopped it.
    """
    seconds, steps, objective = 0.0, 0, None
    later = cfg.copy()
    with open_dict(later):
        later.snapshot_every, later.checkpoint_every, later.resume = 0, 0, None
        first = later.copy()
        later.octaves, later.steps = 1, steps_next
    try:
        for k, frame in enumerate(clip):
            save_png(folder / "input" / f"{k:04d}.png", frame)
            if k < len(pictures):
                continue  # painted before the stop this run carries on from
            torch.manual_seed(int(cfg.seed))
            before = from_pil(pictures[-1]) if k > 0 else None  # the style stays where the clip stays
            out, objective, _ = paint(first if k == 0 else later, view, from_pil(frame), before)
            seconds, steps = seconds + out.record.seconds, steps + out.record.steps
            if out.interrupted:
                return seconds, steps, objective, True
            if out.stopped:
                raise UserError(f"frame {k + 1}: {out.stopped}")
            save_png(folder / "frames" / f"{k:04d}.png", out.picture[0])
            pictures.append(to_pil(out.picture[0]))
            print(f"frame {k + 1}/{len(clip)} written", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # between two frames: the video so far is written all the same
        return seconds, steps, objective, True
    return seconds, steps, objective, False


@recipe(paths=("style", "mask"), numbers={"steps_next": (int, 0, True)}, lists=WEIGHTS)
def style_video(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Style transfer frame by frame: each frame starts from the stylised frame before it (fewer steps, one octave),
    so the painting stays put where the clip does. Writes ``frames/``, ``video.gif``, ``video.mp4`` and the
    flicker of the input and of the result (mean frame-to-frame change) in ``metrics.json``."""
    if not cfg.get("input"):
        raise UserError(
            "recipe=style_video needs a clip; pass input=clip (the sample clip) or a GIF or MP4, such as a "
            "dream_zoom video"
        )
    limit = None if cfg.frames is None else int(check_number(cfg, "frames", int, 0))
    clip, clip_fps = read_clip(str(cfg.input), limit)
    if cfg.fps is not None:
        fps = check_fps(cfg.fps)
    else:  # the clip's own rate, within what a video can have (a GIF may claim 100 fps and more)
        fps = min(max(clip_fps or 12.0, FPS[0]), FPS[1])
    steps_next = int(check_number(cfg, "steps_next", int, 0))
    view = style_view(cfg, recipe)
    done = _start_frames(cfg, folder, len(clip))
    pictures = [to_pil(load_image(path, "resume")) for path in done]
    seconds, steps, objective, interrupted = _paint_frames(cfg, view, clip, pictures, folder, steps_next)
    videos = write_video(folder, pictures, fps) if pictures else []
    painted = len(pictures)
    moves = {"input": 0.0, "output": 0.0}
    if pictures:
        size = (pictures[0].height, pictures[0].width)
        seen = [F.interpolate(from_pil(frame), size=size, mode="area") for frame in clip[:painted]]
        moves = {
            "input": round(flicker(seen), 3),
            "output": round(flicker([from_pil(p) for p in pictures]), 3),
        }
        print(
            f"flicker (mean change between frames, 8-bit levels): input {moves['input']:g}, result {moves['output']:g}",
            file=sys.stderr,
        )
    last = pictures[-1] if pictures else Image.new("RGB", (8, 8), "grey")
    result = write_view(
        cfg,
        folder,
        recipe,
        last,
        frames=painted,
        fps=fps,
        videos=videos,
        objective=objective,
        flicker=moves,
        seconds=round(seconds, 3),
        steps=steps,
        interrupted=interrupted,
    )
    if interrupted:
        raise Interrupted(folder, painted, "frame")
    (folder / CHECKPOINT).unlink(missing_ok=True)  # finished: nothing left to resume
    return result
