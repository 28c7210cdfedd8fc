"""Input throughput: originals at 224x224 from the prepared cache (bench data prepare) against decoding the JPEGs,
and one ChromaGAN training step, both as in a run (one process, no DataLoader workers: images/s per core).

The originals are coco-mini val2017 (JPEGs of about 640x480) when present, else the built-in sample. Under the
suite's --benchmark-disable each case runs once as a smoke test; to measure:

    python -m pytest tests/benchmarks/test_loader_throughput.py --benchmark-enable --benchmark-columns=mean,ops,rounds

images/s = images x ops (the image count is in each case's extra_info). Goal: the prepared path at least 10x the
raw path per core.
"""

from __future__ import annotations

import pytest
import torch

from colorbench.data.color import luma_bt601, rgb_to_lab
from colorbench.data.loader import Batch, OriginalsDataset, Preprocess, collate
from colorbench.data.prepared import prepare
from colorbench.data.sources import open_source
from colorbench.data.splits import build_manifest
from colorbench.models.chromagan import build
from colorbench.models.teachers import Targets, teacher_classes
from colorbench.training.loop import prepare_state
from tests.conftest import COCO_MINI

SIZE = 224


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, OriginalsDataset]:
    """The same originals read raw and from a prepared cache of this module's own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("COLORBENCH_CACHE", str(tmp_path_factory.mktemp("prepared-cache")))
    spec = f"coco:{COCO_MINI}:val2017" if (COCO_MINI / "val2017").is_dir() else "sample:test"
    manifest = build_manifest(open_source(spec), "full", progress=False)
    cfg = Preprocess(SIZE, "resize")
    raw = OriginalsDataset(manifest.usable, cfg)
    prepare(manifest, SIZE, "resize", progress=False)
    served = OriginalsDataset(manifest.usable, cfg)
    patch.undo()
    assert raw.prepared is None and served.prepared is not None
    return {"raw": raw, "prepared": served}


@pytest.mark.parametrize("path", ["raw", "prepared"])
def test_loader_throughput(benchmark, datasets, path):
    dataset = datasets[path]

    def read_all() -> dict[str, object]:
        return collate([dataset[i] for i in range(len(dataset))])

    benchmark.extra_info.update(images=len(dataset), size=SIZE, path=path)
    batch = benchmark(read_all)
    assert batch["rgb_u8"].shape == (len(dataset), 3, SIZE, SIZE) and not batch["failed"]


def test_training_step_throughput(benchmark):
    """One generator + critic step of ChromaGAN's smoke profile (64x64, quarter widths, batch 4) on the CPU."""
    model = build("chromagan", profile="smoke")
    s = model.loop_settings()
    _, step = prepare_state(model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    n, size = s.batch_size, s.image_size
    rgb = torch.rand(n, 3, size, size, generator=generator)
    lab = rgb_to_lab(rgb)
    ids = [str(i) for i in range(n)]
    batch = Batch(ids, [""] * n, (rgb * 255).byte(), rgb, lab[:, :1], lab[:, 1:], luma_bt601(rgb))
    probs = torch.rand(n, teacher_classes(model.teacher), generator=generator).softmax(dim=1)
    model.targets = {image_id: Targets(probs[k], torch.tensor(True)) for k, image_id in enumerate(ids)}
    benchmark.extra_info.update(images=n, size=size, width=model.settings.width)
    losses = benchmark(model.training_step, batch, step)
    assert all(bool(torch.isfinite(v)) for v in losses.values())
