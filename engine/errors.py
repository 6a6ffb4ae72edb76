"""The one exception type that the command line turns into a one-line answer, and name suggestions."""

from __future__ import annotations

import errno
import importlib
import pkgutil
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_NAME",
    "WRITE_ERRORS",
    "UserError",
    "close_matches",
    "denied_elsewhere",
    "digits",
    "edit_distance",
    "missing_or",
    "one_line",
    "out_of_memory",
    "runtime_answer",
    "unlocatable",
]


class UserError(ValueError):
    """A problem the user caused and can fix; its message says what is wrong and how to fix it, on one line
    (:func:`one_line`: a value it quotes may hold newlines or control characters)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


def digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9 (``str.isdigit`` also takes ``²`` and other scripts' digits,
    which ``int`` then refuses or reads as another number)."""
    return text.isascii() and text.isdigit()


def one_line(message: str) -> str:
    """``message`` as one printable line: a newline in a value the user gave shows as ``\\n``, other control
    characters as ``?``, so an error line stays one line however odd the value quoted in it."""
    text = message.replace("\r\n", "\n").replace("\n", "\\n")
    return "".join(c if c.isprintable() else "?" for c in text)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest single-character insertions, deletions and substitutions from a to b."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def close_matches(word: str, choices: Iterable[str], n: int = 5) -> str:
    """Return ``"did you mean a, b?"`` for the choices fewest edits from ``word`` (empty if none is close).

    A choice counts as close within a third of the word's length in edits, or when it contains the word.
    """
    key = word.lower()
    limit = max(2, len(key) // 3)
    scored = sorted((edit_distance(key, c.lower()), c) for c in choices)
    near = [c for d, c in scored if d <= limit]
    if not near:
        near = [c for _, c in scored if key in c.lower()]
    return f"did you mean {', '.join(near[:n])}?" if near else ""


WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES}
"""The errors of a write that the user can fix: disk full, file too large, quota, read-only or forbidden place."""


def denied_elsewhere(error: OSError, folder: Path) -> str | None:
    """The line for a permission refused on a path outside the run folder (an input folder, a cache), which is no
    failure to write the run; None for a path inside it or an error of another kind."""
    if error.errno != errno.EACCES or not error.filename:
        return None
    path = Path(str(error.filename)).absolute()
    if path == folder.absolute() or folder.absolute() in path.parents:
        return None
    return f"'{error.filename}' could not be opened ({error.strerror}); give this user access to it or use another path"


TOO_SMALL = ("Output size is too small", "Kernel size can't be greater than actual input size")
"""torch's words for a picture a layer cannot shrink further (a pooling or a kernel larger than what is left)."""


def runtime_answer(error: BaseException, rate: tuple[str, Any], size: Any, batch: Any, model: Any) -> str | None:
    """The one line for a RuntimeError the run's values cause (a step that overflows, a picture the random crops and
    scales make too small for the model, memory), or None for one they do not explain. ``rate``: the key that set
    the step's learning rate (``lr`` or ``optimizer.lr``) and its value."""
    text = str(error)
    if "converted to type float without overflow" in text:  # the optimizer's step size overflows
        key, lr = rate
        return f"{key}={lr} is too high: the optimizer's step overflowed; try {key}={float(lr) / 1e6:g} or lower"
    if any(words in text for words in TOO_SMALL):
        return (
            f"size={size} is too small for model {model}: the picture, cropped and scaled at random, came to a "
            "layer smaller than its kernel; use a larger size="
        )
    if not out_of_memory(error):
        return None
    many = isinstance(batch, int) and batch > 1  # then the batch is the likelier culprit
    return (
        (f"batch={batch} at " if many else "")
        + f"size={size} needs more memory than the device has; "
        + ("use a smaller batch= or size=" if many else "use a smaller size= (or a smaller batch=)")
    )


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is torch or the system running out of memory (told by name: this module loads no torch)."""
    text = str(error)
    return type(error).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def missing_or(path: Path, otherwise: str) -> str:
    """How a path a key names fails: ``does not exist``, or ``otherwise`` (it exists but is not what was wanted)."""
    try:
        if path.exists():
            return otherwise
        return "is a link that leads to no file (or to itself)" if path.is_symlink() else "does not exist"
    except OSError:
        return otherwise


RUN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""A run name as a folder takes it and the command line passes it on (not ``name=a,b``: a sweep)."""


def unlocatable(target: str, key: str) -> str:
    """Why ``target`` names nothing: its module fails to import (the error inside it), or lacks the name."""
    module, _, name = target.rpartition(".")
    try:
        found = importlib.import_module(module) if module else None
    except ModuleNotFoundError as e:
        if not (e.name and (module + ".").startswith(e.name + ".")):  # a module it imports is missing
            return _import_failed(target, key, module, e)
        return f"{key}._target_={target} names nothing: there is no module {e.name}" + _module_hint(e.name)
    except Exception as e:  # the module's own error (a missing export, a typo in it) is the one to see
        return _import_failed(target, key, module, e)
    if found is None:
        return f"{key}._target_={target} is not a module and a name in it; write it as package.module.function"
    hint = close_matches(name, [n for n in dir(found) if not n.startswith("_")])
    return f"{key}._target_={target} names nothing: {module} has no {name}" + (f"; {hint}" if hint else "")


def _module_hint(missing: str) -> str:
    """ "; did you mean …" for a module name: the project's packages, or the modules beside it in its package."""
    parent, _, last = missing.rpartition(".")
    names = ["engine", "objectives", "regularizers", "recipes"]
    if parent:
        try:
            names = [m.name for m in pkgutil.iter_modules(importlib.import_module(parent).__path__)]
        except (ImportError, AttributeError):
            names = []
    hint = close_matches(last, names)
    return f"; {hint}" if hint else ""


def _import_failed(target: str, key: str, module: str, e: Exception) -> str:
    why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    return f"{key}._target_={target} cannot be loaded: importing {module} fails ({why}); fix that module"
