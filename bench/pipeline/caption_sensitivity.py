"""Does the caption matter? Every caption-reading model is evaluated twice on the evaluation split: with each
image's own caption and with the caption of another image (issue 9; the experiment the paper could not run).

The other image is fixed by a seeded derangement of the captioned images (:func:`derangement`): a random cyclic
order in which every image takes its successor's caption, then repaired so that, where the split allows it, no
image receives a caption with its own text (two images captioned alike would otherwise swap nothing). The
swapped-caption predictions are scored like any other under the model name ``NAME.swapped-captions`` (kept out
of the leaderboard's rows).

Caption sensitivity of a metric is the mean over images of goodness(true caption) - goodness(swapped caption)
(:func:`colorbench.metrics.registry.goodness`: higher is better for every ranked metric), with a paired
percentile-bootstrap
95% interval over images (scipy.stats.bootstrap). Positive: the true caption scores better, so the model uses
what the caption says; about zero: the caption is ignored. ``leaderboard.csv`` gets the columns
``caption_sensitivity_<metric>`` (+ ``_lo``, ``_hi``) and ``caption_sensitivity_n`` for these models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from colorbench.core.aggregate import LEVEL, bootstrap
from colorbench.core.cachekey import cache_key
from colorbench.core.values import number
from colorbench.metrics.registry import goodness, ranked

SWAPPED_SUFFIX = ".swapped-captions"
PREFIX = "caption_sensitivity"


def swapped_name(model: str) -> str:
    """Records/predictions folder name of a model's swapped-caption evaluation."""
    return f"{model}{SWAPPED_SUFFIX}"


def derangement(captions: Sequence[str], seed: int) -> list[int]:
    """``donor[i]``: the image whose caption image i receives; never i itself (for two or more images), and a
    different caption text wherever a swap of donors can arrange it. Deterministic in (captions, seed)."""
    n = len(captions)
    if n < 2:
        return list(range(n))
    order = np.random.default_rng(seed).permutation(n).tolist()
    donor = [0] * n
    for k, i in enumerate(order):
        donor[i] = order[(k + 1) % n]
    for i in order:
        if captions[donor[i]] != captions[i]:
            continue
        for j in order:
            swap_ok = (j != i and donor[j] != i and donor[i] != j and captions[donor[j]] != captions[i]
                       and captions[donor[i]] != captions[j])
            if swap_ok:
                donor[i], donor[j] = donor[j], donor[i]
                break
    return donor


def swapped_captions(image_ids: Sequence[str], captions: Sequence[str], seed: int) -> dict[str, str]:
    """Image id -> the caption it is given in the swapped evaluation."""
    donor = derangement(captions, seed)
    return {image_id: captions[donor[i]] for i, image_id in enumerate(image_ids)}


def swap_key(swapped: Mapping[str, str]) -> str:
    """Cache-key part of a swapped evaluation: which caption each image received."""
    return cache_key({"swapped_captions": sorted(swapped.items())})


def paired_difference(true: np.ndarray, swapped: np.ndarray, *, seed: int,
                      level: float = LEVEL) -> tuple[float, float, float, int]:
    """Mean of true - swapped over images where both are finite, its percentile-bootstrap interval and n."""
    keep = np.isfinite(true) & np.isfinite(swapped)
    diff = true[keep] - swapped[keep]
    if diff.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean, lo, hi = bootstrap(np.mean, diff, seed=seed, level=level)
    return mean, lo, hi, int(diff.size)


def sensitivity(true_records: Sequence[Mapping[str, object]], swapped_records: Sequence[Mapping[str, object]],
                metric_names: Sequence[str], *, seed: int) -> dict[str, object]:
    """The ``caption_sensitivity_*`` columns of one model from its two record sets (paired by image id)."""
    swapped = {str(r["image_id"]): r for r in swapped_records}
    pairs = [(r, swapped[str(r["image_id"])]) for r in true_records if str(r["image_id"]) in swapped]
    row: dict[str, object] = {f"{PREFIX}_n": len(pairs)}
    for name in ranked(list(metric_names)):
        a = goodness(name, np.array([number(t[name]) for t, _ in pairs], dtype=float))
        b = goodness(name, np.array([number(s[name]) for _, s in pairs], dtype=float))
        mean, lo, hi, _ = paired_difference(a, b, seed=seed)
        row.update({f"{PREFIX}_{name}": mean, f"{PREFIX}_{name}_lo": lo, f"{PREFIX}_{name}_hi": hi})
    return row


def columns(metric_names: Sequence[str]) -> list[str]:
    """leaderboard.csv's caption-sensitivity columns, in order."""
    out = [f"{PREFIX}_n"]
    for name in ranked(list(metric_names)):
        out += [f"{PREFIX}_{name}", f"{PREFIX}_{name}_lo", f"{PREFIX}_{name}_hi"]
    return out


def long_rows(leaderboard: Sequence[Mapping[str, str]], metric_names: Sequence[str]) -> list[dict[str, object]]:
    """``analysis/caption_sensitivity.csv`` (and the report's table): one row per caption-reading model and
    ranked metric, from the leaderboard's ``caption_sensitivity_*`` columns."""
    rows: list[dict[str, object]] = []
    for row in leaderboard:
        if not row.get(f"{PREFIX}_n"):
            continue
        for name in ranked(list(metric_names)):
            if f"{PREFIX}_{name}" in row:
                rows.append({"model": row["model"], "metric": name, "n": row[f"{PREFIX}_n"],
                             "sensitivity": row[f"{PREFIX}_{name}"], "lo": row[f"{PREFIX}_{name}_lo"],
                             "hi": row[f"{PREFIX}_{name}_hi"]})
    return rows


LONG_COLUMNS = ("model", "metric", "n", "sensitivity", "lo", "hi")
