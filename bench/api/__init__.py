"""The Python API: the stable entry points a notebook or another tool calls, exported as ``colorbench.score`` and
``colorbench.list_metrics`` (issue 23: before it the shortest path was the registry's internals).

Both stand on what the command line uses: per-image values come from the metric registry's ``compute`` (one
image at a time, so a value never depends on the images beside it), set-level values from the registry's feature
networks and distance functions, and the folder form runs ``bench score``'s own
:func:`colorbench.pipeline.score_folders.score_folders`, so it gives the numbers the CLI writes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from colorbench.core.device import resolve_device
from colorbench.core.errors import BenchError
from colorbench.core.paths import printable_name
from colorbench.data.segments import slic_segments
from colorbench.io.layout import RunLayout
from colorbench.io.schema import read_csv
from colorbench.metrics.registry import (
    DISTRIBUTION_METRICS,
    METRICS,
    DistributionMetric,
    Metric,
    compute,
    needs_segments,
    select_metrics,
)
from colorbench.pipeline.score_folders import score_folders

ImagesOrFolder = torch.Tensor | str | Path


def list_metrics() -> list[dict[str, object]]:
    """Every registered metric with the metadata a reader of its numbers needs.

    Returns:
        One dict per metric, per-image metrics first, in registry order, with keys ``name``; ``kind``
        (``"per-image"`` or ``"set-level"``); ``direction`` (``"higher"``, ``"lower"``, ``"ideal"`` or
        ``"diagnostic"``); ``ideal`` (the best value for direction ``"ideal"``, else None); ``range`` (lowest,
        highest); ``group`` (the leaderboard table it belongs to); ``unit``; ``parameters``; ``definition`` (one
        line of what is computed, with its source); ``unavailable`` (None, or why it cannot run here, such as a
        missing weight file).

    Example:
        >>> import colorbench
        >>> psnr = next(m for m in colorbench.list_metrics() if m["name"] == "psnr")
        >>> psnr["kind"], psnr["direction"], psnr["range"], psnr["group"], psnr["unit"]
        ('per-image', 'higher', (0.0, 100.0), 'fidelity', 'dB')
        >>> psnr["parameters"]
        {'data_range': 1.0, 'max_db': 100.0}
    """
    rows: list[dict[str, object]] = []
    registered: list[Metric | DistributionMetric] = [*METRICS.values(), *DISTRIBUTION_METRICS.values()]
    for metric in registered:
        per_image = not isinstance(metric, DistributionMetric)
        rows.append({
            "name": metric.name, "kind": "per-image" if per_image else "set-level", "direction": metric.direction,
            "ideal": getattr(metric, "ideal", None), "range": tuple(metric.range), "group": metric.group,
            "unit": getattr(metric, "unit", ""), "parameters": dict(metric.params), "definition": metric.definition,
            "unavailable": metric.unavailable(),
        })
    return rows


def _checked_images(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both be (N, 3, H, W) RGB of one shape, not {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}")
    for role, images in (("pred", pred), ("gt", gt)):
        if not images.is_floating_point() or not bool(((images >= 0) & (images <= 1)).all()):
            raise ValueError(f"{role} must be floating-point RGB in [0, 1] (NaN is not)")


def _score_tensors(pred: torch.Tensor, gt: torch.Tensor, names: Sequence[str], segments: torch.Tensor | None,
                   device: torch.device) -> dict[str, torch.Tensor]:
    _checked_images(pred, gt)
    per_image = [name for name in names if name in METRICS]
    extras = {}
    if needs_segments(per_image):
        if segments is None:  # SLIC superpixels of each ground truth, as `bench score` makes them
            gt_u8 = (gt.detach().cpu() * 255).round().to(torch.uint8)
            segments = torch.stack([slic_segments(None, image)["segments"] for image in gt_u8])
        extras["segments"] = segments.to(device)
    pred, gt = pred.to(device), gt.to(device)
    values = {name: value.cpu() for name, value in compute(per_image, pred, gt, **extras).items()}
    features: dict[Callable[[], torch.nn.Module], tuple[torch.Tensor, torch.Tensor]] = {}
    for name in names:
        if name in DISTRIBUTION_METRICS:
            metric = DISTRIBUTION_METRICS[name]
            if metric.extractor not in features:  # fd and kid_effnet_lite0 share one network and one pass
                with torch.no_grad():
                    extractor = metric.extractor().to(device).eval()
                    features[metric.extractor] = extractor(pred).double(), extractor(gt).double()
            values[name] = torch.tensor(metric.fn(*features[metric.extractor], **metric.params), dtype=torch.float64)
    return {name: values[name] for name in names}


def _score_folders(pred: Path, gt: Path, names: Sequence[str], segments: Path | None, device: str,
                   out: Path | None) -> list[dict[str, object]]:
    if out is None:
        with tempfile.TemporaryDirectory(prefix="colorbench-score-") as scratch:
            return _score_folders(pred, gt, names, segments, device, Path(scratch) / "run")
    score_folders({printable_name(pred): pred}, gt, out=out, metric_names=list(names), device_name=device,
                  segments_dir=segments, progress=False)
    rows = read_csv(RunLayout(out).per_image)
    per_image = [name for name in names if name in METRICS]
    return [{"image_id": row["image_id"], "file": row["file"],
             **{name: float(row[name]) if row[name] != "" else float("nan") for name in per_image}} for row in rows]


def score(
    pred: ImagesOrFolder,
    gt: ImagesOrFolder,
    metrics: Sequence[str] | None = None,
    *,
    segments: torch.Tensor | str | Path | None = None,
    device: str = "auto",
    out: str | Path | None = None,
) -> dict[str, torch.Tensor] | list[dict[str, object]]:
    """Score colorizations against their ground truth with registered metrics (:func:`list_metrics`).

    Args:
        pred: the colorizations: a float tensor (N, 3, H, W) of RGB in [0, 1], or a folder of image files.
        gt: the ground truth, of the same kind: a tensor of pred's shape, or a folder whose files are matched
            to pred's by name stem.
        metrics: metric names (per-image or set-level); None: every per-image metric available here.
        segments: for the segment metrics (``segment_chroma_ratio``, ``vivid_*``): an int64 label map tensor
            (N, H, W), 0 = no segment, or for folders a folder of label-map PNGs named like the images; None:
            SLIC superpixels of each ground truth, as ``bench score`` makes them.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; as the CLI's ``--device``.
        out: folders only: where ``bench score``'s run folder (leaderboard with set-level values and bootstrap
            intervals, run.json) is kept; None: a temporary folder, removed before returning.

    Returns:
        For tensors, a dict metric name -> float64 tensor: shape (N,) per image for per-image metrics (NaN where a
        metric has no value, e.g. MS-SSIM below 161x161), a 0-d tensor for set-level metrics. For folders, one
        record per scored image in name order: ``image_id``, ``file`` and each per-image metric's value (pairs
        that could not be scored are left out, with the reason in ``out``'s run.json).

    Raises:
        ValueError: tensors of the wrong shape, type or range.
        colorbench.core.errors.BenchError: an unknown or unavailable metric (the message names the missing file
            or package), or an unusable folder.

    Example:
        >>> import torch, colorbench
        >>> gt = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> pred = (gt * 0.9).clamp(0, 1)
        >>> values = colorbench.score(pred, gt, metrics=["psnr", "mse"], device="cpu")
        >>> values["psnr"].shape, values["psnr"].dtype
        (torch.Size([2]), torch.float64)
        >>> bool((values["psnr"] - 10 * torch.log10(1 / values["mse"])).abs().max() < 1e-6)
        True
        >>> colorbench.score(gt, gt, metrics=["psnr"], device="cpu")["psnr"]
        tensor([100., 100.], dtype=torch.float64)

        Folders are scored by ``bench score`` itself:

        >>> import pathlib, shutil, tempfile
        >>> from colorbench.io.images import write_png
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for folder, images in (("gt", gt), ("pred", pred)):
        ...     (root / folder).mkdir()
        ...     for i, image in enumerate(images):
        ...         write_png(root / folder / f"im{i}.png", (image * 255).round().to(torch.uint8))
        >>> records = colorbench.score(root / "pred", root / "gt", metrics=["psnr"], device="cpu")
        >>> [(r["image_id"], round(r["psnr"], 1) > 20) for r in records]
        [('im0', True), ('im1', True)]
        >>> shutil.rmtree(root)
    """
    names = list(select_metrics(metrics).per_image) if metrics is None else list(metrics)
    unavailable = select_metrics(names).unavailable
    if unavailable:
        raise BenchError("; ".join(unavailable.values()))
    if isinstance(pred, torch.Tensor) and isinstance(gt, torch.Tensor):
        if segments is not None and not isinstance(segments, torch.Tensor):
            raise ValueError("segments for tensors must be an int64 label-map tensor (N, H, W)")
        return _score_tensors(pred, gt, names, segments, resolve_device(device))
    if isinstance(pred, torch.Tensor) or isinstance(gt, torch.Tensor):
        raise ValueError("pred and gt must both be tensors or both be folders")
    if isinstance(segments, torch.Tensor):
        raise ValueError("segments for folders must be a folder of label-map PNGs")
    return _score_folders(Path(pred), Path(gt), names, None if segments is None else Path(segments), device,
                          None if out is None else Path(out))
