"""The ``dreamloom`` command: Hydra composes the recipe, the runner renders it, bad input gets one line.

Hydra's own failures (unknown recipe, mistyped key, bad syntax, an existing run folder) are caught by composing
the config once before Hydra's entry point runs, so they can be answered with one sentence and exit code 2
before anything is written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from engine.errors import UserError, close_matches
from engine.runner import Interrupted, run_recipe
from recipes import CONFIG_DIR

__all__ = ["EXIT_USAGE", "main"]

EXIT_USAGE = 2
PROG = "dreamloom"


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


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


def preflight(args: list[str]) -> None:
    """Compose the config as Hydra will and refuse bad overrides or an existing run folder, writing nothing."""
    if any(a.startswith("-") for a in args):
        return  # --help, --cfg, -m …: Hydra handles these itself
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


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _entry(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    folder = Path(hc.runtime.output_dir)
    recipe = hc.runtime.choices.get("recipe") or str(cfg.name)
    try:
        result = run_recipe(cfg, folder, recipe)
    except UserError as e:
        _fail(str(e))
    except Interrupted as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(130)
    print(f"{PROG}: wrote {result.folder}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``dreamloom recipe=NAME [key=value ...]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        preflight(args)
    except UserError as e:
        _fail(str(e))
    sys.argv = [PROG, *args]
    _entry()
