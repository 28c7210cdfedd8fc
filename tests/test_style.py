"""The code base stays ruff-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_ruff_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


#: The longest a module may grow before it is split (the redesign's rule: small modules, one subject each).
MAX_LINES = 400


def test_no_module_is_longer_than_the_limit():
    folders = ("bench", "models", "metrics", "reports", "tests")
    modules = [p for folder in folders for p in (REPO / folder).rglob("*.py")]
    assert len(modules) > 100
    long = {str(p.relative_to(REPO)): n for p in modules if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
