"""A static ``index.html`` for a run, a sweep or a whole outputs folder: thumbnails, GIFs, overrides and metrics.

    dreamloom gallery outputs/multirun/2026-11-22/19-30-05_channel
    dreamloom gallery recipe=channel            # every channel run under outputs/ -> outputs/index_channel.html

Every folder below the given one that holds a ``metrics.json`` is a run (or an ``error.txt``: a sweep's job that
failed, shown with its error). The page links the pictures where they
lie (paths relative to the page), so it opens from disk with no server, and its table sorts by any column (click
a heading, or open the page as ``index.html#sort=seconds``, ``#sort=-seconds`` for largest first).

A run folder that cannot be read (files that are not UTF-8, not JSON or YAML, too deep or too large) is shown
without what could not be read, and the page replaces only a page the gallery wrote itself (it carries
:data:`MARK`), never a user's own ``index.html``.
"""

from __future__ import annotations

import html
import math
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from engine.errors import UserError, digits, missing_or
from engine.export import STORED_LIMIT, atomic_write, plain_yaml, read_metrics, read_run_text
from engine.images import is_folder

__all__ = ["Run", "find_runs", "write_gallery"]

SHOWN = ["steps", "seconds", "iterations_per_second", "loss_first", "loss_last", "seed"]
"""Metrics shown first as sortable columns, when a run has them; every other number a run reports follows."""
PICTURES = ["image.png"]
MOVING = ["progress.gif", "interpolation.gif", "video.gif"]
MARK = '<meta name="generator" content="dreamloom-gallery">'
"""What every page the gallery writes carries in its head: an ``index.html`` without it is the user's own."""
FORMER_MARK = " runs. Click a column to sort by it.</p>"
"""What the pages written before :data:`MARK` carry near their top: those are replaced too."""
SHORT = 2000
"""The most characters of a run's error or overrides shown on the page."""
DEEPEST = 8
"""The deepest nesting of a run's metrics whose numbers are shown (``flicker.output`` is 2)."""
MOST_COLUMNS = 100
"""The most metric columns a page shows (a sweep's runs report a dozen or so)."""


def _short(text: str) -> str:
    return text if len(text) <= SHORT else text[:SHORT] + " …"


def _overrides(folder: Path) -> list[str] | None:
    """A run's Hydra overrides, less Hydra's own (and the run name a ``resume=`` adds); None when the file is missing
    (a rerun or an API run, made without Hydra's command line), none when it is unreadable or refused as
    :func:`~engine.export.plain_yaml` refuses it (aliases that expand to gigabytes, too large)."""
    text = read_run_text(folder / ".hydra" / "overrides.yaml", STORED_LIMIT + 1)
    if text is None:
        return None
    try:
        found = plain_yaml(text) if text is not None else []
    except (ValueError, RecursionError, yaml.YAMLError):
        found = []
    found = [str(o) for o in found] if isinstance(found, list) else []
    resumed = any(o.startswith("resume=") for o in found)
    return [o for o in found if not o.startswith("hydra.") and not (resumed and o.startswith("name="))]


class Run:
    """One run folder: where it is, its overrides and metrics."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder, self.name = folder, str(folder.relative_to(root)) if folder != root else folder.name
        self.metrics = read_metrics(folder)
        self.recorded = _overrides(folder)
        self.overrides = self.recorded or []
        failed = read_run_text(folder / "error.txt", SHORT + 1)
        self.error = None if failed is None else _short(failed.strip())
        self.numbers = dict(_numbers(self.metrics))

    @property
    def recipe(self) -> str | None:
        """The run's recipe, from its metrics or (for a failed job) its overrides."""
        named = self.metrics.get("recipe")
        given = [o.split("=", 1)[1] for o in self.overrides if o.startswith("recipe=")]
        return str(named) if named else (given[0] if given else None)


def _numbers(metrics: dict[str, Any], prefix: str = "", depth: int = 1) -> list[tuple[str, float]]:
    """Every number in a run's metrics, nested ones as ``outer.inner`` (``flicker.output``), down to
    :data:`DEEPEST` levels."""
    found: list[tuple[str, float]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            found += _numbers(value, f"{prefix}{key}.", depth + 1) if depth < DEEPEST else []
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((prefix + key, value))
    return found


def find_runs(root: Path, recipe: str | None = None) -> list[Run]:
    """Every run at or below ``root`` (of ``recipe`` only, when given), in folder order (a sweep's jobs by number)."""
    if not is_folder(root):
        raise UserError(
            f"'{_named(root)}' {missing_or(root, 'is not a folder')}; pass a run or sweep folder such as "
            "outputs/multirun/<date>/<time>"
        )
    found = [*root.rglob("metrics.json"), *root.rglob("error.txt")]  # error.txt: a sweep's job that failed
    folders = sorted({p.parent for p in found}, key=_natural)
    runs = [Run(f, root) for f in folders]
    if recipe is not None:
        runs = [r for r in runs if r.recipe == recipe]
    if not runs:
        which = f" of recipe={recipe}" if recipe else ""
        raise UserError(f"'{_named(root)}' holds no runs{which} (no metrics.json below it); pass a run or sweep folder")
    return runs


def _natural(path: Path) -> list[tuple[int, int | str]]:
    """A sort key that puts ``2`` before ``10`` and numbered folders before named ones (``1`` before ``x``)."""
    return [(0, int(part)) if digits(part) else (1, part) for part in path.parts]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        shown = f"{value:.4g}" if math.isfinite(value) else str(value)
        return f'<td data-v="{value}">{shown}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td data-v="{value}">{value}</td>'
    return f"<td>{html.escape('' if value is None else _short(str(value)))}</td>"


def _url(path: Path, page: Path) -> str:
    """``path`` as a link from ``page``: relative and percent-quoted below the page's folder (``./`` first, so no
    folder name reads as a scheme such as ``javascript:``), a ``file:`` URI elsewhere."""
    if page.parent in path.parents:  # quoted as the bytes the system names it by (a name need not be UTF-8)
        return "./" + quote(os.fsencode(path.relative_to(page.parent).as_posix()), safe="/")
    return path.resolve().as_uri()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder that can be listed but not entered
        return False


def _media(run: Run, page: Path) -> str:
    if run.error:
        return f"<em>failed: {html.escape(run.error)}</em>"
    parts = []
    for name in PICTURES + MOVING:
        path = run.folder / name
        if _is_file(path):
            link = html.escape(_url(path, page))
            parts.append(f'<a href="{link}"><img src="{link}" alt="{html.escape(name)}" loading="eager"></a>')
    return "".join(parts) or "<em>no picture</em>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">{mark}<title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }}
