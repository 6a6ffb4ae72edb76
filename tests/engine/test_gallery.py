"""Sweeps and their gallery: a multirun makes one folder per job, and index.html shows them in a real browser."""

from __future__ import annotations

import contextlib
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
from tests.helpers import command

pytestmark = pytest.mark.slow


def _dreamloom(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command started in ``cwd``: a sweep as its own process (Hydra's multirun), the rest in this one."""
    if "-m" in args:
        return subprocess.run(
            [sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True, timeout=600
        )
    with contextlib.chdir(cwd):
        code, err = command(list(args))
    return subprocess.CompletedProcess(list(args), code, "", err)


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
    assert missing.returncode == 2 and "nowhere' does not exist" in missing.stderr, missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    (tmp_path / "a.txt").write_text("x")
    a_file = _dreamloom("gallery", str(tmp_path / "a.txt"), cwd=tmp_path)
    assert a_file.returncode == 2 and "a.txt' is not a folder" in a_file.stderr, a_file.stderr


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


def _run(folder: Path, metrics: str = '{"recipe": "channel", "seconds": 1.0}') -> Path:
    """A run folder with a ``metrics.json``, as a render leaves one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(metrics)
    return folder


def _gallery_answer(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``dreamloom gallery`` answers a refused folder with (it exits 2)."""
    from engine.cli import gallery

    with pytest.raises(SystemExit) as done:
        gallery(list(args))
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith("dreamloom: error: ") and len(err.splitlines()) == 1, err
    return err


def test_a_folder_named_like_a_key_is_still_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import gallery

    sweep = _run(tmp_path / "lr=0.1" / "0").parent
    gallery([str(sweep)])
    assert (sweep / "index.html").is_file() and "wrote" in capsys.readouterr().err
    err = _gallery_answer(str(tmp_path / "steps=3"), capsys=capsys)  # no such folder: a key gallery does not take
    assert "gallery takes one folder and at most one recipe=NAME" in err
    for odd in ("a=" + "0" * 300, "~nosuchuser=1"):  # a name too long for the system, a user this machine lacks
        assert "gallery takes one folder" in _gallery_answer(odd, capsys=capsys)


def test_run_folders_named_by_numbers_and_words_sort_together(tmp_path: Path) -> None:
    from engine.gallery import find_runs

    for name in ("x", "10", "2", "²", "1", "b"):
        _run(tmp_path / name)
    assert [r.name for r in find_runs(tmp_path)] == ["1", "2", "10", "b", "x", "²"]


def test_files_that_are_not_utf8_are_shown_with_their_bytes_replaced(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    (_run(tmp_path / "0") / ".hydra").mkdir()
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_bytes(b"- channel=1\n- note=caf\xe9\n")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "error.txt").write_bytes(b"channel \xff\xfe is out of range\n")
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "metrics.json").write_bytes(b'{"seconds": 2.0, "note": "\xff"}')
    page = write_gallery(tmp_path).read_text()
    assert "channel=1 note=caf\ufffd" in page and "failed: channel \ufffd\ufffd is out of range" in page
    assert page.count("<tr>") == 1 + 3 and 'data-v="2.0"' in page


def test_linked_files_in_a_run_folder_bring_no_other_files_text_into_the_page(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    secret = tmp_path / "secret.txt"
    secret.write_text("- PRIVATE-TEXT=1\n")
    runs = tmp_path / "runs"
    (runs / "0").mkdir(parents=True)
    (runs / "0" / "error.txt").symlink_to(secret)  # a shared folder's "failed job" pointing at a private file
    _run(runs / "1")
    (runs / "1" / ".hydra").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "overrides.yaml").symlink_to(secret)
    _run(runs / "2")
    (runs / "2" / "metrics.json").unlink()
    (runs / "2" / "metrics.json").symlink_to(secret)
    page = write_gallery(runs).read_text()
    assert "PRIVATE" not in page


def test_a_metrics_file_nested_too_deep_is_a_run_without_numbers(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    _run(tmp_path / "0", "[" * 100_000 + "]" * 100_000)
    _run(tmp_path / "1", '{"a": ' * 990 + "1" + "}" * 990)  # deep, but not too deep for json to read
    _run(tmp_path / "2")
    page = write_gallery(tmp_path).read_text()
    assert page.count("<tr>") == 1 + 3 and "<th>seconds</th>" in page


def test_overrides_with_yaml_aliases_are_not_expanded(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    lines = ["- &a0 [x, x, x, x, x, x, x, x, x, x]"]  # read, the last line alone is 10**7 x's
    lines += [f"- &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    (_run(tmp_path / "0") / ".hydra").mkdir()
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("\n".join(lines) + "\n")
    (_run(tmp_path / "1") / ".hydra").mkdir()
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- channel=4\n- hydra.verbose=true\n")
    page = write_gallery(tmp_path)
    assert page.stat().st_size < 20_000
    text = page.read_text()
    assert "<code>(defaults)</code>" in text and "<code>channel=4</code>" in text


def test_a_folder_in_the_way_of_the_page_is_answered_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path / "0")
    (tmp_path / "index.html").mkdir()
    err = _gallery_answer(str(tmp_path), capsys=capsys)
    assert f"'{tmp_path / 'index.html'}' is a folder" in err and "move it away" in err
    assert (tmp_path / "index.html").is_dir()


def test_a_users_own_index_html_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.gallery import write_gallery

    _run(tmp_path / "0")
    mine = tmp_path / "index.html"
    mine.write_text("<h1>my own page</h1>\n")
    err = _gallery_answer(str(tmp_path), capsys=capsys)
    assert f"'{mine}' is a file that dreamloom gallery did not write" in err and "move it away" in err
    assert mine.read_text() == "<h1>my own page</h1>\n"
    mine.unlink()
    first = write_gallery(tmp_path).read_text()
    assert "dreamloom-gallery" in first
    _run(tmp_path / "1")  # a page the gallery wrote is replaced by the next one
    assert write_gallery(tmp_path).read_text().count("<tr>") == first.count("<tr>") + 1
    before_the_mark = (
        "<html><head><title>runs</title></head><body><h1>runs</h1>\n<p>2 runs. Click a column to sort by it.</p>"
    )
    mine.write_text(before_the_mark)  # as the gallery wrote its pages before they carried the mark
    assert "dreamloom-gallery" in write_gallery(tmp_path).read_text()


def test_names_and_metrics_that_are_not_unicode_text_still_make_a_page(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    odd = os.fsdecode(b"run\xff")  # a folder name that is not UTF-8
    _run(tmp_path / odd, '{"\\ud800": 1, "seconds": 3.0}')  # a key that is half a character
    Image.new("RGB", (8, 8)).save(tmp_path / odd / "image.png")
    page = write_gallery(tmp_path).read_text()
    assert 'src="./run%FF/image.png"' in page and "<th>?</th>" in page


def test_the_page_says_which_runs_were_stopped_and_which_overrides_are_unknown(tmp_path: Path) -> None:
    from engine.gallery import write_gallery

    _run(tmp_path / "rerun")  # no .hydra: a rerun or an API run
    _run(tmp_path / "stopped", '{"recipe": "class", "seconds": 1.0, "interrupted": true}')
    (tmp_path / "stopped" / ".hydra").mkdir()
    (tmp_path / "stopped" / ".hydra" / "overrides.yaml").write_text("- recipe=class\n")
    _run(tmp_path / "resumed")
    (tmp_path / "resumed" / ".hydra").mkdir()
    (tmp_path / "resumed" / ".hydra" / "overrides.yaml").write_text("- resume=/runs/stopped\n- name=class_resumed\n")
    page = write_gallery(tmp_path).read_text()
    rows = {
        row.split("</td>")[0].removeprefix("<tr><td>"): row for row in page.split("\n") if row.startswith("<tr><td>")
    }
    assert "(not recorded)" in rows["rerun"] and "stopped (interrupted)" in rows
    assert "resume=/runs/stopped" in rows["resumed"] and "name=class_resumed" not in rows["resumed"]
