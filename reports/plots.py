"""Figures for the report (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.images import atomic_write_bytes


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Save a figure as PNG atomically and close it."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def psnr_colorfulness_scatter(per_image: Sequence[dict[str, str]], path: Path, *, skip: set[str]) -> Path:
    """One point per (model, image): PSNR against colorfulness, with the paper's 22 dB line; models in
    ``skip`` (references whose PSNR sits at the cap) are left out."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    models = [m for m in dict.fromkeys(row["model"] for row in per_image) if m not in skip]
    for model in models:
        rows = [r for r in per_image if r["model"] == model and r["psnr"] and r["colorfulness"]]
        axis.scatter([float(r["colorfulness"]) for r in rows], [float(r["psnr"]) for r in rows], s=14, alpha=0.7,
                     label=model)
    axis.axhline(22.0, color="grey", linestyle="--", linewidth=1, label="22 dB (paper Sec. 7.5)")
    axis.set_xlabel("colorfulness (Hasler-Suesstrunk, signed)")
    axis.set_ylabel("PSNR (dB, capped)")
    axis.set_title("PSNR against colorfulness, one point per image")
    axis.legend(fontsize=8, loc="best")
    return save_figure(figure, path)
