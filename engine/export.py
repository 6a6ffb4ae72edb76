"""Writing results: PNG with the run's config in a text chunk, progress GIF, metrics JSON, contact sheets.

Every file is written to a temporary name first and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image, ImageDraw, PngImagePlugin

from engine.errors import UserError
from engine.images import to_pil

__all__ = [
    "CONFIG_KEY",
    "SHEET_PIXELS",
    "atomic_write",
    "check_plain_yaml",
    "check_sheet",
    "contact_sheet",
    "figure_picture",
    "loss_curves",
    "plain_yaml",
    "read_metrics",
    "read_png_config",
    "read_run_text",
    "save_gif",
    "save_json",
    "save_png",
    "save_state",
    "write_text",
]

CONFIG_KEY = "dreamloom-config"
"""Name of the PNG text chunk holding the resolved config of the run that made the picture."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` then rename the file to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)  # writers read it
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; results are ordinary files
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def save_state(path: str | os.PathLike[str], state: object) -> Path:
    """``torch.save`` into ``path`` whole or not at all, through an open file, so the archive's records are named
    ``archive/…`` rather than after the temporary file (the same state gives the same bytes)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(state, f)

    return atomic_write(path, write)


def save_png(path: str | os.PathLike[str], img: torch.Tensor | Image.Image, config_text: str | None = None) -> Path:
    """Save one picture as PNG, with ``config_text`` in the ``dreamloom-config`` text chunk."""
    pil = img if isinstance(img, Image.Image) else to_pil(img)
    info = PngImagePlugin.PngInfo()
    if config_text:
        info.add_itxt(CONFIG_KEY, config_text)
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG", pnginfo=info))


def read_png_config(path: str | os.PathLike[str]) -> str | None:
    """The config text a dreamloom PNG carries, or None (also for a picture too large to open or damaged inside, or
    text chunks too large to read). Raises OSError for a file that is not a picture."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, not warned of
            with Image.open(path) as img:
                if img.width * img.height > (Image.MAX_IMAGE_PIXELS or math.inf):
                    return None  # larger than any run makes: not decoded whole for its text
                img.load()
                text = getattr(img, "text", {}) or {}
    except (ValueError, SyntaxError, Image.DecompressionBombError):  # SyntaxError: a broken chunk inside
        return None
    found = text.get(CONFIG_KEY)
    return found if isinstance(found, str) else None


STORED_LIMIT = 1_000_000
"""The most characters of YAML read from a file a user was given (a stored config is a few kilobytes)."""
STORED_DEPTH = 32
"""The deepest nesting of lists and mappings read from such a file (a config nests four or five deep)."""


def check_plain_yaml(text: str) -> None:
    """Refuse YAML from a file a user was given before it is read: over :data:`STORED_LIMIT` characters, with aliases
    (``*name``), which let a few lines expand to gigabytes when read, or nested past :data:`STORED_DEPTH` (which
    overflows the reader's stack). Raises ValueError (or yaml.YAMLError for text that is not YAML)."""
    if len(text) > STORED_LIMIT:
        raise ValueError(f"longer than {STORED_LIMIT} characters")
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ValueError("it uses YAML aliases")
        depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
        if depth > STORED_DEPTH:
            raise ValueError(f"nested more than {STORED_DEPTH} deep")


def plain_yaml(text: str) -> Any:
    """YAML from a file a user was given, read as plain data once :func:`check_plain_yaml` lets it through."""
    check_plain_yaml(text)
    return yaml.safe_load(text)


def save_gif(
    path: str | os.PathLike[str], frames: Sequence[Image.Image], duration_ms: int | Sequence[int] = 100
) -> Path | None:
    """Save frames as a looping GIF (the last frame held three times as long); ``duration_ms``: every frame's, or
    each frame's own. None when there are no frames."""
    if not frames:
        return None
    each = [duration_ms] * len(frames) if isinstance(duration_ms, int) else list(duration_ms)
    durations = [*each[:-1], each[-1] * 3]
    size = frames[-1].size
    pics = [f.convert("RGB").resize(size) for f in frames]
    return atomic_write(
        path,
        lambda tmp: pics[0].save(
            tmp, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0, optimize=False
        ),
    )


