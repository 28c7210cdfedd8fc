"""The layer contract seen from the command line: ``python -m bench list`` lists every model and metric without
importing torchvision (read only by metrics and teachers that need their networks) or the trainer (imported
only when ``run`` trains). The contract itself is checked by ``lint-imports`` in .ci/run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import json, sys
from colorbench.cli.main import main
rc = main(["list"])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def listed() -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    listing, _, probe = done.stdout.rstrip().rpartition("\n")
    assert "chromagan" in listing and "ssim" in listing
    return json.loads(probe)


def test_list_does_not_import_torchvision(listed):
    assert listed["rc"] == 0
    assert not [m for m in listed["modules"] if m.split(".")[0] == "torchvision"]  # type: ignore[union-attr]


def test_list_does_not_import_the_trainer(listed):
    trainer = [m for m in listed["modules"] if m in ("colorbench.training",)  # type: ignore[union-attr]
               or m.startswith("colorbench.training.")]
    assert "colorbench.models.chromagan" in listed["modules"]  # the families were imported to list them
    assert not trainer
