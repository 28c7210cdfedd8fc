"""The one way colorbench turns "what a result was computed from" into a cache key or folder name.

A key is the sha256 of the canonical JSON of its payload (sorted keys, no whitespace choices, non-JSON values
by ``str``), cut to ``length`` hex digits. Payloads name the definition version of every metric and model they
depend on (``Metric.version``, ``ModelSpec.version``), so correcting a kernel's definition changes exactly the
keys of the results it produced. Version 1 is every definition as it stood before versions were recorded, so
:func:`key_description` leaves it out of a key: keys made before versions existed stay valid, and a bump to 2
changes exactly the keys of what that definition produced.

Keys that name folders and caches already on disk (a run folder's name, its data id, prediction tags) were made
with ``json.dumps(payload, sort_keys=True)``, whose separators carry spaces; those call sites pass
``separators=LEGACY_SEPARATORS`` so that their digests, and so existing run folders and caches, stay exactly as
they were. Keys that depend on metrics (record folders, the study's fingerprint, set-level caches) are made anew
from ``Metric.key()``; colorbench.io.legacy_keys rebuilds their former digests to read what they name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

#: Hex digits kept by default: 64 bits, ample for the thousands of keys a results folder holds.
DEFAULT_LENGTH = 16
#: Separators of the canonical text (no whitespace).
COMPACT_SEPARATORS = (",", ":")
#: ``json.dumps``'s default separators: the text of every key written before this module (see the module text).
LEGACY_SEPARATORS = (", ", ": ")


def canonical_json(payload: object, *, separators: tuple[str, str] = COMPACT_SEPARATORS) -> str:
    """The JSON text a key is computed from (also what a key's provenance records)."""
    return json.dumps(payload, sort_keys=True, separators=separators, default=str)


def cache_key(payload: object, length: int = DEFAULT_LENGTH, *,
              separators: tuple[str, str] = COMPACT_SEPARATORS) -> str:
    """sha256 of :func:`canonical_json` of ``payload``, its first ``length`` hex digits (64 for the whole)."""
    return hashlib.sha256(canonical_json(payload, separators=separators).encode()).hexdigest()[:length]


def key_description(description: Mapping[str, object]) -> dict[str, object]:
    """A definition's description (``Metric.describe()``, ``ModelSpec.as_dict()``) as it enters a key: its
    ``version`` left out when it is 1 (see the module text), kept otherwise."""
    return {k: v for k, v in description.items() if not (k == "version" and v == 1)}
