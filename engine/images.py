"""Reading pictures from disk or from the packaged samples, and turning them into tensors."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import UserError, close_matches

__all__ = [
    "MIN_SIDE",
    "SAMPLES",
    "SAMPLE_NAMES",
    "SAMPLE_PHOTOS",
    "check_side",
    "checkerboard",
    "colormap",
    "composite",
    "expanded",
    "from_pil",
    "input_picture",
    "is_file",
    "is_folder",
    "is_input_folder",
    "load_image",
    "quantize",
    "quiet_size_warning",
    "resize_long",
    "resize_to",
    "resize_wrapped",
    "target_size",
    "to_pil",
]


@contextlib.contextmanager
def quiet_size_warning() -> Iterator[None]:
    """Silence Pillow's size warning (two lines on stderr): the callers refuse such a picture in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def is_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder; False, not an error, for a name the system cannot use (one too long)."""
    try:
        return Path(path).expanduser().is_dir()
    except (OSError, RuntimeError):  # RuntimeError: ~name of a user this machine does not have
        return False


def is_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file (``~`` read as the home folder); False, not an error, for a name the system cannot
    use."""
    try:
        return Path(path).expanduser().is_file()
    except (OSError, RuntimeError):
        return False


def expanded(text: str, key: str) -> Path:
    """``text`` as a path with ``~`` read as the home folder; one line for ``~name`` of a user this machine lacks."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text.split("/")[0]
        raise UserError(f"{key} '{text}': this machine has no user {user}; write the path in full") from None


def is_input_folder(source: str | os.PathLike[str]) -> bool:
    """Whether an ``input`` value names a folder of pictures: a folder, unless it is a sample's bare name, which always
    means the sample (a run folder ``hydra.run.dir=chelsea`` is no input; ``./chelsea`` names a folder of that name)."""
    return str(source) not in SAMPLE_NAMES and is_folder(source)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import skimage.data

        return np.asarray(getattr(skimage.data, name)())

    return read


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(str(path)) as img:
        return np.asarray(img.convert("RGB"))


def _halves() -> np.ndarray:
    """A two-region mask: black on the left, white on the right (``mask=halves`` gives two styles a side each)."""
    mask = np.zeros((256, 256, 3), np.uint8)
    mask[:, 128:] = 255
    return mask


