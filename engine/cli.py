"""The ``dreamloom`` command: Hydra composes the recipe, the runner renders it, bad input gets one line.

Hydra's own failures (unknown recipe, mistyped key, bad syntax, an existing run folder) are caught by composing
the config once before Hydra's entry point runs, so they can be answered with one sentence and exit code 2
before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from engine.errors import UserError, close_matches
from engine.export import write_text
from engine.loop import STOP
from engine.runner import Interrupted, all_tasks, run_recipe
from recipes import CONFIG_DIR

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "explain", "main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PROG = "dreamloom"
HYDRA_FILES = frozenset({".hydra", f"{PROG}.log"})
"""What Hydra writes into a run folder before the run starts (``hydra.output_subdir`` and ``hydra.job.name``)."""


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _discard(folder: Path | None) -> bool:
    """Remove a run folder that holds only what Hydra wrote at the start, so the same hydra.run.dir can be reused.

    Returns:
        False when the folder holds results (or anyone else's files) and was left as it is.
    """
    if folder is None or not folder.is_dir():
        return True
    if not {p.name for p in folder.iterdir()} <= HYDRA_FILES:
        return False
    shutil.rmtree(folder / ".hydra", ignore_errors=True)
    (folder / f"{PROG}.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
    return True


def _stopped(folder: Path | None) -> NoReturn:
    """Answer Ctrl-C outside the optimization loop (which saves the picture so far itself) with one line."""
    if _discard(folder):
        print(f"{PROG}: interrupted before any result was written; nothing was saved", file=sys.stderr)
    else:
        print(f"{PROG}: interrupted while saving; what was saved is in {folder}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _terminated(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM: raise ``KeyboardInterrupt`` here, and leave word for the loop in case it gets lost."""
    STOP.set()
    raise KeyboardInterrupt


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def explain(err: Exception, args: list[str]) -> str:
    """Shorten a Hydra/OmegaConf composition error to the key or option and its close matches."""
    text = str(err)
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        choices = _options(group)
        hint = close_matches(option, choices)
        extra = "; or model.name=ANY_TORCHVISION_CLASSIFIER" if group == "model" else ""
        return (
            f"unknown {group} '{option}'"
            + (f"; {hint}" if hint else "")
            + f" (choose one of {', '.join(choices)}{extra})"
        )
    key = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if key:
        from hydra import compose, initialize_config_dir

        recipe = [a for a in args if a.startswith("recipe=")][-1:]
        try:
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                keys = [str(k) for k in compose("config", overrides=recipe).keys()]
        except (HydraException, OmegaConfBaseException):
            keys = []
        name = key.group(1)
        hint = close_matches(name.split(".")[-1], [k for k in keys if k != name])
        where = f"recipe {recipe[0].split('=', 1)[1]} has" if recipe else "the recipe has"
        return f"{where} no key '{name}'" + (f"; {hint}" if hint else "") + " (prefix it with + to add a new key)"
    first = next((line for line in text.splitlines() if line.strip()), text)
    return (
        f"could not read the command line: {first}; write each override as key=value "
        "(lists as key=[a,b], text with spaces or commas in quotes)"
    )


def preflight(args: list[str]) -> Path | None:
    """Compose the config as Hydra will and refuse bad overrides or an existing run folder, writing nothing.

    Returns:
        The run folder the overrides ask for, or None when Hydra handles the flags itself.
    """
    if {"-m", "--multirun"} & set(args):
        _check_sweep(args)
        return None
    if any(a.startswith("-") for a in args):
        return None  # --help, --cfg …: Hydra handles these itself
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("config", overrides=args, return_hydra_config=True)
            run_dir = Path(str(cfg.hydra.run.dir))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise UserError(explain(e, args)) from None
    _check_new_folder(run_dir, "run", "hydra.run.dir=")
    return run_dir


def _check_new_folder(folder: Path, what: str, key: str) -> None:
    """Refuse a results folder that already holds files, or one that cannot be made (a file in the way, a
    read-only or forbidden place: tried for real, since permission bits say nothing to root)."""
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(
            f"{what} folder '{folder}' already exists and is not empty; choose another {key} or move it away"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    problem = "is a file, not a folder" if not existing.is_dir() else None
    if problem is None:
        try:
            Path(tempfile.mkdtemp(prefix=".dreamloom-", dir=existing)).rmdir()
        except OSError as e:
            problem = f"is not writable ({e.strerror})"
    if problem:
        raise UserError(f"cannot make the {what} folder '{folder}': '{existing}' {problem}; choose another {key}")


def _check_sweep(args: list[str]) -> None:
    """Compose a sweep's configs as its jobs will, so a misspelled key or option is one line before any job runs,
    and refuse a sweep folder that already holds files (an earlier sweep's jobs would be overwritten one by one).

    Every value of a swept config group (``recipe=a,b``, ``model=…``) is tried, with the other swept keys at their
    first value; a swept plain key (``channel=0,1,2``) is tried at its first value, since its values are checked by
    each job as it runs. The folder is the one the overrides that are not swept name, as Hydra names it.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as e:
        raise UserError(explain(e, lines)) from None
    fixed = [str(o.input_line) for o in parsed if not o.is_sweep_override()]
    first: list[str] = []
    tries: list[tuple[int, str]] = []
    for override in parsed:
        if not override.is_sweep_override():
            first.append(str(override.input_line))
            continue
        key = override.get_key_element()
        values = [f"{key}={value}" for value in override.sweep_string_iterator()]
        first.append(values[0])
        if (Path(CONFIG_DIR) / override.key_or_group).is_dir():  # a config group: each option must exist
            tries += [(len(first) - 1, value) for value in values[1:]]
    combos = [first] + [[*first[:i], value, *first[i + 1 :]] for i, value in tries]
    failure: tuple[Exception, list[str]] | None = None
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for combo in combos:
            try:
                compose("config", overrides=combo, return_hydra_config=True)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                failure = (e, combo)
                break
        else:
            sweep_dir = Path(str(compose("config", overrides=fixed, return_hydra_config=True).hydra.sweep.dir))
    if failure is not None:  # explained outside, since explaining composes again
        raise UserError(explain(*failure))
    _check_new_folder(sweep_dir, "sweep", "hydra.sweep.dir=")


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _entry(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    folder, recipe = Path(hc.runtime.output_dir), hc.runtime.choices.get("recipe") or str(cfg.name)
    if hc.mode != RunMode.MULTIRUN:
        _run_and_answer(cfg, folder, recipe)
        return
    try:  # one job of a sweep: a mistake in its keys is reported and kept, and the other jobs go on
        run_recipe(cfg, folder, recipe)
    except UserError as e:
        write_text(folder / "error.txt", f"{e}\n")
        print(f"{PROG}: error: job {hc.job.num} ({' '.join(hc.overrides.task)}): {e}", file=sys.stderr)
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
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        _stopped(folder)
    print(f"{PROG}: wrote {result.folder}", file=sys.stderr)


def _rerun_config(args: list[str]) -> tuple[DictConfig, Path]:
    """The config a dreamloom PNG carries, with ``key=value`` changes, and the new run's folder."""
    from omegaconf import OmegaConf

    from engine.export import read_png_config

    if not args:
        raise UserError("rerun needs a picture; use: dreamloom rerun outputs/…/image.png [key=value ...]")
    source = Path(args[0])
    if not source.is_file():
        raise UserError(f"'{source}' does not exist; pass the image.png of an earlier run")
    try:
        text = read_png_config(source)
    except OSError:
        text = None
    if not text:
        raise UserError(f"'{source}' carries no dreamloom config; pass the image.png that a dreamloom run wrote")
    cfg = OmegaConf.create(text)
    assert isinstance(cfg, DictConfig)
    folder: Path | None = None
    changes = []
    for arg in args[1:]:
        key, eq, _ = arg.partition("=")
        if not eq:
            raise UserError(f"'{arg}' is not key=value; use: dreamloom rerun image.png steps=100")
        if key == "hydra.run.dir":
            folder = Path(arg.split("=", 1)[1])
        elif OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            hint = close_matches(key.split(".")[-1], [str(k) for k in cfg.keys()])
            raise UserError(f"unknown key '{key}' for this run" + (f"; {hint}" if hint else ""))
        else:
            changes.append(arg)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(changes))
    assert isinstance(cfg, DictConfig)
    if folder is None:
        folder = Path("outputs") / time.strftime("%Y-%m-%d") / time.strftime(f"%H-%M-%S_{cfg.name}_rerun")
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"run folder '{folder}' already exists and is not empty; choose another hydra.run.dir=")
    return cfg, folder


