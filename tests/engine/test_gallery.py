"""Sweeps and their gallery: a multirun makes one folder per job, and index.html shows them in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.configs import compose

pytestmark = pytest.mark.slow


def _dreamloom(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _chromium() -> str:
    """Debian's chromium, installed here when it is missing (the test machine runs as root with apt)."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, check=False, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, timeout=300)
            subprocess.run(install, check=False, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and cannot be installed here (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    args = ["-m", "recipe=channel", "channel=0,1,2,9999", "size=32", "steps=3", f"hydra.sweep.dir={root}"]
    done = _dreamloom(*args, cwd=root.parent)
    assert done.returncode == 2, done.stderr  # the other jobs ran, but a script must see that one failed
    failed = [line for line in done.stderr.splitlines() if line.startswith("dreamloom: error: ")]
    assert len(failed) == 2 and "job 3" in failed[0] and "channel=9999" in failed[0], done.stderr
    assert "1 job(s) of the sweep failed" in failed[1], done.stderr
    return root


def test_a_multirun_writes_one_folder_per_job(sweep: Path) -> None:
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1", "2", "3"]
    assert "channel 9999 is out of range" in (sweep / "3" / "error.txt").read_text()  # the bad job, kept
    for job in jobs[:3]:
        assert (sweep / job / "image.png").is_file() and (sweep / job / "metrics.json").is_file()
        assert f"channel={job}" in (sweep / job / ".hydra" / "overrides.yaml").read_text()


def test_the_gallery_lists_every_job_with_its_overrides(sweep: Path) -> None:
    done = _dreamloom("gallery", str(sweep), cwd=sweep.parent)
    assert done.returncode == 0, done.stderr
    page = (sweep / "index.html").read_text()
    assert page.count("<tr>") == 1 + 4  # the header and one row a job
    assert "failed: channel 9999 is out of range" in page
    for job in range(3):
        assert f"channel={job}" in page and f'src="./{job}/image.png"' in page and f'src="./{job}/progress.gif"' in page


def test_the_gallery_loads_its_thumbnails_in_chromium(sweep: Path, tmp_path: Path) -> None:
    browser = _chromium()
    _dreamloom("gallery", str(sweep), cwd=sweep.parent)
    url = (sweep / "index.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-loaded="(\d+)/(\d+)"', dom)
    assert loaded is not None, dom[-2000:]
    assert loaded.group(1) == loaded.group(2) == "6"  # three pictures and three GIFs, all decoded
    shot = tmp_path / "page.png"
    size = "--window-size=1200,900"
    subprocess.run([browser, *flags, f"--screenshot={shot}", size, url], capture_output=True, timeout=120)
    with Image.open(shot) as img:
        grey = np.asarray(img.convert("L"), dtype=np.int32)
    # the page is white, light grey and black text; painted thumbnails (128 px high) fill it with middle tones
    painted = int(((grey > 40) & (grey < 215)).sum())
    assert painted > 3 * 128 * 128, f"only {painted} pixels of picture: the thumbnails did not paint"


def _rows(dom: str) -> list[dict[str, str]]:
    """The gallery table as the browser left it: one dict per row, heading -> cell text."""
    heads = re.findall(r"<th[^>]*>(.*?)</th>", dom)
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        rows.append(dict(zip(heads, cells, strict=True)))
    return rows


def test_the_gallery_sorts_by_a_metric_in_chromium(sweep: Path) -> None:
    browser = _chromium()
    _dreamloom("gallery", str(sweep), cwd=sweep.parent)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"]
    order = {}
    for wanted in ("seconds", "-seconds"):
        url = (sweep / "index.html").as_uri() + f"#sort={wanted}"
        dom = subprocess.run([browser, *flags, url], capture_output=True, text=True, timeout=120).stdout
        seconds = [float(r["seconds"]) for r in _rows(dom) if r["seconds"]]
        assert len(seconds) == 3, dom[-2000:]  # the failed job has no time
        order[wanted] = seconds
    assert order["seconds"] == sorted(order["seconds"]) and order["-seconds"] == sorted(order["seconds"])[::-1]
    assert order["seconds"] != order["-seconds"]


def test_a_gallery_of_one_recipe(sweep: Path) -> None:
    done = _dreamloom("gallery", str(sweep), "recipe=channel", cwd=sweep.parent)
    assert done.returncode == 0, done.stderr
    page = (sweep / "index_channel.html").read_text()
    assert page.count("<tr>") == 1 + 4 and "recipe=channel" in page
    assert "<th>iterations_per_second</th>" in page and "<th>loss_last</th>" in page  # numbers a run reports
    for args, words in (
        (("recipe=deepdream",), "holds no runs of recipe=deepdream"),
        (("recipe=chanel",), "unknown recipe 'chanel'; did you mean channel"),
    ):
        refused = _dreamloom("gallery", str(sweep), *args, cwd=sweep.parent)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert words in refused.stderr


def test_a_slurm_launcher_config_composes() -> None:
    cfg = compose(["recipe=channel", "hydra/launcher=slurm"], hydra=True)
    local = compose(["recipe=channel"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1
    assert local.hydra.launcher._target_.endswith("JoblibLauncher") and local.hydra.launcher.n_jobs >= 1


def test_a_gallery_of_a_folder_without_runs_is_refused(tmp_path: Path) -> None:
    done = _dreamloom("gallery", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("dreamloom: error: "), done.stderr
    assert "holds no runs" in done.stderr and len(done.stderr.splitlines()) == 1
    missing = _dreamloom("gallery", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr and len(missing.stderr.splitlines()) == 1


HOSTILE = ["javascript:alert(document.domain)", "a#b?c%d", "sp ace & é", "data:text,hi"]
"""Run folder names that break or hijack links unless the gallery quotes them."""


def test_hostile_folder_names_stay_relative_links_that_run_nothing(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    root = tmp_path / "outputs"
    for i, name in enumerate(HOSTILE):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (24, 24), (60 * i, 120, 200)).save(root / name / "image.png")
        (root / name / "metrics.json").write_text('{"recipe": "channel", "seconds": 1.0}')
    (root / "listed" / "x").mkdir(parents=True)
    (root / "listed" / "x" / "metrics.json").write_text("[1, 2]")  # a foreign metrics file: a row, no numbers
    page = write_gallery(root)
    links = re.findall(r'(?:href|src)="([^"]*)"', page.read_text())
    assert len(links) == 2 * len(HOSTILE) and all(link.startswith("./") for link in links), links
    assert not any(":" in link.split("/")[1] for link in links)  # no folder name reads as a scheme
    # the browser resolves every link to a file beside the page, and finds every picture behind it
    probe = page.with_name("probe.html")
    script = """<script>window.addEventListener("load", () => {
      const schemes = [...document.links].map(a => new URL(a.getAttribute("href"), location.href).protocol);
      const shown = [...document.images].filter(i => i.naturalWidth > 0).length;
      document.body.dataset.probe = [...new Set(schemes)].join(",") + "|" + shown + "/" + document.images.length;
    });</script>"""
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"]
    dom = subprocess.run([_chromium(), *flags, probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found is not None, dom[-2000:]
    assert found.group(1) == f"file:|{len(HOSTILE)}/{len(HOSTILE)}"
