"""Clips painted or dreamed frame by frame, each frame carried over from the one before along the optical flow.

Both recipes read a GIF or a video, bring every frame to the working size, and make frame 0 as the still recipe
would. Frame ``k`` then starts from result ``k - 1`` warped by the flow from input frame ``k`` back to ``k - 1``
(:mod:`engine.flow`); where the flow cannot be trusted (what the frame before did not show, motion boundaries) it
starts from the new frame instead. ``style_video`` adds the temporal loss of Ruder et al. (2016); ``dream_video``
blends the carried dream with the new frame. Frames are written to ``frames/`` as they are made, so a stopped run
resumes after its last written frame (``resume=FOLDER``).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from PIL import Image

from engine.callbacks import Recorder
from engine.checkpoints import CHECKPOINT
from engine.checks import check_number, seeded
from engine.colors import luminance, match_colors
from engine.errors import UserError
from engine.export import save_png
from engine.flow import FLOW_METHODS, Motion, flow_flicker, motion
from engine.images import SAMPLES, from_pil, load_image, quantize, quiet_size_warning, resize_to, target_size, to_pil
from engine.measures import feature_distance
from engine.models import ModelView
from engine.octaves import octave_sizes
from engine.results import Interrupted, Rendered, RunResult, write_view
from engine.runner import build_objective, load_view, optimize_octaves, recipe, refuse_alpha
from engine.samples import CLIP, sample_clip
from objectives.transfer import temporal
from recipes.motion import FPS, VIDEO, check_fps, start_frames, write_video
from recipes.transfer import UNTILED, WEIGHTS, check_content_layer, paint, style_view

__all__ = ["CLIP_PIXELS", "carry_over", "dream_video", "is_clip", "read_clip", "run_clip", "style_video"]

Frame = Callable[[int, torch.Tensor, torch.Tensor | None, Motion | None], Rendered]
"""Makes frame ``k`` from its input frame, the result before it (None for frame 0) and the motion between them."""
CLIP_SUFFIXES = {".gif", ".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v"}
"""The files read as clips (a GIF only when it has more than one frame)."""


def is_clip(source: str) -> bool:
    """Whether ``input`` names a clip: the sample clip, a video file, or a GIF of more than one frame."""
    path = Path(source).expanduser()
    if source == CLIP and not path.is_file():  # a folder of that name (the run's own) is no clip
        return True
    suffix = path.suffix.lower()
    if suffix == ".gif" and path.is_file():
        try:
            with quiet_size_warning(), Image.open(path) as img:
                return int(getattr(img, "n_frames", 1)) > 1
        except OSError:
            return False  # not a picture at all: reading it as one names the problem
    return suffix in CLIP_SUFFIXES - {".gif"}


def _rgb(frame: np.ndarray) -> Image.Image:
    """A decoded frame as an RGB picture: grey frames (``(H, W)``, as a GIF of grey levels gives) and RGBA ones."""
    return Image.fromarray(frame if frame.ndim == 2 else frame[..., :3]).convert("RGB")


CLIP_PIXELS = 750_000_000
"""The most pixels of a clip's frames read at their own size (2.25 GB in 8-bit RGB: 360 frames of 1920 × 1080, 3,250
of 640 × 360); a longer clip is refused with the ``frames=`` that fits, before memory runs out."""


def _decoded(frames: Iterator[Any], source: str) -> list[Image.Image]:
    """The frames as RGB pictures, refused in one line once they pass :data:`CLIP_PIXELS` together."""
    kept: list[Image.Image] = []
    total = 0
    for frame in frames:
        kept.append(_rgb(np.asarray(frame)))
        total += kept[-1].width * kept[-1].height
        if total > CLIP_PIXELS:
            fits = max(1, len(kept) - 1)
            raise UserError(
                f"input '{source}' holds more than {CLIP_PIXELS // 10**6} megapixels of frames ({len(kept)} frames "
                f"of {kept[-1].width}×{kept[-1].height} so far); pass frames={fits} or fewer, or a shorter or "
                "smaller clip"
            )
    return kept


def read_clip(source: str, limit: int | None = None) -> tuple[list[Image.Image], float | None]:
    """The frames of a GIF or video file (MP4, MOV, WebM … through imageio-ffmpeg), the first ``limit`` of them
    (None: all; the rest are not decoded), and its frame rate if it says."""
    import imageio.v2 as imageio

    path = Path(source).expanduser()
    if source == CLIP and not path.is_file():
        path = sample_clip()
    if not path.is_file() and source in SAMPLES:
        raise UserError(
            f"input={source} is a sample picture, not a clip; pass input=clip (the sample clip), a GIF or a video"
        )
    if not path.is_file():
        raise UserError(f"input '{source}' does not exist; pass a GIF or video file, or input=clip (the sample clip)")
    try:
        with quiet_size_warning(), imageio.get_reader(path) as reader:
            meta = reader.get_meta_data()  # type: ignore[attr-defined]
            frames = _decoded(itertools.islice(reader, limit), source)  # type: ignore[call-overload]
    except UserError:
        raise
    except Exception as e:  # imageio raises many kinds for a file it cannot decode
        reason = str(e).splitlines()[0][:80] if str(e) else type(e).__name__
        raise UserError(f"input '{source}' could not be read as a GIF or video ({reason}); pass a GIF or MP4") from None
    if not frames:
        raise UserError(f"input '{source}' holds no frames; pass a GIF or video with at least one frame")
    if len(frames) == 1 and limit != 1:
        raise UserError(
            f"input '{source}' is a still picture, not a clip; pass a GIF or video with several frames "
            "(recipe=style paints one picture, recipe=deepdream dreams on one)"
        )
    fps = meta.get("fps") or (1000 / meta["duration"] if meta.get("duration") else None)
    return frames, float(fps) if fps else None


def _clip(cfg: DictConfig, recipe: str) -> tuple[list[torch.Tensor], float, str | None]:
    """The clip's frames at the working size (``size``: the long side), the video's frame rate, the flow method."""
    if not cfg.get("input"):
        raise UserError(f"recipe={recipe} needs a clip; pass input=clip (the sample clip) or a GIF or MP4")
    if cfg.flow not in (*FLOW_METHODS, "none"):
        raise UserError(f"flow={cfg.flow} is not known; use flow={', flow='.join(FLOW_METHODS)} or flow=none")
    limit = None if cfg.frames is None else int(check_number(cfg, "frames", int, 0))
    clip, clip_fps = read_clip(str(cfg.input), limit)
    if cfg.fps is not None:
        fps = check_fps(cfg.fps)
    else:  # the clip's own rate, within what a video can have (a GIF may claim 100 fps and more)
        fps = min(max(clip_fps or 12.0, FPS[0]), FPS[1])
    hw = (clip[0].height, clip[0].width) if cfg.size is None else target_size(cfg.size, (clip[0].height, clip[0].width))
    frames = [resize_to(from_pil(frame), hw) for frame in clip]
    return frames, fps, None if cfg.flow == "none" else str(cfg.flow)


def _opaque(cfg: DictConfig, recipe: str) -> None:
    refuse_alpha(cfg, f"recipe={recipe} makes opaque frames (H.264 and GIF keep no transparency); drop param=alpha")


def _each_frame(
    folder: Path, frames: list[torch.Tensor], done: list[torch.Tensor], method: str | None, make: Frame
) -> tuple[Recorder, bool]:
    """Make the frames after those in ``done`` (appending each to it and writing ``frames/``); returns what the
    optimizations recorded and whether Ctrl-C or SIGTERM stopped them."""
    record = Recorder()
    try:
        for k, frame in enumerate(frames):
            save_png(folder / "input" / f"{k:04d}.png", frame[0])
            if k < len(done):
                continue  # made before the stop this run carries on from
            moved = motion(frames[k - 1], frame, method) if k > 0 and method else None
            out = make(k, frame, done[-1] if k > 0 else None, moved)
            record.merge(out.record)
            if out.interrupted:
                return record, True
            if out.stopped:
                raise UserError(f"frame {k + 1}: {out.stopped}")
            picture = quantize(out.picture[:1])
            save_png(folder / "frames" / f"{k:04d}.png", picture[0])
            done.append(picture.cpu())
            print(f"frame {k + 1}/{len(frames)} written", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # between two frames: the video so far is written all the same
        return record, True
    return record, False


def carry_over(before: torch.Tensor, frame: torch.Tensor, moved: Motion | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The result before, warped onto ``frame`` (unmoved without flow), and where it holds ``(1, 1, H, W)``."""
    if moved is None:
        return before, torch.ones_like(before[:, :1])
    return moved.carry(before)