def _strokes() -> np.ndarray:
    """A painting made of brush strokes, drawn here (the samples hold no painting): thick strokes of a blue, yellow
    and white palette follow a swirling flow, each made of bristle lines of slightly different colours."""
    from PIL import ImageDraw

    rng = np.random.default_rng(7)
    side = 512
    canvas = Image.new("RGB", (side, side), (28, 44, 92))
    draw = ImageDraw.Draw(canvas)
    palette = np.array(
        [
            [24, 52, 130],
            [40, 90, 170],
            [70, 130, 200],
            [230, 200, 70],
            [245, 230, 150],
            [250, 250, 235],
            [20, 30, 60],
            [200, 120, 40],
        ]
    )
    odds = np.array([0.2, 0.2, 0.15, 0.12, 0.08, 0.05, 0.12, 0.08])
    for _ in range(1400):
        x, y = rng.uniform(0, side, 2)
        colour, width, length = palette[rng.choice(len(palette), p=odds)], rng.uniform(5, 14), rng.uniform(20, 60)
        points = [(x, y)]
        for _ in range(int(length // 5)):  # follow a field of swirls round four centres
            angle = math.atan2(y - side / 2, x - side / 2) + math.pi / 2 + 0.9 * math.sin(x / 60) * math.cos(y / 70)
            x, y = x + 5 * math.cos(angle), y + 5 * math.sin(angle)
            points.append((x, y))
        normal = np.array([-math.sin(angle), math.cos(angle)])
        for offset in np.linspace(-width / 2, width / 2, 5):
            shade = tuple(int(c) for c in np.clip(colour + rng.normal(0, 14, 3), 0, 255))
            draw.line([(px + offset * normal[0], py + offset * normal[1]) for px, py in points], fill=shade, width=3)
    return np.asarray(canvas)


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    **{
        n: _skimage(n)
        for n in (
            "chelsea",
            "coffee",
            "astronaut",
            "rocket",
            "hubble_deep_field",
            "immunohistochemistry",
            "brick",
            "grass",
            "gravel",
            "logo",
        )
    },
    "ihc": _skimage("immunohistochemistry"),
    "grace_hopper": _grace_hopper,
    "strokes": _strokes,
    "halves": _halves,
}
"""Sample pictures that ship with scikit-image and matplotlib, usable as ``input=NAME``."""

SAMPLE_NAMES = frozenset({*SAMPLES, "clip", "photos"})
"""The bare names that always mean a packaged sample (a picture, the sample clip, faithfulness's ten photos), even
beside a folder of that name."""
SAMPLE_PHOTOS = tuple(n for n in SAMPLES if n not in ("immunohistochemistry", "halves", "logo", "strokes"))
"""The samples that are photos: not ihc's long name, the mask, the graphic or the painting drawn in code."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert greyscale, 16-bit, palette, RGBA (over white) and CMYK pictures to 8-bit RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("it holds values that are not numbers (NaN or infinite)")
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        top = 1.0 if img.mode == "F" and arr.size and 0 <= arr.min() and arr.max() <= 1 else top  # floats in [0, 1]
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode in ("P", "PA", "LA", "RGBA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def _read_file(path: Path, key: str = "input") -> np.ndarray:
    if path.is_dir():
        raise UserError(
            f"{key} '{path}' is a folder, not a picture; pass a picture file, or a sample such as {key}=chelsea"
        )
    if not path.is_file():  # a pipe or a device would be read until it ends, which may be never
        raise UserError(f"{key} '{path}' is not a regular file (a pipe or a device); pass a picture file")
    try:
        with quiet_size_warning(), Image.open(path) as img:
            limit = Image.MAX_IMAGE_PIXELS or math.inf
            if img.width * img.height > limit:  # refused from the header, before anything is decoded
                raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels")
            img.load()
            return np.asarray(_to_rgb(img))
    except Image.DecompressionBombError as e:
        raise UserError(f"{key} '{path}' is too large to read safely ({e}); shrink it below 89 megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = (
            "is not a picture PIL can read" if isinstance(e, UnidentifiedImageError) else f"could not be read ({e})"
        )
        raise UserError(f"{key} '{path}' {reason}; pass a PNG, JPEG or other common picture") from None


def load_image(source: str | os.PathLike[str], key: str = "input") -> torch.Tensor:
    """Read a picture file or a sample name (``chelsea``, ``grace_hopper`` …) as RGB in [0, 1].

    Args:
        source: a file path or a sample name.
        key: the config key the picture came from, named in the message when it cannot be read.

    Returns:
        A float tensor. Shape: ``(1, 3, H, W)``.
    """
    text = str(source)
    path = expanded(text, key)
    try:
        found = path.exists()
    except OSError as e:  # a name too long for the file system, and the like
        raise UserError(f"{key} '{text[:60]}…' is not a usable path ({e.strerror}); give a shorter path") from None
    if found and not (text in SAMPLES and path.is_dir()):  # a folder bearing a sample's name is no picture
        arr = _read_file(path, key)
    elif text in SAMPLES:
        arr = SAMPLES[text]()
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = arr[..., :3]
    elif path.is_symlink():
        raise UserError(f"{key} '{text}' is a link that leads to no file (or to itself); give the picture's own path")
    elif text == "photos":  # the packaged set, which recipe=faithfulness reads as a folder
        raise UserError(
            f"{key}=photos (the ten sample photos) is read by recipe=faithfulness only; pass one picture, such as "
            f"{key}=chelsea"
        )
    else:
        hint = close_matches(text, SAMPLES)
        shown = [n for n in SAMPLES if n not in ("immunohistochemistry", "halves")] + (
            ["halves"] if key == "mask" else []
        )
        raise UserError(
            f"{key} '{text}' does not exist; give a picture path or a sample name ({', '.join(shown)})"
            f"{' — ' + hint if hint else ''}"
        )
    return _tensor(arr)


def _tensor(arr: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float() / 255.0).unsqueeze(0)


def from_pil(img: Image.Image) -> torch.Tensor:
    """A PIL picture as RGB in [0, 1], as :func:`load_image` reads it from a file. Shape: ``(1, 3, H, W)``."""
    return _tensor(np.asarray(_to_rgb(img)))


MAX_SIDE = 65_536
"""The longest side a ``size`` may ask for (a 64K picture needs 48 GB as floats): beyond it, a size is a mistake."""


def _side(value: object) -> int | None:
    if isinstance(value, Integral) and not isinstance(value, bool) and 1 <= int(value) <= MAX_SIDE:
        return int(value)
    return None


def _sides(size: object) -> list[int]:
    """The one or two whole numbers of a ``size`` key; :class:`UserError` for text, fractions, zero or three sides."""
    listed = isinstance(size, Sequence) and not isinstance(size, str)
    items = list(size) if isinstance(size, Sequence) and listed else [size]
    sides = [_side(s) for s in items]
    if len(sides) in (1, 2) and None not in sides:
        return [s for s in sides if s is not None]
    if size is None:
        raise UserError("size=null (the picture's own size) does not apply here; give size=224 or size=[h,w]")
    shown = items if listed else f"'{size}'" if isinstance(size, str) else size  # text shows as text: '32'
    raise UserError(
        f"size={shown} is not a size; use a whole number of pixels up to {MAX_SIDE} such as size=224, or size=[h,w]"
    )


def target_size(size: int | Sequence[int], hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Turn the ``size`` key into ``(h, w)``.

    An integer is the long side of ``hw`` keeping its aspect ratio, or a square side when ``hw`` is None;
    a pair is ``[h, w]`` as given.
    """
    sizes = _sides(size)
    if len(sizes) == 2:
        return sizes[0], sizes[1]
    side = sizes[0]
    if hw is None:
        return side, side
    h, w = hw
    scale = side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_to(img: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize a picture batch to ``hw`` with antialiasing. Shape: ``(B, C, H, W) -> (B, C, h, w)``."""
    if tuple(img.shape[-2:]) == tuple(hw):
        return img
    return F.interpolate(img, size=hw, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def resize_long(img: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """:func:`resize_to` as the ``size`` key reads: an integer is the long side, the aspect ratio kept; a pair is
    ``[h, w]`` as given (:func:`target_size`)."""
    return resize_to(img, target_size(size, (img.shape[-2], img.shape[-1])))


def resize_wrapped(img: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize a picture that repeats (a tiling texture): each edge is filtered with the opposite edge as its
    neighbour, so the result repeats without a seam too. Shape: ``(B, C, H, W) -> (B, C, h, w)``."""
    if tuple(img.shape[-2:]) == tuple(hw):
        return img
    tiled = img.repeat(1, 1, 3, 3)
    h, w = hw
    return resize_to(tiled, (3 * h, 3 * w))[..., h : 2 * h, w : 2 * w]


def to_pil(img: torch.Tensor) -> Image.Image:
    """Turn one picture in [0, 1] into an 8-bit PIL image. Shape: ``(C, H, W)`` or ``(1, C, H, W)``."""
    if img.dim() == 4:
        img = img[0]
    arr = (img.detach().float().nan_to_num(0).clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def composite(picture: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """A picture with an alpha channel laid over ``background``; a picture without one as it is.
    Shape: ``(B, 4, H, W)`` over ``(B or 1, 3, H, W)`` -> ``(B, 3, H, W)``."""
    if picture.shape[-3] != 4:
        return picture
    a = picture[..., 3:, :, :]
    return picture[..., :3, :, :] * a + background.to(picture) * (1 - a)


def checkerboard(h: int, w: int, cell: int = 16) -> torch.Tensor:
    """Light and mid grey squares of ``cell`` pixels, the usual backdrop that shows transparency. ``(1, 3, h, w)``."""
    ys, xs = torch.arange(h)[:, None] // cell, torch.arange(w)[None, :] // cell
    return (0.6 + 0.3 * ((ys + xs) % 2).float()).expand(1, 3, h, w).clone()


def quantize(picture: torch.Tensor) -> torch.Tensor:
    """The picture as an 8-bit PNG holds it, so what is measured or carried on from is what was saved."""
    return (picture * 255).round() / 255


_STOPS = torch.tensor(
    [[0.05, 0.05, 0.30], [0.10, 0.50, 0.95], [0.30, 0.95, 0.40], [1.00, 0.80, 0.10], [0.85, 0.10, 0.05]]
)


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] to colours from dark blue through green and yellow to red. ``(H, W) -> (3, H, W)``."""
    v = values.clamp(0, 1) * (len(_STOPS) - 1)
    low = v.floor().long().clamp(max=len(_STOPS) - 2)
    t = (v - low).unsqueeze(0)
    stops = _STOPS.to(values.device)
    return stops[low].permute(2, 0, 1) * (1 - t) + stops[low + 1].permute(2, 0, 1) * t


MIN_SIDE = 16
"""The fewest pixels a side of any picture a run makes or shows."""


def input_picture(cfg: Any, recipe: str, device: torch.device) -> torch.Tensor:
    """The recipe's ``input`` picture at ``size`` (its long side), on ``device``; one error line when there is none."""
    if not cfg.get("input"):
        raise UserError(
            f"recipe={recipe} needs a picture; pass input=PICTURE (a path or a sample such as input=chelsea)"
        )
    picture = resize_long(load_image(cfg.input), cfg.size)
    check_side(cfg, picture.shape[-2:])
    return picture.to(device)


def check_side(cfg: Any, hw: Sequence[int]) -> None:
    """One line when ``size`` makes a picture under :data:`MIN_SIDE` pixels on a side (a view of a sliver)."""
    if min(hw) < MIN_SIDE:
        thin = max(hw) > 4 * min(hw) and isinstance(cfg.size, int)  # a thin picture's long side is what size= set
        fix = "give both sides, such as size=[64,64]" if thin else "use a larger size= (the model was trained at 224)"
        raise UserError(
            f"size={cfg.size} makes a picture {hw[1]} pixels wide and {hw[0]} high; pictures need at least "
            f"{MIN_SIDE} pixels a side, so {fix}"
        )
