"""JSON from users read strictly: an object that names one key twice is refused, where ``json.loads`` would
silently keep the last value (issue 22; a captions file or annotation file edited by hand can hold both)."""

from __future__ import annotations

import json
from collections import Counter
from typing import IO, Any


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) < len(pairs):
        repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise ValueError(f"duplicate JSON key {', '.join(map(repr, repeated))} in one object")
    return data


def loads_unique(data: str | bytes) -> Any:
    """``json.loads`` that raises ValueError on a key given twice in one object."""
    return json.loads(data, object_pairs_hook=_unique)


def load_unique(handle: IO[bytes]) -> Any:
    """``json.load`` that raises ValueError on a key given twice in one object."""
    return json.load(handle, object_pairs_hook=_unique)