_MISSING = object()


def _resume_args(args: list[str]) -> list[str]:
    """With ``resume=FOLDER``, refuse other keys (the run carries on with its own) and name the new run folder
    after the resumed recipe."""
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not resume or resume[-1] in ("", "null"):
        return args
    others = [a for a in args if not a.startswith(("resume=", "hydra."))]
    if others:
        raise UserError(
            f"resume= carries on a run with its own keys, so {' '.join(others)} would be ignored; pass only "
            "resume=FOLDER (and hydra.run.dir=), or start a new run"
        )
    from omegaconf import OmegaConf

    from engine.checkpoints import load_checkpoint

    name = OmegaConf.create(load_checkpoint(resume[-1])["config"]).get("name", "run")
    return [*args, f"name={name}_resumed"]


def rerun(args: list[str]) -> None:
    """``dreamloom rerun image.png [key=value ...]``: run again the config an earlier picture carries."""
    try:
        all_tasks()
        cfg, folder = _rerun_config(args)
    except UserError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _stopped(None)
    folder.mkdir(parents=True, exist_ok=True)
    _run_and_answer(cfg, folder, str(cfg.name))


def gallery(args: list[str]) -> None:
    """``dreamloom gallery [FOLDER] [recipe=NAME]``: write FOLDER/index.html for the runs below it (FOLDER defaults to
    outputs; with recipe=NAME, FOLDER/index_NAME.html for that recipe's runs only)."""
    from engine.api import RECIPES
    from engine.errors import close_matches
    from engine.gallery import write_gallery

    recipes = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")]
    folders = [a for a in args if not a.startswith("recipe=")]
    if len(folders) > 1 or len(recipes) > 1 or any("=" in f for f in folders):
        _fail("gallery takes one folder and at most one recipe=NAME; use: dreamloom gallery outputs/multirun/<date>")
    recipe = recipes[0] if recipes else None
    if recipe is not None and recipe not in RECIPES:
        hint = close_matches(recipe, RECIPES)
        _fail(f"unknown recipe '{recipe}'" + (f"; {hint}" if hint else "") + f" (recipes: {', '.join(RECIPES)})")
    if not folders and recipe is None:
        _fail("gallery needs a folder or a recipe; use: dreamloom gallery outputs/multirun/<date>/<time>")
    try:
        page = write_gallery(Path(folders[0] if folders else "outputs"), recipe)
    except UserError as e:
        _fail(str(e))
    print(f"{PROG}: wrote {page}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``dreamloom recipe=NAME [key=value ...]``, ``dreamloom rerun image.png [...]`` or
    ``dreamloom gallery FOLDER``."""
    args = sys.argv[1:] if argv is None else list(argv)
    STOP.clear()
    signal.signal(signal.SIGTERM, _terminated)  # a polite kill saves the picture so far, as Ctrl-C does
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (a background job)
        signal.signal(signal.SIGINT, _terminated)
    if args[:1] == ["rerun"]:
        rerun(args[1:])
        return
    if args[:1] == ["gallery"]:
        gallery(args[1:])
        return
    try:
        all_tasks()
        args = _resume_args(args)
        run_dir = preflight(args)
    except UserError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _stopped(None)
    sys.argv = [PROG, *args]
    sweep = bool({"-m", "--multirun"} & set(args))
    with _failed_jobs() if sweep else contextlib.nullcontext(list) as failed:
        try:
            _entry()
        except KeyboardInterrupt:  # while Hydra was still setting up the run folder
            _stopped(run_dir)
        failures = failed()
    if failures:
        _fail(f"{len(failures)} job(s) of the sweep failed; each says why above and in its folder's error.txt")


_FAILED_JOBS = "DREAMLOOM_FAILED_JOBS"


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
