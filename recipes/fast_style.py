"""Fast style transfer (Johnson et al., 2016): ``style_train`` trains a feed-forward network on one style once;
``style_fast`` paints a picture, a folder or a clip with it, one pass per picture.

Training minimizes the losses of ``recipe=style`` (the model's style layers with their smoothing, its content layer,
each a relative error) over random crops of the content pictures: the packaged samples, or ``folder=`` (COCO, your
own photos). Every ``snapshot_every`` steps a fixed ``preview`` picture is painted for ``progress.gif``;
``checkpoint.pt`` is saved every ``checkpoint_every`` steps and on Ctrl-C, and ``resume=FOLDER`` carries on from it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from engine.callbacks import Progress, Recorder, Snapshots
from engine.checkpoints import CHECKPOINT, FORMAT, frames_state, load_checkpoint, restore_frames
from engine.checks import check_number
from engine.errors import UserError, missing_or
from engine.export import contact_sheet, loss_curves, save_png, save_state
from engine.flow import Motion
from engine.images import SAMPLE_PHOTOS, is_folder, is_input_folder, load_image, resize_long, resize_to, to_pil
from engine.models import ModelView, resolve_device
from engine.results import Interrupted, Rendered, RunResult, config_yaml, write_view
from engine.runner import load_view, recipe, snapshots
from engine.spec import NO_PICTURE, NO_PROGRESS, unread
from engine.stylenet import BLOCKS, NETWORK, WIDTHS, StyleNet, load_network, network_state, paint_tiled
from objectives.base import INPUT, Objective
from objectives.transfer import blend_weights, content, histogram, style, style_grams
from recipes.clips import carry_over, is_clip, run_clip
from recipes.folders import picture_files, square_crop
from recipes.transfer import WEIGHTS, as_list, style_layer_keys, styles_seen

__all__ = ["style_fast", "style_train"]

MIN_TRAIN, MIN_PAINT = 32, 16
"""The smallest training crops (the loss network's deepest style layer sees 1/16 of them), and painted pictures."""
JITTER = 8
"""Training crops shift by 0 to JITTER - 1 pixels, so the painter learns no grid in step with the loss net's strides."""
CLIP_FLOW, CLIP_BLEND = "dis", 0.7
"""A clip's ``flow`` and ``blend`` when they are not given: each painted frame is blended 0.7 with the one before,
carried along the DIS flow (flicker 2.45 on the sample clip, against 3.27 for ``style_video``)."""


def _picture_files(folder: Any, key: str) -> list[str]:
    path = Path(str(folder)).expanduser()
    if not is_folder(path):
        raise UserError(
            f"{key}={folder} {missing_or(path, 'is not a folder')}; pass {key}=DIR, a folder of PNG or JPEG pictures"
        )
    files = [str(p) for p in picture_files(path)[0]]
    if not files:
        raise UserError(f"{key}={folder} holds no pictures; put PNG or JPEG files in it")
    return files


class _Crops:
    """Random square crops (half to all of the short side, flipped half the time) of the content pictures."""

    def __init__(self, sources: list[str], side: int, generator: torch.Generator) -> None:
        self.sources, self.side, self.generator = sources, side, generator
        self.cache: dict[str, torch.Tensor] = {}

    def _picture(self, source: str) -> torch.Tensor:
        if source in self.cache:
            return self.cache[source]
        picture = load_image(source, "folder")
        if len(self.cache) < 256:  # a large folder (COCO) is read as it goes
            self.cache[source] = picture
        return picture

    def batch(self, n: int) -> torch.Tensor:
        draws = torch.rand(n, 4, generator=self.generator)
        index = torch.randint(len(self.sources), (n,), generator=self.generator)
        pieces = []
        for (scale, fy, fx, flip), i in zip(draws.tolist(), index.tolist(), strict=True):
            picture = self._picture(self.sources[i])
            h, w = picture.shape[-2:]
            c = max(8, int(min(h, w) * (0.5 + 0.5 * scale)))
            y, x = int(fy * (h - c + 1)), int(fx * (w - c + 1))
            piece = resize_to(picture[..., y : y + c, x : x + c], (self.side, self.side))
            pieces.append(piece.flip(-1) if flip < 0.5 else piece)
        return torch.cat(pieces)


@dataclass
class _Losses:
    """The style loss (with the colour loss when ``colors`` is set) and the content loss of a painted batch against
    the photos it came from."""

    view: ModelView
    style: Objective
    content_layer: str
    content_weight: float
    colors: Objective | None = None

    def __call__(
        self, painted: torch.Tensor, photos: torch.Tensor, shift: tuple[int, int] = (0, 0)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The style (and colour) loss and the content loss, both pictures first cropped by ``shift`` pixels at the
        top left: a loss network whose first layer has a stride of 2 otherwise teaches the painter a grid in step with
        it."""
        dy, dx = shift
        painted, photos = painted[..., dy:, dx:], photos[..., dy:, dx:]
        with torch.no_grad():
            target = self.view(photos, [self.content_layer])[self.content_layer]
        keep = content(self.content_layer, target, self.content_weight)
        acts = self.view(painted, list(dict.fromkeys([*self.style.layers, self.content_layer])))
        looks = self.style(acts)
        if self.colors is not None:
            looks = looks + self.colors({INPUT: painted})
        return looks, keep(acts)


def _losses(cfg: DictConfig, view: ModelView) -> tuple[_Losses, list[str]]:
    content_layer, layers, layer_weights = style_layer_keys(cfg, view)
    if not content_layer:
        raise UserError(f"training needs a content layer; pass content_layer=LAYER for model {view.name}")
    sources = [str(s) for s in as_list(cfg.style)]
    if not sources:
        raise UserError("no style picture; pass style=PICTURE (a path or a sample such as style=ihc)")
    blend = blend_weights([float(w) for w in as_list(cfg.style_weights)] or None, len(sources))
    scaled = [s.to(view.device) for s in styles_seen(cfg, [load_image(s, "style") for s in sources], int(cfg.size))]
    grams = style_grams(view, scaled, layers, blend, str(cfg.smoothing))
    weights = dict(zip(layers, layer_weights, strict=True)) if layer_weights else None
    objective = check_number(cfg, "style_weight") * style(grams, weights, str(cfg.smoothing))
    colors = check_number(cfg, "histogram_weight", strict=False)
    keep = check_number(cfg, "content_weight", strict=False)
    return _Losses(view, objective, content_layer, keep, histogram(scaled, colors, blend) if colors else None), sources


@dataclass
class _Training:
    """The state of a training run: what a checkpoint saves and ``resume=`` puts back."""

    net: StyleNet
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    frames: Snapshots
    step: int = 0
    seconds: float = 0.0
    curves: list[list[float]] = field(default_factory=list)  # per step: style loss, content loss

    def state(self, cfg: DictConfig) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "config": config_yaml(cfg),
            "network": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "seconds": self.seconds,
            "curves": torch.tensor(self.curves, dtype=torch.float64).reshape(-1, 2),
            **frames_state(self.frames),
        }

    def save(self, cfg: DictConfig, folder: Path) -> None:
        save_state(folder / CHECKPOINT, self.state(cfg))


def _training(cfg: DictConfig, device: torch.device) -> _Training:
    width = int(check_number(cfg, "width", int, 4, strict=False))
    blocks = int(check_number(cfg, "blocks", int, 0, strict=False))
    if width > WIDTHS[1] or blocks > BLOCKS[1]:
        raise UserError(
            f"width={width} blocks={blocks} is larger than a style network needs; use width<=128 blocks<=16"
        )
    net = StyleNet(width, blocks).to(device)
    t = _Training(
        net, torch.optim.Adam(net.parameters(), lr=check_number(cfg, "lr")), torch.Generator(), snapshots(cfg)
    )
    t.generator.manual_seed(int(cfg.seed))
    if cfg.get("resume"):
        saved = load_checkpoint(cfg.resume)
        try:
            net.load_state_dict(saved["network"])
            t.optimizer.load_state_dict(saved["optimizer"])
        except (KeyError, RuntimeError, ValueError):
            raise UserError(f"{cfg.resume} holds no style network training to carry on; start it again") from None
        t.generator.set_state(saved["generator"])
        t.step, t.seconds, t.curves = int(saved["step"]), float(saved["seconds"]), saved["curves"].tolist()
        restore_frames(saved, t.frames)
    return t


def _snapshot(t: _Training, preview: torch.Tensor, last: bool = False) -> None:
    frame = to_pil(paint_tiled(t.net, preview)[0])
    frame.thumbnail((t.frames.max_side, t.frames.max_side))
    t.frames.add(frame, last)


def _train(cfg: DictConfig, folder: Path, t: _Training, losses: _Losses, crops: _Crops, preview: torch.Tensor) -> bool:
    """Train until ``steps`` (or Ctrl-C: then True), saving checkpoints and progress frames on the way."""
    steps, every, shots = int(cfg.steps), int(cfg.checkpoint_every or 0), int(cfg.snapshot_every or 0)
    bar, device = Progress("training "), preview.device
    bar.on_start(steps, lambda: preview)
    try:
        while t.step < steps:
            start = time.perf_counter()
            photos = crops.batch(int(cfg.batch)).to(device)
            shift = torch.randint(JITTER, (2,), generator=t.generator).tolist()
            style_loss, content_loss = losses(t.net(photos), photos, (shift[0], shift[1]))
            loss = style_loss + content_loss
            if not torch.isfinite(loss):
                raise UserError(f"the training loss became NaN or infinite at step {t.step + 1}; lower lr={cfg.lr}")
            t.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t.optimizer.step()
            t.curves.append([float(style_loss.detach()), float(content_loss.detach())])
            t.step += 1
            t.seconds += time.perf_counter() - start
            bar.on_step(t.step - 1, loss.detach(), lambda: preview)
            if shots and (t.step % shots == 0 or t.step == 1):
                _snapshot(t, preview)
            if every and t.step % every == 0:
                t.save(cfg, folder)
    except KeyboardInterrupt:
        t.save(cfg, folder)
        return True
    return False


def _sheet(style_source: str, preview: torch.Tensor, painted: torch.Tensor) -> Any:
    """The style, the preview photo and the photo painted, side by side as squares."""
    side = min(preview.shape[-2:])
    panels = [square_crop(p.cpu(), side) for p in (load_image(style_source, "style"), preview, painted)]
    return contact_sheet(torch.cat(panels), columns=3, labels=["style", "photo", "painted"])


def _loss_keys(cfg: DictConfig) -> dict[str, Any]:
    """The losses a network was trained with, as plain values for its file."""
    keys = (
        *("content_layer", "style_layers", "layer_weights", "smoothing"),
        *("content_weight", "style_weight", "histogram_weight"),
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return {key: resolved.get(key) for key in keys}


def _mean(rows: list[list[float]], column: int) -> float:
    return round(sum(r[column] for r in rows) / len(rows), 5)


TRAINING = ("steps", "lr", "batch", "checkpoint_every")  # the keys of optimizing a picture that train the network
ONE_PASS = unread([*NO_PICTURE, *NO_PROGRESS], "the network paints each picture in one pass")


@recipe(
    paths=("style", "folder", "preview"),
    numbers={"width": (int, 4, False), "blocks": (int, 0, False), "style_scale": (float, 0, True)}
    | {"histogram_weight": (float, 0, False)},
    penalties=False,
    lists=WEIGHTS,
    ignores={"input": "", "tile_size": "", **unread(NO_PICTURE, "it trains a network, not a picture", TRAINING)},
)
def style_train(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Train a style network (:class:`engine.stylenet.StyleNet`) on ``style`` with crops of the content pictures;
    writes ``network.pt``, the painted ``preview`` as ``image.png``, ``progress.gif`` and ``losses.png``."""
    side = cfg.size if isinstance(cfg.size, int) and not isinstance(cfg.size, bool) else 0
    if side < MIN_TRAIN:  # one side: training crops are square
        raise UserError(f"size={cfg.size} is not valid; give the square crops' side, {MIN_TRAIN} or more, such as 256")
    view = load_view(cfg)
    losses, sources = _losses(cfg, view)
    content_sources = list(SAMPLE_PHOTOS) if cfg.folder in (None, "samples") else _picture_files(cfg.folder, "folder")
    preview = load_image(str(cfg.preview), "preview")
    preview = resize_long(preview, cfg.size).to(view.device)
    t = _training(cfg, view.device)
    crops = _Crops(content_sources, side, t.generator)
    if t.step == 0 and cfg.snapshot_every:
        _snapshot(t, preview)
    interrupted = _train(cfg, folder, t, losses, crops, preview)
    if not interrupted and cfg.snapshot_every and t.step % int(cfg.snapshot_every):
        _snapshot(t, preview, last=True)  # the finished network ends the GIF
    info = {"style": sources, "size": side, "model": str(cfg.model.name), "steps": t.step, **_loss_keys(cfg)}
    save_state(folder / NETWORK, network_state(t.net, **info))
    curves = {"style": [c[0] for c in t.curves], "content": [c[1] for c in t.curves]}
    save_png(folder / "losses.png", loss_curves(curves))
    head, tail = t.curves[:5] or [[0.0, 0.0]], t.curves[-20:] or [[0.0, 0.0]]
    result = write_view(
        cfg, folder, recipe, _sheet(sources[0], preview, paint_tiled(t.net, preview)), gif=t.frames, steps=t.step,
        seconds=round(t.seconds, 3), seconds_per_step=round(t.seconds / max(t.step, 1), 4),
        style_loss_first=_mean(head, 0), style_loss=_mean(tail, 0), content_loss=_mean(tail, 1),
        pictures=len(content_sources), styles=sources, width=t.net.width, blocks=t.net.blocks, interrupted=interrupted,
    )  # fmt: skip
    if interrupted:
        raise Interrupted(folder, t.step)
    (folder / CHECKPOINT).unlink(missing_ok=True)
    return result


def _sized(cfg: DictConfig, picture: torch.Tensor) -> torch.Tensor:
    """``picture`` at ``size`` (its long side), or as it is with ``size=null``; one line when it is too small."""
    if cfg.size is not None:
        picture = resize_long(picture, cfg.size)
    return _big_enough(picture)


def _big_enough(picture: torch.Tensor) -> torch.Tensor:
    short, long = sorted(picture.shape[-2:])
    if short < MIN_PAINT:
        raise UserError(
            f"a picture of {picture.shape[-1]}x{picture.shape[-2]} px is too small to paint (its short side needs "
            f"{MIN_PAINT} px); give size={max(MIN_PAINT * 4, -(-long * MIN_PAINT // short))} or more"
        )
    return picture


def _timed(paint: Any, picture: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    painted = paint(picture)
    return painted, time.perf_counter() - start


def _fast_folder(cfg: DictConfig, folder: Path, recipe: str, paint: Any, info: dict[str, Any]) -> RunResult:
    """Paint every picture of the ``input`` folder into ``images/``, with a contact sheet as ``image.png``."""
    files, thumbs, seconds, interrupted = _picture_files(cfg.input, "input"), [], 0.0, False
    for file in files:  # every picture readable and large enough before anything is written
        _sized(cfg, load_image(file))
    text = config_yaml(cfg)
    stems = Counter(Path(f).stem for f in files)  # cat.jpg and cat.png: cat_jpg.png and cat_png.png, neither lost
    try:
        for file in files:
            painted, took = _timed(paint, _sized(cfg, load_image(file)))
            seconds += took
            path = Path(file)
            stem = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.')}"
            save_png(folder / "images" / f"{stem}.png", painted[0], text)
            thumbs.append(square_crop(painted, 160))
    except KeyboardInterrupt:
        interrupted = True
    names = [Path(f).name for f in files[: len(thumbs)]]
    sheet = contact_sheet(torch.cat(thumbs), labels=names) if thumbs else to_pil(torch.full((1, 3, 8, 8), 0.5)[0])
    result = write_view(
        cfg, folder, recipe, sheet, pictures=names, seconds=round(seconds, 3), styles=info.get("style"),
        seconds_per_picture=round(seconds / max(len(thumbs), 1), 4), interrupted=interrupted,
    )  # fmt: skip
    if interrupted:
        raise Interrupted(folder, len(thumbs), "picture")
    return result


def _fast_clip(cfg: DictConfig, folder: Path, recipe: str, paint: Any) -> RunResult:
    """Paint a clip frame by frame; with a flow, each painted frame is blended (``blend``) with the one before
    carried along the flow where it holds, which steadies the painting on the scene."""
    blend = check_number(cfg, "blend", float, 0, strict=False, high=1)  # the carried frame's share
    view = load_view(cfg)  # the judge of the content drift

    def make(k: int, frame: torch.Tensor, before: torch.Tensor | None, moved: Motion | None) -> Rendered:
        painted, took = _timed(paint, _big_enough(frame))
        if before is not None and moved is not None and blend > 0:
            carried, mask = carry_over(before, painted, moved)
            painted = painted + blend * mask * (carried - painted)
        record = Recorder()
        record.steps, record.seconds = 1, took
        return Rendered(painted, record, Snapshots(0), False)

    return run_clip(cfg, folder, recipe, view, make, lambda: "style network")


@recipe(paths=("net",), numbers={"blend": (float, 0, False)}, penalties=False, ignores=ONE_PASS)
def style_fast(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Paint ``input`` (a picture, a folder of pictures or a clip) with a network ``style_train`` made, in one pass
    per picture; pictures larger than ``tile_size`` are painted in blended tiles (bounded memory)."""
    net, info = load_network(str(cfg.net or ""), resolve_device(cfg.device))
    tile = int(check_number(cfg, "tile_size", int, 64, strict=False)) if cfg.tile_size is not None else 1 << 30
    paint = partial(paint_tiled, net, tile=tile)
    source = str(cfg.input or "")
    if not source:
        raise UserError("recipe=style_fast needs something to paint; pass input=PICTURE, a folder, or input=clip")
    if is_clip(source):
        with open_dict(cfg):  # a clip's defaults, stored in the run's config as used
            cfg.flow, cfg.blend = cfg.flow or CLIP_FLOW, CLIP_BLEND if cfg.blend is None else cfg.blend
        return _fast_clip(cfg, folder, recipe, paint)
    given = [key for key in ("frames", "fps", "flow", "blend") if cfg.get(key) is not None]
    if given:
        keys = ", ".join(f"{k}=" for k in given[:-1]) + (" and " if len(given) > 1 else "") + f"{given[-1]}="
        verb, them = ("shape", "them") if len(given) > 1 else ("shapes", "it")
        raise UserError(
            f"{keys} {verb} a clip; input={source} is not one, so drop {them} "
            f"(rerunning an older picture: add {' '.join(f'{k}=null' for k in given)})"
        )
    if is_input_folder(source):
        return _fast_folder(cfg, folder, recipe, paint, info)
    picture = _sized(cfg, load_image(source))
    painted, seconds = _timed(paint, picture)
    sheet = to_pil(painted[0])
    return write_view(
        cfg, folder, recipe, sheet, seconds=round(seconds, 3), image_size=list(painted.shape[-2:]),
        styles=info.get("style"), trained_steps=info.get("steps"), interrupted=False,
    )  # fmt: skip
