"""The ``dreamloom`` command's entry point: Ctrl-C while torch and the engine load ends quietly, with status 130."""

from __future__ import annotations

import logging
import os
import signal
import sys


class LauncherSettings(logging.Filter):
    """Drop the joblib launcher's line of its own settings from a sweep's output (recipes/hydra/hydra_logging)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Joblib.Parallel(")


def _quit(signum: int, frame: object) -> None:
    """Leave at once: nothing was made yet, and an exit that unwinds a half-done import of torch can hang."""
    print("dreamloom: interrupted while starting; nothing was run or saved", file=sys.stderr, flush=True)
    os._exit(130 if signum == signal.SIGINT else 128 + signum)


def main() -> None:
    """Answer a request for help at once; otherwise load the command line with Ctrl-C and SIGTERM answered by one
    line, then hand over to :func:`engine.cli.main` (which installs its own answers)."""
    from engine.help import answer_help

    if answer_help(sys.argv[1:]):
        return
    quiet = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not where Ctrl-C is ignored
    if quiet:
        signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    from engine.cli import main as run

    if quiet:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    run()
