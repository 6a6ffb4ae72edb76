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
from engine.checks import check_number, seeded
from engine.errors import UserError
from engine.export import atomic_write, save_gif, save_png, save_state
from engine.images import input_picture, load_image, quantize, target_size, to_pil
from engine.octaves import octave_sizes
from engine.results import Interrupted, Rendered, RunResult, config_yaml, finish
from engine.runner import build_objective, load_view, optimize_octaves, recipe, refuse_alpha
from engine.spec import NO_PROGRESS, unread
from objectives.activation import MOST_CHANNELS
from recipes.visualize import one_each, render

__all__ = ["FPS", "VIDEO", "check_fps", "dream_zoom", "interpolate", "start_frames", "write_video", "zoom_and_turn"]

MOST_FRAMES = 10_000
"""The most frames of a zoom video (over five minutes at 30 frames a second): more would fill a disk, not a video."""
FPS = (0.1, 60.0)
"""The slowest and fastest frame rates a video may have (a GIF holds a frame at most 10 s here)."""
VIDEO = {
    **unread(NO_PROGRESS, "it writes video.gif, at fps=, in place of progress.gif"),
    "checkpoint_every": "a stopped video resumes from its last finished frame",
}
"""The shared keys a video recipe does not read: each frame's optimization writes no GIF and saves no steps."""


def check_fps(value: object, given: str = "fps") -> float:
    """A frame rate within :data:`FPS`, or one :class:`UserError` line naming where it came from."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and FPS[0] <= value <= FPS[1]
    if not ok:
        raise UserError(f"{given}={value} is not valid; use frames per second from {FPS[0]:g} to {FPS[1]:g}")
    return float(value)  # type: ignore[arg-type]


def zoom_and_turn(picture: torch.Tensor, zoom: float, degrees: float, shift: tuple[float, float]) -> torch.Tensor:
    """Enlarge by ``zoom`` and turn by ``degrees`` about the centre, then move by ``shift`` pixels ``(x, y)``;
    the size stays and edges are reflected (one bicubic resampling). Shape: ``(B, 3, H, W)``."""
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
    # bicubic: a bilinear resampling per frame blurs a long zoom away (its fine detail halved by frame 300)
    return F.grid_sample(picture, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1)


def gif_timing(count: int, fps: float) -> tuple[int, list[int]]:
    """Every how many of ``count`` frames a GIF keeps at ``fps``, and each kept frame's delay in milliseconds.

    A GIF's delays are whole hundredths of a second, and browsers play one of a hundredth or less at a tenth, so a
    clip of more than 50 frames a second keeps every second frame (or third …); the delays, rounded where the clip's
    own times fall, add up to the clip's length (12 frames a second is not played as 12.5)."""
    step = max(1, math.ceil(fps / 50))
    ticks = [round(100 * k * step / fps) for k in range(len(range(0, count, step)) + 1)]
    return step, [10 * (after - before) for before, after in itertools.pairwise(ticks)]


def write_video(folder: Path, frames: list[Image.Image], fps: float) -> list[str]:
    """``video.gif`` and ``video.mp4`` (H.264 through imageio-ffmpeg) from the frames; the names written."""
    step, delays = gif_timing(len(frames), fps)
    save_gif(folder / "video.gif", frames[::step], delays)
    import imageio.v2 as imageio

    def write_mp4(tmp: str) -> None:
        with imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=2, pixelformat="yuv420p"
        ) as writer:
            for frame in frames:  # H.264 in yuv420p needs even sides: an odd one gets its last row or column again
                rgb = np.asarray(frame.convert("RGB"))
                rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
                writer.append_data(rgb)  # type: ignore[attr-defined]
        data = Path(tmp).read_bytes()  # ffmpeg's exit status is not checked on the way: the file is
        if data[4:8] != b"ftyp" or b"moov" not in data:  # an MP4 has its type box first and its index box at the end
            raise OSError("ffmpeg ended without a whole MP4")

    try:
        atomic_write(folder / "video.mp4", write_mp4)
    except Exception as e:  # ffmpeg missing, ended early or out of room: its pipe breaks, with messages of its own
        reason = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        raise UserError(
            f"could not write video.mp4 in {folder} ({reason}); its frames and video.gif are there: check that "
            f"ffmpeg runs (imageio-ffmpeg) and that the disk has room, then run it again: dreamloom rerun {folder}"
        ) from None
    return ["video.gif", "video.mp4"]


def _motion_keys(cfg: DictConfig) -> tuple[int, float, float, float, tuple[float, float]]:
    frames = int(check_number(cfg, "frames", int, 0, high=MOST_FRAMES))
    fps = check_fps(cfg.fps)
    zoom = cfg.zoom
    if isinstance(zoom, bool) or not isinstance(zoom, int | float) or not 0.5 <= zoom <= 2:
        raise UserError(f"zoom={cfg.zoom} is not valid; use a scale per frame from 0.5 to 2, such as zoom=1.03")
    rotate = check_number(cfg, "rotate", low=-180, strict=False, high=180)
    shift, side = cfg.shift, max(target_size(cfg.size))
    ok = isinstance(shift, ListConfig | list) and len(shift) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= side for v in shift)
    if not ok:
        raise UserError(
            f"shift={shift} is not valid; give pixels per frame as shift=[x,y], each at most the picture's side "
            f"({side}), such as shift=[0,2]"
        )
    return frames, fps, zoom, rotate, (float(shift[0]), float(shift[1]))


