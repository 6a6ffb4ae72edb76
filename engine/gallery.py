"""A static ``index.html`` for a run, a sweep or a whole outputs folder: thumbnails, GIFs, overrides and metrics.

    dreamloom gallery outputs/multirun/2026-11-22/19-30-05_channel
    dreamloom gallery recipe=channel            # every channel run under outputs/ -> outputs/index_channel.html

Every folder below the given one that holds a ``metrics.json`` is a run (or an ``error.txt``: a sweep's job that
failed, shown with its error). The page links the pictures where they
lie (paths relative to the page), so it opens from disk with no server, and its table sorts by any column (click
a heading, or open the page as ``index.html#sort=seconds``, ``#sort=-seconds`` for largest first).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from engine.errors import UserError
from engine.export import write_text
from engine.images import is_folder

__all__ = ["Run", "find_runs", "write_gallery"]

SHOWN = ["steps", "seconds", "iterations_per_second", "loss_first", "loss_last", "seed"]
"""Metrics shown first as sortable columns, when a run has them; every other number a run reports follows."""
PICTURES = ["image.png"]
MOVING = ["progress.gif", "interpolation.gif", "video.gif"]


class Run:
    """One run folder: where it is, its overrides and metrics."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder, self.name = folder, str(folder.relative_to(root)) if folder != root else folder.name
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        self.metrics: dict[str, Any] = metrics if isinstance(metrics, dict) else {}  # a foreign file: no numbers
        overrides = folder / ".hydra" / "overrides.yaml"
        try:
            found = yaml.safe_load(overrides.read_text()) if overrides.is_file() else []
        except (OSError, yaml.YAMLError):
            found = []
        found = found if isinstance(found, list) else []
        self.overrides = [str(o) for o in found if not str(o).startswith("hydra.")]
        failed = folder / "error.txt"
        self.error = failed.read_text().strip() if failed.is_file() else None
        self.numbers = dict(_numbers(self.metrics))

    @property
    def recipe(self) -> str | None:
        """The run's recipe, from its metrics or (for a failed job) its overrides."""
        named = self.metrics.get("recipe")
        given = [o.split("=", 1)[1] for o in self.overrides if o.startswith("recipe=")]
        return str(named) if named else (given[0] if given else None)


def _numbers(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Every number in a run's metrics, nested ones as ``outer.inner`` (``flicker.output``)."""
    found: list[tuple[str, float]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            found += _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((prefix + key, value))
    return found


def find_runs(root: Path, recipe: str | None = None) -> list[Run]:
    """Every run at or below ``root`` (of ``recipe`` only, when given), in folder order (a sweep's jobs by number)."""
    if not is_folder(root):
        raise UserError(
            f"'{str(root)[:200]}' is not a folder; pass a run or sweep folder such as outputs/multirun/<date>/<time>"
        )
    found = [*root.rglob("metrics.json"), *root.rglob("error.txt")]  # error.txt: a sweep's job that failed
    folders = sorted({p.parent for p in found}, key=_natural)
    runs = [Run(f, root) for f in folders]
    if recipe is not None:
        runs = [r for r in runs if r.recipe == recipe]
    if not runs:
        which = f" of recipe={recipe}" if recipe else ""
        raise UserError(f"'{root}' holds no runs{which} (no metrics.json below it); pass a run or sweep folder")
    return runs


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in path.parts]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        shown = f"{value:.4g}" if math.isfinite(value) else str(value)
        return f'<td data-v="{value}">{shown}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td data-v="{value}">{value}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _url(path: Path, page: Path) -> str:
    """``path`` as a link from ``page``: relative and percent-quoted below the page's folder (``./`` first, so no
    folder name reads as a scheme such as ``javascript:``), a ``file:`` URI elsewhere."""
    if page.parent in path.parents:
        return "./" + quote(path.relative_to(page.parent).as_posix(), safe="/")
    return path.resolve().as_uri()


def _media(run: Run, page: Path) -> str:
    if run.error:
        return f"<em>failed: {html.escape(run.error)}</em>"
    parts = []
    for name in PICTURES + MOVING:
        path = run.folder / name
        if path.is_file():
            link = html.escape(_url(path, page))
            parts.append(f'<a href="{link}"><img src="{link}" alt="{html.escape(name)}" loading="eager"></a>')
    return "".join(parts) or "<em>no picture</em>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
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


def write_gallery(root: Path, recipe: str | None = None) -> Path:
    """Write ``root/index.html`` for every run at or below ``root`` (``root/index_RECIPE.html`` for the runs of one
    recipe); returns its path."""
    runs = find_runs(root, recipe)
    page = root / ("index.html" if recipe is None else f"index_{recipe}.html")
    found = {name for r in runs for name in r.numbers}
    columns = [m for m in SHOWN if m in found] + sorted(found - set(SHOWN))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", "pictures", "recipe", "overrides", *columns])
    rows = []
    for run in runs:
        overrides = " ".join(run.overrides) or "(defaults)"
        cells = [
            f"<td>{html.escape(run.name)}</td>",
            f'<td class="media">{_media(run, page)}</td>',
            _cell(run.metrics.get("recipe")),
            f"<td><code>{html.escape(overrides)}</code></td>",
            *(_cell(run.numbers.get(c)) for c in columns),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    title = f"dreamloom: {root}" + (f", recipe={recipe}" if recipe else "")
    text = PAGE.format(title=html.escape(title), count=len(runs), head=head, rows="\n".join(rows))
    return write_text(page, text)
