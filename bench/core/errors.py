"""User-facing errors: the CLI prints their message (no traceback) and exits with the error's status: 2 for
input the command cannot use, 1 when the command ran but did not do everything that was asked."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code = 2


class IncompleteError(BenchError):
    """The command ran, wrote what it could, but some requested result is missing (a model failed, no image
    could be scored)."""

    exit_code = 1


def unknown_name(kind: str, name: str, known: Iterable[str]) -> BenchError:
    """Build the error for an unknown model/metric/split name, suggesting close matches."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return BenchError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")
