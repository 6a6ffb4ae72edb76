"""A process that loads the engine once, then forks one child per command line it is sent.

``tests/cli/test_cli.py`` runs well over a hundred ``dreamloom`` commands, and each real ``python -m engine`` spends
about three seconds importing torch, torchvision and Hydra before it reads its arguments. A child forked from here
has them loaded and runs :func:`engine.launch.main` as ``python -m engine`` would, in its own folder, with its own
arguments, resource limits and stderr file; it leaves through ``atexit`` and ``os._exit`` with the code the command
would have returned (a traceback and 1 for an uncaught exception, as Python does). The protocol is one JSON line per
request on stdin (``cwd``, ``args``, ``stderr``, ``timeout``, ``file_limit``) and one JSON line per answer on stdout
(``returncode``, or ``null`` when the command ran past its time and was killed).

    python -m tests.cli.zygote
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ENTRY = str(Path(__file__).resolve().parents[2] / "engine" / "__main__.py")
"""What ``sys.argv[0]`` is under ``python -m engine``."""


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        if request.get("file_limit") is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_limit"], request["file_limit"]))
        sys.argv = [ENTRY, *request["args"]]
        from engine.launch import main

        main()
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:  # as the interpreter reports what nothing caught
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def serve() -> None:
    """Answer requests until stdin closes."""
    import engine.cli
    import engine.launch

    assert engine.cli and engine.launch  # loaded here once: the import every child is spared

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"returncode": _wait(pid, float(request["timeout"]))}), flush=True)


if __name__ == "__main__":
    serve()