def _measures(cfg: DictConfig, view: ModelView, done: list[torch.Tensor], frames: list[torch.Tensor]) -> dict:
    """The flow-compensated flicker of the input and the result, and the content drift: each result frame's content
    distance to its own input frame over the first frame's (the largest, and the last)."""
    if not done:
        return {}
    seen = frames[: len(done)]  # measured along DIS's flow whatever carried the frames, so that runs compare
    moves = {"input": round(flow_flicker(seen, seen), 3), "output": round(flow_flicker(done, seen), 3)}
    layer = _drift_layer(cfg)
    if layer is None:  # a style video without a content term: nothing to measure the drift on
        print(f"flicker along the flow (8-bit levels): input {moves['input']:g}, result {moves['output']:g}",
              file=sys.stderr)  # fmt: skip
        return {"flicker": moves}
    distances = [feature_distance(view, layer, d, f) for d, f in zip(done, seen, strict=True)]
    drift = [d / max(distances[0], 1e-9) for d in distances]
    print(
        f"flicker along the flow (8-bit levels): input {moves['input']:g}, result {moves['output']:g}; "
        f"content drift: at most {max(drift):.2f}x the first frame's distance ({layer})",
        file=sys.stderr,
    )
    distance = [round(d, 4) for d in distances]
    return {"flicker": moves, "content_drift": round(max(drift), 3), "content_distance": distance}


