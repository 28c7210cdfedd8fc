"""The one place that knows how metric-dependent keys were made before ``Metric.key()``, so that the record
folders, study fingerprints and set-level caches of existing run folders are still found and reused.

Until this module, those three keys hashed each metric's whole description (``describe()`` through
:func:`colorbench.core.cachekey.key_description`, with :data:`~colorbench.core.cachekey.LEGACY_SEPARATORS`):
its definition prose and the import path of its function entered the key, so rewording a definition, or the
package rename that moved ``metrics.pixel.psnr`` to ``colorbench.metrics.pixel.psnr``, recomputed every result.
New keys hash only ``Metric.key()`` (name, parameters, definition version); the old descriptions are frozen in
``legacy_metric_descriptions.json`` beside this module, generated once from the code before the rename, and
:func:`legacy_digests` rebuilds the old digests from them. :func:`cache_keys` gives a caller both: the key new
results are written under, and the old keys whose results found on disk are read as current.

Two generations of old keys exist: the code before the one-package install (functions named ``metrics.*``) and
the code from that install to ``Metric.key()`` (the same functions named ``colorbench.metrics.*``); the data
file's ``function_prefixes`` lists the prefix each put before the frozen names.

A metric's old digest stands for its current definition only while the definition is the frozen one: a metric
whose name, parameters or version differ from its frozen description (a version bump, say), or that was added
later, has no old digest, so an old folder can never pass for a changed definition.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from colorbench.core.cachekey import LEGACY_SEPARATORS, cache_key, canonical_json, key_description

DATA_FILE = "legacy_metric_descriptions.json"

#: What a metric-dependent payload is built from: one entry per metric, in the caller's order.
PayloadOf = Callable[[list[Mapping[str, object]]], object]


@functools.cache
def _frozen() -> tuple[tuple[str, ...], Mapping[str, Mapping[str, object]]]:
    """The data file: the function prefixes of each old generation and the frozen description of each metric."""
    data = json.loads(resources.files("colorbench.io").joinpath(DATA_FILE).read_text(encoding="utf-8"))
    return tuple(data["function_prefixes"]), data["descriptions"]


def _same_definition(frozen: Mapping[str, object], key: Mapping[str, object]) -> bool:
    """Whether a frozen description is the definition that ``key`` (``Metric.key()``) names now."""
    was = {"name": frozen["name"], "params": frozen["params"], "version": frozen.get("version", 1)}
    return canonical_json(was) == canonical_json(key)


def legacy_descriptions(keys: Sequence[Mapping[str, object]]) -> list[list[Mapping[str, object]]]:
    """Per old generation (oldest first), the descriptions the old code keyed these metrics by, in the order of
    ``keys`` (current ``Metric.key()`` values); none when any metric has no frozen description of its current
    definition (see the module text)."""
    prefixes, frozen = _frozen()
    described: list[Mapping[str, object]] = []
    for key in keys:
        description = frozen.get(str(key["name"]))
        if description is None or not _same_definition(description, key):
            return []
        described.append(description)
    return [[key_description({**d, "function": prefix + str(d["function"])}) for d in described]
            for prefix in prefixes]


def legacy_digests(payload_of: PayloadOf, keys: Sequence[Mapping[str, object]], length: int) -> tuple[str, ...]:
    """The digests the old code gave ``payload_of(<its descriptions of the metrics>)``, one per old generation
    (oldest first; none for a changed or newer metric)."""
    return tuple(cache_key(payload_of(described), length, separators=LEGACY_SEPARATORS)
                 for described in legacy_descriptions(keys))


@dataclass(frozen=True)
class CacheKeys:
    """A metric-dependent key: ``current``, under which new results are written, and the ``legacy`` keys of the
    same results made by the old code, under which results on disk are still read."""

    current: str
    legacy: tuple[str, ...]

    def accepts(self, stored: object) -> bool:
        """Whether a key stored with results on disk is this one, new or old."""
        return stored == self.current or stored in self.legacy


def cache_keys(payload_of: PayloadOf, keys: Sequence[Mapping[str, object]], length: int) -> CacheKeys:
    """The current key, ``cache_key(payload_of(keys))`` over the metrics' ``Metric.key()`` values, and the legacy
    digests of the same payload over the old descriptions (:func:`legacy_digests`)."""
    return CacheKeys(cache_key(payload_of(list(keys)), length), legacy_digests(payload_of, keys, length))
