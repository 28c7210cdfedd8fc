"""Process hygiene (issue 8): messages through ``logging`` as ``note:/warning:/error:`` lines, progress bars that obey
``--no-progress``, and no record of one run leaking into the next run of the same process."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest

from colorbench.cli.main import main
from colorbench.core import console
from colorbench.metrics.registry import METRICS
from tests.conftest import REPO

PACKAGES = ("bench", "metrics", "models", "reports")
#: Modules whose stdout is their output (command lines and stand-alone measurement scripts).
COMMAND_LINES = ("bench/cli/", "reports/check.py", "bench/experiments/")
FAST = ["--size", "32", "--no-progress", "--no-study", "--quiet"]


def calls(name: str) -> list[tuple[str, ast.Call]]:
    """(module path, call) of every call of the function ``name`` in the packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text(), relative)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                    found.append((relative, node))
    return found


def test_library_code_logs_instead_of_printing():
    printing = [f"{path}:{node.lineno}" for path, node in calls("print")
                if not path.startswith(COMMAND_LINES)]
    assert not printing, printing


def test_every_progress_bar_can_be_turned_off():
    bars = calls("tqdm")
    assert bars
    unconditional = [f"{path}:{node.lineno}" for path, node in bars
                     if "disable" not in {k.arg for k in node.keywords}]
    assert not unconditional, unconditional


def test_messages_read_as_before_and_quiet_keeps_warnings(capsys):
    logger = logging.getLogger("colorbench.some_module")
    console.configure()
    logger.info("metric x is unavailable")
    logger.warning("skipped 7")
    logger.error("on disk", extra={"prefix": "interrupted"})
    assert capsys.readouterr().err.splitlines() == ["note: metric x is unavailable", "warning: skipped 7",
                                                    "interrupted: on disk"]
    console.configure(quiet=True)
    logger.info("hidden")
    logger.warning("shown")
    assert capsys.readouterr().err.splitlines() == ["warning: shown"]
    console.configure()
    assert len([h for h in logging.getLogger("colorbench").handlers if isinstance(h, console._ConsoleHandler)]) == 1


def test_cli_errors_are_logged_on_stderr_and_results_printed_on_stdout(capsys):
    assert main(["run", "--models", "baselin0", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: unknown model 'baselin0'")
    assert main(["list", "--quiet"]) == 0
    assert "baseline0" in capsys.readouterr().out


def test_two_runs_in_one_process_do_not_share_weight_files(tmp_path):
    if METRICS["semantic_kl"].unavailable():
        pytest.skip(METRICS["semantic_kl"].unavailable())

    def weight_files(name: str, metrics: str) -> dict[str, str]:
        assert main(["run", "--models", "gray", "--metrics", metrics, "--out", str(tmp_path / name), *FAST]) == 0
        return json.loads((tmp_path / name / "run.json").read_text())["weight_files"]

    first = weight_files("semantic", "semantic_kl")
    assert len(first) == 1 and Path(next(iter(first))).is_file()
    assert weight_files("pixels", "psnr") == {}  # the first run's network is not this run's
    assert weight_files("semantic-again", "semantic_kl") == first  # built once, recorded in every run using it