def _drift_layer(cfg: DictConfig) -> str | None:
    """The layer the content drift is measured on: the style's content layer, or the dream's layer."""
    layer = cfg.get("content_layer") or cfg.get("layer")
    return str(layer) if layer else None


def _side(frame: torch.Tensor) -> tuple[int, int]:
    return frame.shape[-2], frame.shape[-1]


def run_clip(
    cfg: DictConfig, folder: Path, recipe: str, view: ModelView, make: Frame, objective: Callable[[], str]
) -> RunResult:
    """The shared life of a clip recipe: frames (resumed ones reused), video, measures, ``metrics.json``."""
    frames, fps, method = _clip(cfg, recipe)
    view.check_layers([layer for layer in (_drift_layer(cfg),) if layer])  # where the content drift is measured
    done = [load_image(path, "resume") for path in start_frames(cfg, folder, len(frames), _side(frames[0]))]
    resumed = len(done)
    record, interrupted = _each_frame(folder, frames, done, method, make)
    videos = write_video(folder, [to_pil(d[0]) for d in done], fps) if done else []
    last = to_pil(done[-1][0]) if done else Image.new("RGB", (8, 8), "grey")
    painted = len(done)
    seconds = round(record.seconds, 3)
    extra: dict[str, Any] = {} if interrupted else _measures(cfg, view, done, frames)  # interrupted: no waiting on it
    if painted > resumed:
        extra["seconds_per_frame"] = round(record.seconds / (painted - resumed), 3)
    result = write_view(
        cfg, folder, recipe, last, frames=painted, fps=fps, videos=videos, objective=objective(),
        seconds=seconds, steps=record.steps, interrupted=interrupted, **extra,
    )  # fmt: skip
    if interrupted:
        raise Interrupted(folder, painted, "frame")
    (folder / CHECKPOINT).unlink(missing_ok=True)  # finished: nothing left to resume
    return result


