"""User-facing errors: the CLI prints their message (no traceback) and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> BenchError:
    """Build the error for an unknown model/metric/split name, suggesting close matches."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return BenchError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")
