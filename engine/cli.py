"""The ``dreamloom`` command: Hydra composes the recipe, the runner renders it, bad input gets one line.

Hydra's own failures (unknown recipe, mistyped key, bad syntax, an existing run folder) are caught by composing
the config once before Hydra's entry point runs, so they can be answered with one sentence and exit code 2
before anything is written.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from engine.errors import UserError, close_matches
from engine.runner import Interrupted, all_tasks, run_recipe
from recipes import CONFIG_DIR

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "main"]

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
        print(f"{PROG}: interrupted before the first step; nothing was saved", file=sys.stderr)
    else:
        print(f"{PROG}: interrupted while saving; what was saved is in {folder}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _explain(err: Exception) -> str:
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

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            keys = [str(k) for k in compose("config").keys()]
        hint = close_matches(key.group(1).split(".")[-1], keys)
        return f"unknown key '{key.group(1)}'" + (f"; {hint}" if hint else "") + " (prefix it with + to add a new key)"
    first = next((line for line in text.splitlines() if line.strip()), text)
    return f"could not read the command line: {first}"


def preflight(args: list[str]) -> Path | None:
    """Compose the config as Hydra will and refuse bad overrides or an existing run folder, writing nothing.

    Returns:
        The run folder the overrides ask for, or None when Hydra handles the flags itself.
    """
    if any(a.startswith("-") for a in args):
        return None  # --help, --cfg, -m …: Hydra handles these itself
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("config", overrides=args, return_hydra_config=True)
            run_dir = Path(str(cfg.hydra.run.dir))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise UserError(_explain(e)) from None
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(
            f"run folder '{run_dir}' already exists and is not empty; choose another hydra.run.dir= or move it away"
        )
    return run_dir


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _entry(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    folder = Path(hc.runtime.output_dir)
    recipe = hc.runtime.choices.get("recipe") or str(cfg.name)
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``dreamloom recipe=NAME [key=value ...]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        all_tasks()
        run_dir = preflight(args)
    except UserError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _stopped(None)
    sys.argv = [PROG, *args]
    try:
        _entry()
    except KeyboardInterrupt:  # while Hydra was still setting up the run folder
        _stopped(run_dir)