def _frame_keys(cfg: DictConfig, **changes: Any) -> DictConfig:
    """The keys of one frame's optimization, with ``changes``: no progress GIF, no step checkpoints, no resume."""
    each = cfg.copy()
    with open_dict(each):
        each.snapshot_every, each.checkpoint_every, each.resume = 0, 0, None
        for key, value in changes.items():
            each[key] = value
    return each


@recipe(
    paths=("style", "mask"),
    numbers={"steps_next": (int, 0, True), "lr_next": (float, 0, True), "temporal_weight": (float, 0, False)},
    lists=WEIGHTS,
    ignores={"content": "each frame of input= is the content in turn", **UNTILED, **VIDEO},
)
def style_video(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Style transfer frame by frame. Frame ``k`` starts from painted frame ``k - 1`` warped along the flow (the new
    frame where the flow fails) and takes ``steps_next`` steps at one octave, with a temporal loss
    (``temporal_weight``) holding it to that warped frame where the flow holds, so the painting moves with the scene.
    ``flow=none`` starts from the painted frame unmoved, without the temporal loss."""
    _opaque(cfg, recipe)
    check_content_layer(cfg, str(cfg.model.name), check_number(cfg, "content_weight", strict=False))  # each frame's
    view = style_view(cfg, recipe)
    first = _frame_keys(cfg)
    steps = int(check_number(cfg, "steps_next", int, 0))  # every later frame: one octave, its own steps and rate
    later = _frame_keys(cfg, octaves=1, steps=steps, lr=check_number(cfg, "lr_next"))
    weight = check_number(cfg, "temporal_weight", float, 0, strict=False)
    name = [""]

    def make(k: int, frame: torch.Tensor, before: torch.Tensor | None, moved: Motion | None) -> Rendered:
        torch.manual_seed(int(cfg.seed))
        if before is None:
            out, name[0], _ = paint(first, view, frame)
            return out
        carried, mask = carry_over(before.to(view.device), frame.to(view.device), moved)
        fresh = match_colors(frame.to(view.device), carried)  # what is new starts in the painting's colours
        start = mask * carried + (1 - mask) * fresh
        if cfg.colors == "luminance":  # the painting is made in grey, the photo's colours put back at the end
            start, carried = luminance(start), luminance(carried)
        extra = temporal(carried, mask, weight) if moved is not None and weight > 0 else None
        out, _, _ = paint(later, view, frame, start, extra=extra)
        return out

    return run_clip(cfg, folder, recipe, view, make, lambda: name[0] or "style")


@recipe(numbers={"blend": (float, 0, False), "steps_next": (int, 0, True)}, objective=True, ignores=VIDEO)
def dream_video(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """DeepDream of a clip. Frame ``k`` starts from dream ``k - 1`` warped along the flow, blended with the new frame
    (``blend``: the dream's share; the new frame alone where the flow fails), and is dreamed on with the usual
    octaves, so the dream flows with the scene and grows where new things come in."""
    _opaque(cfg, recipe)
    blend = check_number(cfg, "blend", float, 0, strict=False)
    if blend > 1:
        raise UserError(
            f"blend={cfg.blend} is not valid; give the carried dream's share from 0 to 1, such as blend=0.5"
        )
    view = load_view(cfg)
    objective = build_objective(cfg, view)
    first = _frame_keys(cfg)
    later = _frame_keys(cfg, steps=int(check_number(cfg, "steps_next", int, 0)))  # it adds to a dream carried over

    def make(k: int, frame: torch.Tensor, before: torch.Tensor | None, moved: Motion | None) -> Rendered:
        base = frame.to(view.device)
        if before is not None:
            carried, mask = carry_over(before.to(view.device), base, moved)
            base = base + blend * mask * (carried - base)
        sizes = octave_sizes((base.shape[-2], base.shape[-1]), cfg.octaves, float(cfg.octave_scale))
        generator = seeded(cfg.seed, k)
        return optimize_octaves(
            first if before is None else later, view, sizes, lambda hw: objective, base=base, generator=generator
        )

    return run_clip(cfg, folder, recipe, view, make, lambda: objective.name)
