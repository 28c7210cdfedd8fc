"""Import names that cannot clash: colorbench installs as one package, ``colorbench`` (plus the two-file ``bench``
that serves ``python -m bench``), so a user's own ``metrics.py``, ``models/`` or ``reports.py`` (common in ML
projects) cannot shadow the harness, with an editable install (this test session's) or a plain ``pip install .``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO

#: What a user's project folder typically holds: modules named like the harness's top-level folders.
USER_FILES = {
    "metrics.py": "raise ImportError('the user project metrics.py was imported')\n",
    "reports.py": "raise ImportError('the user project reports.py was imported')\n",
    "models/__init__.py": "raise ImportError('the user project models/ was imported')\n",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder holding metrics.py, reports.py and models/, and two images to score."""
    root = tmp_path_factory.mktemp("user-project")
    for name, text in USER_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    rng = np.random.default_rng(0)
    for folder in ("gt", "pred"):
        (root / folder).mkdir()
        for stem in ("a", "b"):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / folder / f"{stem}.png")
    return root


def bench(python: str, project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "bench", *args], cwd=project, capture_output=True, text=True, timeout=600,
                          env=env)


def list_and_score(python: str, project: Path, out: str, env: dict[str, str] | None = None) -> None:
    listed = bench(python, project, "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "chromagan" in listed.stdout and "ssim" in listed.stdout
    scored = bench(python, project, "score", "--gt", "gt", "--pred", "pred", "--metrics", "psnr,ssim", "--out", out,
                   "--no-progress", env=env)
    assert scored.returncode == 0, scored.stderr
    assert (project / out / "leaderboard.csv").is_file()


def test_editable_install_ignores_a_user_project_named_like_its_folders(project: Path):
    list_and_score(sys.executable, project, "scored-editable")


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps .`` (not editable) into a new virtual environment that borrows this one's
    third-party packages through a .pth line; a .pth file inside a borrowed folder is not run, so this session's
    editable hook stays out of it. Returns the environment's site-packages."""
    env = tmp_path_factory.mktemp("plain-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                                str(REPO)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return site


def test_plain_install_puts_one_package_and_the_command_shim(plain_install: Path):
    top_level = {p.name for p in plain_install.iterdir() if (p / "__init__.py").is_file()}
    assert {"colorbench", "bench"} <= top_level
    assert not top_level & {"models", "metrics", "reports"}
    assert sorted(p.name for p in (plain_install / "bench").glob("*.py")) == ["__init__.py", "__main__.py"]
    assert (plain_install / "colorbench" / "reports" / "templates" / "index.html.j2").is_file()


def test_plain_install_ignores_a_user_project_named_like_its_folders(plain_install: Path, project: Path):
    python = str(plain_install.parents[2] / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([python, "-c", "import colorbench; print(colorbench.__file__)"], cwd=project,
                           capture_output=True, text=True, check=True, env=env).stdout
    assert Path(where.strip()).is_relative_to(plain_install)
    list_and_score(python, project, "scored-plain", env=env)
