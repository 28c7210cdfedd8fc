"""The one way colorbench turns "what a result was computed from" into a cache key or folder name.

A key is the sha256 of the canonical JSON of its payload (sorted keys, no whitespace choices, non-JSON values
by ``str``), cut to ``length`` hex digits. Payloads name the definition version of every metric and model they
depend on (``Metric.version``, ``ModelSpec.version``), so correcting a kernel's definition changes exactly the
keys of the results it produced.
"""

from __future__ import annotations

import hashlib
import json

#: Hex digits kept by default: 64 bits, ample for the thousands of keys a results folder holds.
DEFAULT_LENGTH = 16


def canonical_json(payload: object) -> str:
    """The JSON text a key is computed from (also what a key's provenance records)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(payload: object, length: int = DEFAULT_LENGTH) -> str:
    """sha256 of :func:`canonical_json` of ``payload``, its first ``length`` hex digits (64 for the whole)."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:length]
