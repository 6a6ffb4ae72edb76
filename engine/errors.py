"""The one exception type that the command line turns into a one-line answer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UserError", "close_matches"]


class UserError(ValueError):
    """A problem the user caused and can fix; its message says what is wrong and how to fix it."""


def close_matches(word: str, choices: Iterable[str], n: int = 5) -> str:
    """Return ``"did you mean a, b?"``-style text for the choices nearest to ``word`` (empty if none)."""
    pool = list(choices)
    near = difflib.get_close_matches(word, pool, n=n, cutoff=0.5)
    if not near:
        near = [c for c in pool if word.lower() in c.lower()][:n]
    return f"did you mean {', '.join(near)}?" if near else ""
