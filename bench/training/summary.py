"""The training record written to ``summary.json`` and run.json: settings, data sizes, best and worst epoch by
the validation selection metric, and the divergence flag of adversarial models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

from colorbench.core.values import integer, number
from colorbench.data.splits import ManifestEntry
from colorbench.models.trainable import LoopSettings
from colorbench.training.divergence import detect_divergence

#: The validation metric that picks the best and the worst epoch (lower is better), as Table 4 reports MSE.
SELECTION_METRIC = "mse"


def selected_epoch(history: Sequence[dict[str, object]], best: bool) -> dict[str, object] | None:
    """The epoch row with the lowest (``best``) or highest validation value of :data:`SELECTION_METRIC`."""
    scored = [r for r in history if math.isfinite(number(r[f"val_{SELECTION_METRIC}"]))]
    if not scored:
        return None
    return (min if best else max)(scored, key=lambda r: number(r[f"val_{SELECTION_METRIC}"]))


def best_epoch(history: Sequence[dict[str, object]]) -> int | None:
    """The epoch number of :func:`selected_epoch` (best), or None."""
    chosen = selected_epoch(history, True)
    return None if chosen is None else integer(chosen["epoch"])


def batch_exceeds_data(loop: LoopSettings, n_train: int) -> bool:
    """Whether the batch is larger than the training set (Model A's 256 on small data: one step per epoch)."""
    return loop.batch_size > n_train


def summarize(history: list[dict[str, object]], loop: LoopSettings, options: dict[str, object],
              adversarial_terms: tuple[str, str] | None, fit: Sequence[ManifestEntry], val: Sequence[ManifestEntry],
              resumed_from: int, left_out: Sequence[ManifestEntry] = ()) -> dict[str, object]:
    """The training record: settings (the loop's, then the model's options), data sizes (``left_out``: the
    training images the model cannot read, colorbench.models.captions.readable_entries), best/worst epoch by the
    selection metric, and the divergence flag (None for a model trained without an adversary)."""
    def pick(best: bool) -> dict[str, object] | None:
        chosen = selected_epoch(history, best)
        return None if chosen is None else {"epoch": chosen["epoch"],
                                            **{k: v for k, v in chosen.items() if k.startswith("val_")}}

    divergence = None
    if adversarial_terms is not None:
        generator, critic = (f"train_{name}" for name in adversarial_terms)
        if all(generator in r and critic in r for r in history):
            divergence = detect_divergence([number(r[generator]) for r in history],
                                           [number(r[critic]) for r in history],
                                           loop.divergence_min_points, loop.divergence_false_positive_bound)
    return {
        "settings": {**asdict(loop), **options}, "epochs": len(history),
        "steps": history[-1]["step"] if history else 0, "resumed_from_epoch": resumed_from or None,
        "n_train_images": len(fit), "batch_exceeds_training_set": batch_exceeds_data(loop, len(fit)),
        "validation_images": [e.image_id for e in val],
        "images_without_caption": [e.image_id for e in left_out],
        "selection_metric": f"val_{SELECTION_METRIC} (lower is better)",
        "best_epoch": pick(True), "worst_epoch": pick(False), "evaluated_epoch": len(history),
        "divergence": divergence, "epochs_table": history,
    }
