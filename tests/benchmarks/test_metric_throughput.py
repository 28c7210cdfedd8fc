"""Throughput of every metric at 224x224 and 512x512, batch 32, on real photos (coco-mini val2017 when present,
else scikit-image's photos), through :func:`colorbench.metrics.registry.compute` as the scorer calls it.

The test suite runs with ``--benchmark-disable`` (pyproject addopts): each case then runs once, eagerly, on a
batch of 2, as a smoke test that keeps CI fast. To measure, enable benchmarking: batches are then 32 (eight
distinct photos, each with four kinds of damage), the metric kernels are compiled as in a real run, and a
warm-up round keeps compilation out of the timings:

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-warmup=on --benchmark-warmup-iterations=1 \\
        --benchmark-columns=mean,ops,rounds

images/s = 32 x ops. The 512x512 cases are marked ``slow`` (``-m "not slow"`` leaves them out).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from colorbench.metrics.registry import DISTRIBUTION_METRICS, METRICS, compute
from tests.conftest import COCO_MINI
from tests.metric_inputs import DAMAGE, coco_batch, damaged, photo_batch, slic_segments

BATCH = 32
SMOKE_BATCH = 2
SIZES = [224, pytest.param(512, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def measuring(request) -> bool:
    """Whether pytest-benchmark times (--benchmark-enable overrides the --benchmark-disable of addopts)."""
    option = request.config.getoption
    return bool(option("benchmark_enable", default=False) or not option("benchmark_disable", default=True))


@pytest.fixture(scope="module", autouse=True)
def compile_when_measuring(measuring):
    """Benchmarks measure what a run does (compiled kernels); the once-through smoke run stays eager."""
    patch = pytest.MonkeyPatch()
    if measuring:
        patch.setenv("COLORBENCH_COMPILE", "always")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def batches(measuring):
    cache: dict[int, tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = {}
    batch = BATCH if measuring else SMOKE_BATCH

    def build(size: int):
        if size not in cache:
            if (COCO_MINI / "annotations" / "instances_val2017.json").is_file():
                gt, segments = coco_batch(COCO_MINI, 8, size=size)
            else:
                photos = F.interpolate(photo_batch(), size=(size, size), mode="bilinear", antialias=True)
                gt = torch.cat((photos, photos.flip(-1)))  # eight images, as from coco-mini
                segments = slic_segments(gt)
            gt, segments = gt[:batch], segments[:batch]
            pred = torch.cat([damaged(gt, kind) for kind in DAMAGE])[:batch]
            repeat = len(pred) // len(gt)
            cache[size] = pred.float(), gt.repeat(repeat, 1, 1, 1).float(), {"segments": segments.repeat(repeat, 1, 1)}
        return cache[size]

    return build


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(METRICS))
def test_per_image_metric_throughput(benchmark, batches, name, size):
    reason = METRICS[name].unavailable()
    if reason:
        pytest.skip(reason)
    pred, gt, extras = batches(size)
    benchmark.extra_info.update(batch=len(pred), size=size)
    values = benchmark(compute, [name], pred, gt, **extras)[name]
    assert values.shape == (len(pred),)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(DISTRIBUTION_METRICS))
def test_distribution_metric_throughput(benchmark, batches, name, size):
    """Feature extraction of predictions and ground truths of one batch, plus the distance (Frechet, KID) of the two
    feature sets (in a run that last step happens once per model, on all images)."""
    metric = DISTRIBUTION_METRICS[name]
    if metric.unavailable():
        pytest.skip(metric.unavailable())
    extractor = metric.extractor()
    pred, gt, _ = batches(size)

    def run() -> float:
        with torch.inference_mode():
            return metric.fn(extractor(pred).double(), extractor(gt).double(), **metric.params)

    benchmark.extra_info.update(batch=len(pred), size=size)
    value = benchmark(run)
    assert math.isfinite(value) and value >= metric.range[0] - 1e-6  # KID's unbiased estimate may be negative