th {{ cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }}
th.sorted::after {{ content: " ▲"; }} th.sorted.down::after {{ content: " ▼"; }}
img {{ height: 128px; margin-right: 6px; image-rendering: auto; }}
code {{ font-size: 12px; }}
td.media {{ white-space: nowrap; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{count} runs. Click a column to sort by it.</p>
<table id="runs"><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table>
<script>
const table = document.getElementById("runs");
table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {{
  const down = th.classList.contains("sorted") && !th.classList.contains("down");
  table.querySelectorAll("th").forEach(h => h.classList.remove("sorted", "down"));
  th.classList.add("sorted"); if (down) th.classList.add("down");
  const key = r => {{
    const c = r.children[col]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
  const rows = [...table.tBodies[0].rows].sort((a, b) => {{
    const x = key(a), y = key(b); const o = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return down ? -o : o; }});
  rows.forEach(r => table.tBodies[0].appendChild(r));
}}));
window.addEventListener("load", () => {{
  const wanted = decodeURIComponent(location.hash).match(/^#sort=(-?)(.+)$/);
  const th = wanted && [...table.querySelectorAll("th")].find(h => h.textContent === wanted[2]);
  if (th) {{ th.click(); if (wanted[1]) th.click(); }}
  const shown = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.loaded = shown + "/" + document.images.length;
}});
</script>
</body></html>
"""


def _named(path: Path) -> str:
    """A path as an answer names it: at most 200 characters (:class:`UserError` keeps it on one line)."""
    return str(path)[:200]


def _check_page(page: Path) -> None:
    """Refuse to replace anything at ``page`` but a page the gallery wrote itself (one that carries :data:`MARK`)."""
    try:
        mode = page.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserError(f"cannot look at '{_named(page)}' ({e.strerror}); pass another folder") from None
    if stat.S_ISREG(mode):
        try:
            with page.open("rb") as f:
                head = f.read(4096)
            if MARK.encode() in head or FORMER_MARK.encode() in head:
                return
        except OSError:
            pass
    what = "a folder" if stat.S_ISDIR(mode) else "a link" if stat.S_ISLNK(mode) else "a file"
    raise UserError(
        f"'{_named(page)}' is {what} that dreamloom gallery did not write, and it is not replaced; "
        "move it away (or delete it) and run dreamloom gallery again"
    )


def _page_text(runs: list[Run], page: Path, title: str) -> str:
    """The page: one row a run, its pictures, recipe, overrides and numbers (the most common numbers first)."""
    found = {name for r in runs for name in r.numbers}
    columns = ([m for m in SHOWN if m in found] + sorted(found - set(SHOWN)))[:MOST_COLUMNS]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", "images", "recipe", "overrides", *columns])
    rows = []
    for run in runs:
        overrides = _short(" ".join(run.overrides)) or ("(defaults)" if run.recorded is not None else "(not recorded)")
        name = run.name + (" (interrupted)" if run.metrics.get("interrupted") is True else "")
        cells = [
            f"<td>{html.escape(name)}</td>",
            f'<td class="media">{_media(run, page)}</td>',
            _cell(run.metrics.get("recipe")),
            f"<td><code>{html.escape(overrides)}</code></td>",
            *(_cell(run.numbers.get(c)) for c in columns),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return PAGE.format(mark=MARK, title=html.escape(title), count=len(runs), head=head, rows="\n".join(rows))


def write_gallery(root: Path, recipe: str | None = None) -> Path:
    """Write ``root/index.html`` for every run at or below ``root`` (``root/index_RECIPE.html`` for the runs of one
    recipe); returns its path. Raises UserError where a page the gallery did not write is in the way, or the page
    cannot be written."""
    runs = find_runs(root, recipe)
    page = root / ("index.html" if recipe is None else f"index_{recipe}.html")
    _check_page(page)
    title = f"dreamloom: {root}" + (f", recipe={recipe}" if recipe else "")
    data = _page_text(runs, page, title).encode("utf-8", "replace")  # a name that is not UTF-8 shows as "?"

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    try:
        return atomic_write(page, write)
    except OSError as e:
        raise UserError(
            f"could not write '{_named(page)}' ({e.strerror}); free some space or make the folder writable, "
            "then run dreamloom gallery again"
        ) from None
