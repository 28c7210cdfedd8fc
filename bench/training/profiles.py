"""The training profiles the CLI offers: every trained family provides ``smoke`` and ``paper``
(models/trainable.py); ``auto`` picks one from the training source."""

from __future__ import annotations

from colorbench.core.errors import BenchError
from colorbench.models.trainable import PROFILE_NAMES

PROFILE_CHOICES = ("auto", *PROFILE_NAMES)


def resolve_profile(name: str, train_source: str) -> str:
    """``auto`` -> ``smoke`` when training on the built-in sample, ``paper`` otherwise."""
    if name == "auto":
        return "smoke" if train_source.startswith("sample:") else "paper"
    if name not in PROFILE_NAMES:
        raise BenchError(f"unknown training profile {name!r}; choose one of {', '.join(PROFILE_CHOICES)}")
    return name
