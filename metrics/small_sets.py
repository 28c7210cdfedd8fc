"""Which set-level values were computed on too few images to be trusted (issue 23: the default Frechet distance
was reported at N = 79 against 1,280 feature dimensions without a word). Each set-level metric states its
threshold and the reason in its registry row (:attr:`DistributionMetric.min_images`); this module compares the
images each model was scored on with it, for run.json's ``set_level`` section and the one-line note on stderr."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from colorbench.metrics.registry import DISTRIBUTION_METRICS


def set_level_section(names: Sequence[str], n_by_model: Mapping[str, int]) -> dict[str, dict[str, object]]:
    """Per set-level metric: its threshold (``min_images``), why, and the models scored below it with their N
    (``below``: model -> N; empty when every model had enough images)."""
    section: dict[str, dict[str, object]] = {}
    for name in names:
        metric = DISTRIBUTION_METRICS[name]
        below = {model: n for model, n in n_by_model.items() if n < metric.min_images}
        section[name] = {"min_images": metric.min_images, "reason": metric.min_images_reason, "below": below}
    return section


def small_set_notes(section: Mapping[str, Mapping[str, object]]) -> list[str]:
    """One line per metric that some model was scored on below its threshold."""
    notes = []
    for name, entry in section.items():
        below = entry["below"]
        assert isinstance(below, Mapping)
        if below:
            counts = ", ".join(f"{model} N = {n}" for model, n in below.items())
            notes.append(f"{name} computed below {entry['min_images']} images ({counts}): {entry['reason']}")
    return notes