def start_frames(cfg: DictConfig, folder: Path, limit: int, hw: tuple[int, int]) -> list[Path]:
    """Make ``folder/frames``, copy into it the frames (up to ``limit``, each ``hw`` in size) that the run named by
    ``resume`` wrote, and leave a ``checkpoint.pt`` holding this run's keys (what ``resume=`` reads, as the step
    checkpoints of the other recipes are); returns the copied frames."""
    made = folder / "frames"
    found = _written_frames(Path(str(cfg.resume)) / "frames", limit, hw) if cfg.get("resume") else []
    made.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in found:  # carry on after the last frame the stopped run wrote
        atomic_write(made / path.name, partial(shutil.copyfile, path))
        copied.append(made / path.name)
    save_state(folder / CHECKPOINT, {"format": FORMAT, "config": config_yaml(cfg)})
    return copied


def _written_frames(frames: Path, limit: int, hw: tuple[int, int]) -> list[Path]:
    """The frames a stopped run wrote (0000.png, 0001.png … up to the first gap), each checked to be a PNG file of
    the run folder's own, of the run's size, not a link to a file elsewhere, before anything is copied."""
    found = []
    for path in [frames / f"{k:04d}.png" for k in range(limit)]:
        if not path.is_file():
            break
        try:
            if path.is_symlink() or frames.is_symlink():
                raise ValueError("a link")
            with Image.open(path) as picture:
                if picture.format != "PNG" or picture.size != (hw[1], hw[0]):
                    raise ValueError(str(picture.format))
                picture.verify()
        except (OSError, ValueError, SyntaxError):
            raise UserError(
                f"'{path}' is not a frame the stopped run wrote; resume a run folder dreamloom wrote as it is, or "
                "start the run again"
            ) from None
        found.append(path)
    return found


@recipe(numbers={"frames": (int, 0, True)}, lists={"shift": (float, -math.inf, False)}, objective=True, ignores=VIDEO)
def dream_zoom(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """The zoom video: frame ``k + 1`` is frame ``k`` warped (zoom, rotate, shift), then dreamed on.

    Keys: ``input``, ``size``, ``layer``, ``frames``, ``fps``, ``zoom``, ``rotate`` (degrees per frame), ``shift``
    (pixels per frame, ``[x, y]``), and per frame ``octaves``, ``octave_scale``, ``steps``, ``lr``.
    """
    frames, fps, zoom, rotate, shift = _motion_keys(cfg)
    refuse_alpha(cfg, f"recipe={recipe} dreams on a picture, which has no transparent parts; drop param=alpha")
    view = load_view(cfg)
    objective = build_objective(cfg, view)
    current = quantize(input_picture(cfg, recipe, view.device))
    sizes = octave_sizes((current.shape[-2], current.shape[-1]), cfg.octaves, float(cfg.octave_scale))
    made = folder / "frames"
    pictures: list[Image.Image] = []
    for path in start_frames(cfg, folder, frames, (current.shape[-2], current.shape[-1])):
        current = load_image(path).to(view.device)
        pictures.append(to_pil(current[0]))
    each = cfg.copy()  # one frame's optimization: no GIF of its steps, no step checkpoints
    with open_dict(each):
        each.snapshot_every, each.resume = 0, None
    record, stopped, interrupted = Recorder(), None, False
    try:
        for k in range(len(pictures), frames):
            start = zoom_and_turn(current, zoom, rotate, shift) if k > 0 else current
            generator = seeded(cfg.seed, k)
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


@recipe(objective=True)
def interpolate(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """A batch of ``frames`` pictures blending objective ``from`` into ``to`` (channels of ``layer``, channels of other
    layers as ``LAYER:CHANNEL``, or classes as ``class:NAME``): the contact sheet
    ``image.png``, each picture in ``images/``, and ``interpolation.gif`` going there and back."""
    frames = int(check_number(cfg, "frames", int, 1, high=MOST_CHANNELS))  # the two ends at least
    one_each(cfg, frames, "frames")
    labels = [f"{i / (frames - 1):.2f}" for i in range(frames)]
    try:
        result = render(cfg, folder, recipe, labels)
    except Interrupted:  # the pictures so far are in images/: their loop too
        _there_and_back(cfg, folder, [Image.open(p).convert("RGB") for p in sorted((folder / "images").glob("*.png"))])
        raise
    assert result.picture is not None
    _there_and_back(cfg, folder, [to_pil(picture) for picture in quantize(result.picture)])
    return result


def _there_and_back(cfg: DictConfig, folder: Path, singles: list[Image.Image]) -> None:
    """``interpolation.gif``: the pictures from the first to the last and back."""
    if singles:
        save_gif(folder / "interpolation.gif", singles + singles[-2:0:-1], int(cfg.gif_ms) * 2)
