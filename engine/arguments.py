"""Checks of the command line before anything is composed or made: Hydra's keys dreamloom fixes, the printing
flags, a sweep's jobs and the folders a run or sweep would make."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from engine.checks import check_groups
from engine.configs import GROUPS, compose, explain
from engine.errors import UserError, one_line
from engine.results import claim
from recipes import CONFIG_DIR

__all__ = ["check_fixed_hydra_keys", "check_flags", "check_new_folder", "check_sweep"]

MOST_JOBS = 1000
"""The most jobs one sweep (``-m``) may run: a ``range(...)`` past it is refused before Hydra expands it."""

FIXED_HYDRA = ("hydra.output_subdir", "hydra.job.name", "hydra.sweep.subdir", "hydra.job.chdir", "hydra.runtime")
"""Hydra's keys that decide where a run's files go beyond its folder, or which folder its relative paths mean: fixed,
so that every file of a run lands in the one folder ``hydra.run.dir`` (or, per job, ``hydra.sweep.dir``) names."""
TAKES_VALUE = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn"})


def check_fixed_hydra_keys(args: list[str]) -> None:
    """Refuse a change to one of :data:`FIXED_HYDRA`, and a class for Hydra to build (a ``_target_`` in a ``hydra.``
    key or its value: a launcher, a callback), with one line."""
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if key.startswith("hydra.") and "_target_" in key + value:
            raise UserError(
                f"{key} cannot name a class for Hydra to build; pick its launcher with hydra/launcher=local or "
                "hydra/launcher=slurm"
            )
        if "=" in arg and key.startswith(FIXED_HYDRA):
            raise UserError(
                f"{key}= cannot be changed in dreamloom: every file of a run goes in its own folder; choose that "
                "folder with hydra.run.dir= (hydra.sweep.dir= for a sweep)"
            )


def check_flags(args: list[str]) -> None:
    """Hydra's printing flags: ``--cfg job|hydra|all`` (with ``-p PACKAGE`` and ``--resolve``) prints the config a
    run would have, checked as a run's overrides are; ``-p`` or ``--resolve`` without ``--cfg`` would start a run
    past every check, so they are refused."""
    flags, overrides, value_of = [], [], None
    for arg in [part for a in args for part in (a.split("=", 1) if a.startswith("-") and "=" in a else [a])]:
        if value_of is not None:
            flags.append((value_of, arg))
            value_of = None
        elif arg.startswith("-"):
            value_of = arg if arg in TAKES_VALUE else None
            if value_of is None:
                flags.append((arg, ""))
        else:
            overrides.append(arg)
    named = {flag for flag, _ in flags} | ({value_of} if value_of else set())
    if value_of is not None:
        raise UserError(f"{value_of} needs a value; use: dreamloom --cfg job recipe=NAME [key=value ...]")
    if {"-p", "--package", "--resolve"} & named and not {"--cfg", "-c", "--help", "-h", "--hydra-help"} & named:
        raise UserError("-p and --resolve only go with --cfg, which prints the config; drop them to start a run")
    for flag, value in flags:
        if flag in ("--cfg", "-c") and value not in ("job", "hydra", "all"):
            raise UserError(f"{flag} {value} is not valid; use --cfg job, --cfg hydra or --cfg all")
    if {"--cfg", "-c"} & named:
        compose(overrides, hydra=True)  # a bad key or option is one line here too


def folder_named(cfg: Any, key: str) -> Path:
    """The folder ``hydra.run.dir`` or ``hydra.sweep.dir`` names, read out (Hydra's own default holds ``${now:…}``);
    one line for a reference to a key that is not there."""
    try:
        return Path(str(OmegaConf.select(cfg, key)))
    except OmegaConfBaseException as e:
        why = one_line(str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise UserError(f"{key}= cannot be read ({why}); name the folder plainly") from None


def check_new_folder(folder: Path, what: str, key: str) -> None:
    """Refuse a results folder that cannot be made (a file in the way, a read-only or forbidden place: tried for
    real, since permission bits say nothing to root), or one whose name Hydra would read as a reference."""
    if "${" in str(folder):
        raise UserError(
            f"the {what} folder '{folder}' holds ${{, which Hydra reads as a reference; choose another {key}"
        )
    try:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
    except OSError as e:
        raise UserError(
            f"cannot make the {what} folder '{str(folder)[:60]}…' ({e.strerror}); choose another {key}"
        ) from None
    problem = "is a file, not a folder" if not existing.is_dir() else None
    if problem is None:
        try:
            Path(tempfile.mkdtemp(prefix=".dreamloom-", dir=existing)).rmdir()
        except OSError as e:
            problem = f"is not writable ({e.strerror})"
    if problem:
        raise UserError(f"cannot make the {what} folder '{folder}': '{existing}' {problem}; choose another {key}")


def check_sweep(args: list[str]) -> Path:
    """Compose a sweep's configs as its jobs will, so a misspelled key or option is one line before any job runs,
    and take the sweep's folder for it alone (:func:`engine.results.claim`): a named one that holds files or is in use
    is refused (an earlier sweep's jobs would be overwritten one by one), and a default name that is taken (another
    sweep started in the same second) gets ``_2``.

    Every value of a swept config group (``recipe=a,b``, ``model=…``) is tried, with the other swept keys at their
    first value, and so is every value of a group's key (``param.decay=1,nan``: its kind and range); a swept plain key
    (``channel=0,1,2``) is tried at its first value, since its values are checked by each job as it runs. The folder
    is the one the overrides that are not swept name, as Hydra names it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    lines = [a for a in args if not a.startswith("-")]
    if any(a.startswith("hydra.run.dir=") for a in lines):
        raise UserError(
            "hydra.run.dir= names one run's folder, and a sweep (-m) makes one folder per job; name the sweep's "
            "folder with hydra.sweep.dir=DIR instead"
        )
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException as e:
        raise UserError(explain(e, lines)) from None
    fixed = [str(o.input_line) for o in parsed if not o.is_sweep_override()]
    first: list[str] = []
    tries: list[tuple[int, str]] = []
    parts: list[str] = []  # the swept values of a part's keys (param.decay=1,nan), checked as a run checks them
    jobs = 1
    for override in parsed:
        if not override.is_sweep_override():
            first.append(str(override.input_line))
            continue
        key = override.get_key_element()
        values = [f"{key}={value}" for value in _sweep_values(override, key)]
        jobs *= len(values)
        if jobs > MOST_JOBS:
            raise _too_many(key)
        first.append(values[0])
        if (Path(CONFIG_DIR) / override.key_or_group).is_dir():  # a config group: each option must exist
            tries += [(len(first) - 1, value) for value in values[1:]]
        elif key.split(".")[0] in GROUPS[1:]:
            parts += values[1:]
    combos = [[*first[:i], value, *first[i + 1 :]] for i, value in tries]
    for combo in combos:
        check_groups(compose(combo))
    first_job = compose(first)
    check_groups(first_job)
    _check_parts(first_job, parts)
    hydra_cfg = compose(fixed, hydra=True)
    _check_launcher(hydra_cfg.hydra.launcher)
    sweep_dir = folder_named(hydra_cfg, "hydra.sweep.dir")
    check_new_folder(sweep_dir, "sweep", "hydra.sweep.dir=")
    chosen = any(a.startswith("hydra.sweep.dir=") for a in lines)
    try:  # taken for this sweep alone: another started in the same second gets the next free name
        return claim(sweep_dir, chosen, "hydra.sweep.dir=")
    except UserError as e:
        raise UserError(str(e).replace("run folder", "sweep folder")) from None


def _check_parts(cfg: Any, values: list[str]) -> None:
    """Each swept value of a part's key (``param.decay=2``), set in ``cfg`` (the sweep's first job) by itself and
    checked as a run checks its parts (:func:`engine.checks.check_groups`), without composing a job for each."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for line in values:
        override = parser.parse_override(line)
        job = cfg.copy()
        with open_dict(job):
            OmegaConf.update(job, override.key_or_group, override.value(), merge=False)
        check_groups(job)


def _check_launcher(launcher: Any) -> None:
    """The launcher's settings that Hydra's launchers take without a check of their own: SLURM's commands where the
    SLURM launcher is picked, and a whole number of jobs at once (joblib's: 1 or more, or -1 for one per core, -2 for
    all cores but one …; 0 means nothing)."""
    if str(launcher.get("_target_", "")).endswith("SlurmLauncher") and shutil.which("srun") is None:
        raise UserError(
            "hydra/launcher=slurm hands each job to SLURM, and this machine has no srun command; run the sweep where "
            "SLURM is (a cluster's login node), or leave out hydra/launcher=slurm to run the jobs here"
        )
    jobs = launcher.get("n_jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0:
        raise UserError(
            f"hydra.launcher.n_jobs={jobs} is not valid; give how many jobs run at once (1 or more, or -1 for one per "
            "core)"
        )


def _sweep_values(override: Any, key: str) -> list[str]:
    """The first values of a swept key, up to one past :data:`MOST_JOBS` (a range is counted before it is listed:
    Hydra lists a shuffled one whole)."""
    from hydra.core.override_parser.types import RangeSweep
    from hydra.errors import HydraException

    value = override.value()
    ends = (value.start, value.stop, value.step) if isinstance(value, RangeSweep) else (None, None, None)
    if None not in ends and ends[2] and (ends[1] - ends[0]) / ends[2] > MOST_JOBS:  # type: ignore[operator]
        raise _too_many(key)
    try:
        values = list(itertools.islice(override.sweep_string_iterator(), MOST_JOBS + 1))
    except (HydraException, ValueError) as e:  # glob(), which needs Hydra's config loader; range(1,5,0)
        why = one_line(str(e))
        raise UserError(f"{key}: its values cannot be listed ({why}); name them, such as {key}=a,b,c") from None
    if not values:
        raise UserError(f"{key} sweeps over no value at all; give at least one, such as {key}=range(1,5)")
    return values


def _too_many(key: str) -> UserError:
    return UserError(f"the sweep would run more than {MOST_JOBS} jobs (at {key}); split it into smaller sweeps")