def save_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Save a dict as indented JSON."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return write_text(path, text)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Save text atomically."""

    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    return atomic_write(path, write)


SHEET_PIXELS = 64_000_000
"""The most pixels a sheet of thumbnails may have (about 200 MB as 8-bit RGB, far more as the float tiles it is made
from); a larger ``thumb=`` is answered with the largest that fits."""


def check_sheet(tiles: int, tile: tuple[int, int], thumb: int) -> None:
    """One line when ``tiles`` thumbnails of ``tile`` pixels (made at ``thumb=``) would pass :data:`SHEET_PIXELS`."""
    pixels = tiles * tile[0] * tile[1]
    if pixels > SHEET_PIXELS:
        largest = max(1, int(thumb * math.sqrt(SHEET_PIXELS / pixels)))
        raise UserError(
            f"thumb={thumb} would make a sheet of {pixels / 1e6:.0f} megapixels ({tiles} tiles of "
            f"{tile[1]}×{tile[0]}); use thumb={largest} or less"
        )


def contact_sheet(
    images: torch.Tensor, columns: int | None = None, pad: int = 4, labels: Sequence[str] | None = None
) -> Image.Image:
    """Lay a batch of pictures out on a white grid, with an optional caption under each. Shape: ``(B, 3, H, W)``."""
    b, _, h, w = images.shape
    cols = columns or math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    caption = 14 if labels else 0
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad + caption) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(b):
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), pad + r * (h + pad + caption)
        sheet.paste(to_pil(images[i]), (x, y))
        if labels:
            _caption(draw, (x + 2, y + h + 1), str(labels[i]), w - 2)
    return sheet


_WORD_GAP = 4
"""Pixels between a caption's words: the default font's own space is about 2 px and words run together."""


def _caption(draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, width: int) -> None:
    """Draw ``text`` at ``at`` within ``width`` pixels, cutting characters from its middle (``…``) when it is too
    long, so that both the start and the end (a file's extension, a percentage) stay readable."""

    def size(t: str) -> float:
        words = t.split(" ")
        return sum(draw.textlength(word) for word in words) + _WORD_GAP * (len(words) - 1)

    cut = 0
    shown = text
    while size(shown) > width and cut < len(text):
        cut += 1
        keep = len(text) - cut
        shown = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]
    x, y = at
    for word in shown.split(" "):
        draw.text((x, y), word, fill="black")
        x += round(draw.textlength(word)) + _WORD_GAP


def figure_picture(fig: Any) -> Image.Image:
    """A matplotlib figure drawn to an RGB picture, and closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def loss_curves(series: Mapping[str, Sequence[float]], window: int = 20) -> Image.Image:
    """Losses over the steps, each a running mean over ``window`` steps, on a log scale, as a picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, values in series.items():
        data = torch.tensor(list(values), dtype=torch.float64)
        n = min(window, len(data))
        if n:
            ax.plot(range(n, len(data) + 1), data.unfold(0, n, 1).mean(-1).numpy(), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (running mean of {window} steps)")
    ax.legend()
    fig.tight_layout()
    return figure_picture(fig)


def read_run_text(path: Path, most: int) -> str | None:
    """The first ``most`` characters of a text file a run left (bytes that are not UTF-8 replaced), or None when
    there is none or it cannot be read (a folder, a pipe, no permission) or is a link, or sits in a linked folder
    (``.hydra``): a run writes its own files, so a link could only bring another file's text into the page."""
    try:
        if path.is_symlink() or path.parent.is_symlink() or not path.is_file():
            return None
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.read(most)
    except OSError:
        return None


def read_metrics(folder: Path) -> dict[str, Any]:
    """A run's ``metrics.json``; empty when it is missing, unreadable, not a JSON object, too deep or too large."""
    text = read_run_text(folder / "metrics.json", STORED_LIMIT + 1)
    if text is None or len(text) > STORED_LIMIT:
        return {}
    try:
        metrics = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return metrics if isinstance(metrics, dict) else {}  # a foreign file: no numbers
