"""Shared fixtures: real photos, the coco-mini root (tests skip, saying why, where it is absent), a private
cache folder for the built-in sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
COCO_MINI = REPO.parent / "shared" / "data" / "coco-mini"


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the sample and scan caches of the test session out of the user's ~/.cache, and run metric
    kernels eagerly (tests/test_kernels.py checks the compiled path against the eager one)."""
    os.environ["COLORBENCH_CACHE"] = str(tmp_path_factory.mktemp("colorbench-cache"))
    os.environ["COLORBENCH_COMPILE"] = "0"


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    if not (COCO_MINI / "annotations" / "captions_val2017.json").is_file():
        pytest.skip(f"coco-mini not found at {COCO_MINI} (the shared data folder beside the checkout)")
    return COCO_MINI


def to_batch_tensor(*arrays: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> float (B, 3, H, W) in [0, 1]."""
    return torch.stack([torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1) for a in arrays]).double() / 255


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """Real colour photos from scikit-image, cropped to a common 128x160 size."""
    import skimage.data

    arrays = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    return [a[:128, :160, :3].copy() for a in arrays]
