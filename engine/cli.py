"""The ``dreamloom`` command: Hydra composes the recipe, the runner renders it, bad input gets one line.

Hydra's own failures (unknown recipe, mistyped key, bad syntax, an existing run folder) are caught by composing
the config once before Hydra's entry point runs, so they can be answered with one sentence and exit code 2
before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from engine.arguments import check_fixed_hydra_keys, check_flags, check_new_folder, check_sweep, folder_named
from engine.configs import GROUPS, compose, override_value, recipes
from engine.errors import WRITE_ERRORS, UserError, close_matches, digits, one_line
from engine.export import write_text
from engine.help import answer_help
from engine.images import expanded, is_folder
from engine.loop import STOP
from engine.results import (
    RESERVED,
    SAVING,
    Interrupted,
    claim,
    refuse_beside_resume,
    release,
    resumed_folder,
    shown,
    unmake,
)
from engine.runner import forget_unread, prepare_function, run_recipe
from engine.stored import rebuild
from recipes import CONFIG_DIR

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PROG = "dreamloom"
HYDRA_FILES = frozenset({".hydra", f"{PROG}.log", RESERVED})
"""What is in a run folder before the run writes anything: Hydra's files (``hydra.output_subdir`` and
``hydra.job.name``) and the mark of the run that claimed it."""
FOLDER_KEYS = ("resume=", "hydra.run.dir=", "hydra.sweep.dir=")
"""Keys that choose a folder, whatever + or ++ (Hydra's adding forms) come before them."""


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _discard(folder: Path | None) -> bool:
    """Remove a run folder that holds only what Hydra wrote at the start, so the same hydra.run.dir can be reused.

    Returns:
        False when the folder holds results (or anyone else's files) and was left as it is.
    """
    if folder is None or not folder.is_dir():
        return True
    release(folder)
    if not {p.name for p in folder.iterdir()} <= HYDRA_FILES:
        return False
    shutil.rmtree(folder / ".hydra", ignore_errors=True)
    (folder / f"{PROG}.log").unlink(missing_ok=True)
    unmake(folder)
    return True


def _stopped(folder: Path | None) -> NoReturn:
    """Answer Ctrl-C outside the optimization loop (which saves the picture so far itself) with one line."""
    if _discard(folder):
        print(f"{PROG}: interrupted before any result was written; nothing was saved", file=sys.stderr)
    else:
        print(f"{PROG}: interrupted while saving; what was saved is in {folder}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _sweep_stopped(folder: Path | None) -> NoReturn:
    """Answer Ctrl-C during a sweep: the jobs begun keep their folders, a stopped one what ``resume=`` needs."""
    if folder is not None and folder.is_dir():
        release(folder)  # the sweep is over: its folder is handed back before it is looked at
    for job in folder.iterdir() if folder is not None and folder.is_dir() else []:
        if job.is_dir() and digits(job.name):
            _discard(job)  # a job that was only being set up
    begun = _jobs(folder)
    if folder is None or not begun:
        if folder is not None and folder.is_dir() and {p.name for p in folder.iterdir()} <= {"multirun.yaml"}:
            (folder / "multirun.yaml").unlink(missing_ok=True)
            unmake(folder)
        _stopped(None)
    print(
        f"{PROG}: interrupted; the {begun} job(s) run or begun are in {shown(folder)} (one folder per job)",
        file=sys.stderr,
    )
    sys.exit(EXIT_INTERRUPTED)


def _terminated(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM: raise ``KeyboardInterrupt`` here, and leave word for the loop in case it gets lost; while
    results are being written, only leave word, so that they are written whole."""
    STOP.set()
    if SAVING.is_set():
        print(f"{PROG}: saving the results first", file=sys.stderr, flush=True)
        return
    raise KeyboardInterrupt


def preflight(args: list[str], chosen: bool) -> Path | None:
    """Compose the config as Hydra will and refuse bad overrides or an existing run folder, writing nothing.
    ``chosen``: whether the user named the run folder (a default name that is taken gets ``_2`` … instead).

    Returns:
        The run or sweep folder the overrides ask for, or None when Hydra handles the flags itself.
    """
    check_fixed_hydra_keys(args)
    if {"-m", "--multirun"} & set(args):
        printing = [a for a in args if a.split("=", 1)[0] in ("--cfg", "-c", "--resolve", "-p", "--package")]
        if printing:
            raise UserError(f"-m runs a sweep and {printing[0]} prints a config without running; use one or the other")
        return check_sweep(args)
    if any(a.startswith("-") for a in args):
        check_flags(args)
        return None  # --help, --cfg …: Hydra prints these itself
    cfg = compose(args, hydra=True)
    if not cfg.get("resume"):
        prepare_function(cfg)  # its module is read now, before Hydra makes the run folder
    run_dir = folder_named(cfg, "hydra.run.dir")
    check_new_folder(run_dir, "run", "hydra.run.dir=")
    return claim(run_dir, chosen, "hydra.run.dir=")


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _entry(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    with open_dict(cfg):  # the picks, kept in the picture's config so a rerun picks the same options
        cfg.choices = {group: hc.runtime.choices.get(group) for group in GROUPS}
    folder, recipe = Path(hc.runtime.output_dir), hc.runtime.choices.get("recipe") or str(cfg.name)
    if hc.mode != RunMode.MULTIRUN:
        _run_and_answer(cfg, folder, recipe)
        return
    job = f"job {hc.job.num} ({' '.join(hc.overrides.task)})"
    try:  # one job of a sweep: its failure is reported and kept, and the other jobs go on
        run_recipe(cfg, folder, recipe)
    except UserError as e:
        _job_failed(folder, job, str(e), f"{e}\n")
    except Interrupted as e:  # the sweep stops with this job: Hydra's launcher would go on to the next
        print(f"{PROG}: {one_line(f'{job}: {e}')}", file=sys.stderr)
        raise KeyboardInterrupt from None
    except Exception as e:  # a fault of ours in one job must not take down the others
        why = f"{type(e).__name__}: {e}".splitlines()[0]
        _job_failed(folder, job, f"failed unexpectedly ({why}); its traceback is in error.txt", traceback.format_exc())


def _job_failed(folder: Path, job: str, line: str, record: str) -> None:
    """Report a sweep job's failure in one line, keep ``record`` in its folder's ``error.txt`` and tally it."""
    with contextlib.suppress(OSError):
        write_text(folder / "error.txt", record)
    print(f"{PROG}: error: {one_line(f'{job}: {line}')}", file=sys.stderr)
    tally = os.environ.get(_FAILED_JOBS)
    if tally:  # the jobs may run in other processes: tell the command through a file it made
        with open(tally, "a", encoding="utf-8") as f:
            f.write(f"{folder}\n")


def _run_and_answer(cfg: DictConfig, folder: Path, recipe: str) -> None:
    """Run a composed config into ``folder``; answer a user's mistake, Ctrl-C or SIGTERM with one line."""
    try:
        result = run_recipe(cfg, folder, recipe)
    except UserError as e:
        _discard(folder)
        _fail(str(e))
    except Interrupted as e:
        release(folder)
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        _stopped(folder)
    except Exception:  # a fault of ours: the traceback is for a bug report, and the folder is not left locked
        _discard(folder)
        raise
    release(folder)
    STOP.clear()  # a signal that came while the results were written waited for them; they are whole now
    print(f"{PROG}: wrote {shown(result.folder)}", file=sys.stderr)


def _rerun_config(args: list[str]) -> tuple[DictConfig, Path]:
    """The run an earlier picture carries, rebuilt from the project's configs with ``key=value`` changes, and the new
    run's folder."""
    from engine.export import read_png_config

    if not args:
        raise UserError("rerun needs a picture; use: dreamloom rerun outputs/…/image.png [key=value ...]")
    source = expanded(args[0], "rerun")  # ~ as the home folder, also where the shell left it (quoted, zsh's key=~/…)
    if is_folder(source) and (source / "image.png").is_file():  # a run folder: its picture
        source = source / "image.png"
    if is_folder(source):
        jobs = sorted((p for p in source.iterdir() if p.is_dir() and digits(p.name)), key=lambda p: int(p.name))
        sweep = f" (a sweep's folder: pass one job's, such as {source / jobs[0].name})" if jobs else ""
        raise UserError(f"'{source}' holds no image.png{sweep}; pass the image.png of an earlier run or its folder")
    try:
        found = source.is_file()
    except OSError as e:  # a name too long for the file system
        raise UserError(f"'{str(source)[:60]}…' is not a usable path ({e.strerror}); give a shorter one") from None
    if not found:
        raise UserError(f"'{source}' does not exist; pass the image.png of an earlier run (or its folder)")
    if any(a.startswith("resume=") for a in args[1:]):
        raise UserError(
            "rerun starts the run again from its picture; to carry on a stopped run use dreamloom resume=FOLDER"
        )
    try:
        text = read_png_config(source)
    except OSError:
        text = None
    if not text:
        raise UserError(f"'{source}' carries no dreamloom config; pass the image.png that a dreamloom run wrote")
    folders = [a.split("=", 1)[1] for a in args[1:] if a.startswith("hydra.run.dir=")]
    changes = [a for a in args[1:] if not a.startswith("hydra.run.dir=")]
    cfg = rebuild(text, str(source), changes)
    forget_unread(cfg, str(source), changes)
    default = Path("outputs").absolute() / time.strftime("%Y-%m-%d") / time.strftime(f"%H-%M-%S_{cfg.name}_rerun")
    folder = Path(folders[-1]) if folders else default
    check_new_folder(folder, "run", "hydra.run.dir=")
    return cfg, claim(folder, bool(folders), "hydra.run.dir=")


def _resume_args(args: list[str]) -> list[str]:
    """With ``resume=FOLDER``, refuse other keys (the run carries on with its own) and put the new run beside the
    one it resumes, as ``FOLDER_resumed`` (unless ``hydra.run.dir=`` names another)."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not resume or resume[-1] in ("", "null"):
        return args
    refuse_beside_resume([a for a in args if not a.startswith(("resume=", "hydra."))], "hydra.run.dir=")
    from engine.checkpoints import resume_name

    home = str(expanded(resume[-1], "resume="))  # ~ as the home folder, also where the shell left it (zsh's key=~/…)
    if home != resume[-1]:
        resume[-1], args = home, [*(a for a in args if not a.startswith("resume=")), f"resume={override_value(home)}"]
    args = [*args, f"name={resume_name(resume[-1])}_resumed"]  # the checkpoint checked whole: no folder is made yet
    if any(a.startswith("hydra.run.dir=") for a in args):
        return args
    return [*args, f"hydra.run.dir={override_value(str(resumed_folder(resume[-1])))}"]


def rerun(args: list[str]) -> None:
    """``dreamloom rerun image.png [key=value ...]``, or ``render FOLDER size=…`` (:mod:`engine.render`)."""
    try:
        if args[:1] == ["render"]:
            from engine.render import render_folder

            return print(*(f"{PROG}: wrote {shown(p)}" for p in render_folder(args[1:])), sep="\n", file=sys.stderr)
        cfg, folder = _rerun_config(args)
    except UserError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _stopped(None)
    _run_and_answer(cfg, folder, str((cfg.get("choices") or {}).get("recipe") or cfg.name))  # name= may be anything


def gallery(args: list[str]) -> None:
    """``dreamloom gallery [FOLDER] [recipe=NAME]``: write FOLDER/index.html for the runs below it (FOLDER defaults to
    outputs; with recipe=NAME, FOLDER/index_NAME.html for that recipe's runs only)."""
    from engine.gallery import write_gallery

    names = recipes()
    picked = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")]
    folders = [a for a in args if not a.startswith("recipe=")]
    keys = [f for f in folders if "=" in f and not is_folder(f)]  # a folder may be named lr=0.1
    if len(folders) > 1 or len(picked) > 1 or keys:
        _fail("gallery takes one folder and at most one recipe=NAME; use: dreamloom gallery outputs/multirun/<date>")
    recipe = picked[0] if picked else None
    if recipe is not None and recipe not in names:
        hint = close_matches(recipe, names)
        _fail(f"unknown recipe '{recipe}'" + (f"; {hint}" if hint else "") + f" (recipes: {', '.join(names)})")
    try:
        page = write_gallery(expanded(folders[0], "gallery") if folders else Path("outputs"), recipe)
    except UserError as e:
        _fail(str(e))
    print(f"{PROG}: wrote {shown(page)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``dreamloom recipe=NAME [key=value ...]``, ``dreamloom rerun image.png [...]`` or
    ``dreamloom gallery FOLDER``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if answer_help(args):
        return
    STOP.clear()
    signal.signal(signal.SIGTERM, _terminated)  # a polite kill saves the picture so far, as Ctrl-C does
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (a background job)
        signal.signal(signal.SIGINT, _terminated)
    if args[:1] in (["rerun"], ["render"]):
        rerun(args[1:] if args[0] == "rerun" else args)
        return
    if args[:1] == ["gallery"]:
        gallery(args[1:])
        return
    args = [a.lstrip("+") if a.lstrip("+").startswith(FOLDER_KEYS) else a for a in args]  # +KEY: Hydra's adding form
    chosen = any(a.startswith("hydra.run.dir=") for a in args)
    try:
        args = _resume_args(args)
        run_dir = preflight(args, chosen)
    except UserError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _stopped(None)
    sweep = bool({"-m", "--multirun"} & set(args))
    key = "hydra.sweep.dir=" if sweep else "hydra.run.dir="
    if run_dir is not None:  # the folder claimed (or checked) for this run, even when Hydra's clock would name another
        args = [*(a for a in args if not a.startswith(key)), f"{key}{override_value(str(run_dir))}"]
    sys.argv = [PROG, *args]
    with _failed_jobs() if sweep else contextlib.nullcontext(list) as failed, _hydra_errors_raised():
        try:
            _entry()
        except (KeyboardInterrupt, Interrupted):  # while Hydra was still setting up the run folder, or a sweep ran
            _sweep_stopped(run_dir) if sweep else _stopped(run_dir)
        except OSError as e:  # Hydra's own files (.hydra/, the sweep's multirun.yaml) could not be written
            if e.errno not in WRITE_ERRORS:
                raise
            _discard(None if sweep else run_dir)
            _fail(
                f"could not write the run's files ({e.strerror}); nothing was kept: free some space or choose "
                f"another {key}"
            )
        finally:
            if sweep and run_dir is not None:  # a run's own folder is handed back by the run
                release(run_dir)
                if run_dir.is_dir() and not any(run_dir.iterdir()):
                    unmake(run_dir)  # no job was run (--cfg, --help)
        failures = failed()
    if failures:
        _fail(
            f"{len(failures)} job(s) of the sweep failed; each says why above and in its folder's error.txt "
            f"(the sweep's runs are in {run_dir})"
        )
    if sweep and run_dir is not None:
        print(f"{PROG}: wrote {_jobs(run_dir)} runs in {shown(run_dir)} (one folder per job)", file=sys.stderr)


def _jobs(folder: Path | None) -> int:
    """How many job folders a sweep's folder holds."""
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_dir() and digits(p.name))


_FAILED_JOBS = "DREAMLOOM_FAILED_JOBS"


@contextlib.contextmanager
def _hydra_errors_raised() -> Iterator[None]:
    """Let an error in Hydra's own steps reach :func:`main` (Hydra otherwise prints it and exits 1)."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


@contextlib.contextmanager
def _failed_jobs() -> Iterator[Callable[[], list[str]]]:
    """A file where a sweep's jobs note their failures, named to them through the environment; yields a reader."""
    fd, name = tempfile.mkstemp(prefix="dreamloom-failed-", suffix=".txt")
    os.close(fd)
    os.environ[_FAILED_JOBS] = name
    path = Path(name)
    try:
        yield lambda: path.read_text(encoding="utf-8").splitlines()
    finally:
        os.environ.pop(_FAILED_JOBS, None)
        path.unlink(missing_ok=True)
