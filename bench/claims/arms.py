"""Paired arms for the claims that compare two trained models (C4, C6, C8): replica k of one arm against the
replica of the other arm with the same seed, image by image, and the seed-count rule every such verdict obeys
(fewer than ``min_seeds`` shared seeds give at most inconclusive: the interval then omits most seed variance).
Shared by the rule functions of versions 2 and later (bench/claims/v*.py) and pinned with them by the golden files:
a change here is a change of their logic, so new functions under new ids (bench/claims/registry.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from colorbench.claims.evidence import INCONCLUSIVE, Evidence
from colorbench.claims.stats import goodness


def arm_differences(e: Evidence, treated: str, base: str, metric: str,
                     score: Callable[[str, np.ndarray], np.ndarray] = goodness) -> tuple[np.ndarray, list[int]]:
    """(seed, image) table of score(treated) - score(base) (``goodness`` unless told), pairing replica k of one
    arm with the replica of the other arm that has the same seed; the seeds used."""
    a, b = e.replicas(treated), e.replicas(base)
    seeds = [s for s in a if s in b]
    per_seed = [(e.values(a[s], metric), e.values(b[s], metric)) for s in seeds]
    images = sorted({i for va, vb in per_seed for i in va if i in vb})
    table = np.full((len(seeds), len(images)), np.nan)
    for k, (va, vb) in enumerate(per_seed):
        for j, image in enumerate(images):
            if image in va and image in vb:
                table[k, j] = score(metric, np.array([va[image]]))[0] - score(metric, np.array([vb[image]]))[0]
    table[~np.isfinite(table)] = np.nan
    return table, seeds


def seed_note(seeds: Sequence[int], min_seeds: float) -> str:
    if len(seeds) >= min_seeds:
        return f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), two-way bootstrap over seeds and images"
    return (f"only {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}): the interval "
            f"omits most seed variance, so the verdict is at most inconclusive (needs >= {min_seeds:g}; --seeds N)")


def capped(verdict: str, seeds: Sequence[int], min_seeds: float) -> str:
    return verdict if len(seeds) >= min_seeds else INCONCLUSIVE
