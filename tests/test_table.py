"""``bench table`` (colorbench.cli.table, colorbench.analysis.paper_table): tables for papers from finished run
folders, with direction arrows, significant digits, the runs' own intervals and the best value per column in bold.
The LaTeX output is checked as a string (column count of every row against the column spec, balanced braces,
escaped specials) and compiled when pdflatex is on PATH."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbench.analysis.paper_table import Estimate, TableRow, render_table, significant
from colorbench.cli.main import main
from colorbench.io.images import write_png
from colorbench.io.schema import read_csv

METRICS = "psnr,deltae2000,delta_colorfulness"


def _images(folder: Path, seed: int, noise: int) -> Path:
    """Four 24x24 images: a fixed colour pattern plus seeded noise of the given amplitude."""
    folder.mkdir(parents=True)
    base = np.linspace(0, 255, 3 * 24 * 24).reshape(3, 24, 24)
    rng = np.random.default_rng(seed)
    for i in range(4):
        pixels = np.clip(np.roll(base, 5 * i, axis=2) + rng.integers(-noise, noise + 1, base.shape), 0, 255)
        write_png(folder / f"im{i}.png", torch.from_numpy(pixels.astype(np.uint8)))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two score folders: ``close`` (small noise) and ``far`` (large noise) in the first, ``close`` again in the
    second, so that model ``close`` appears in two runs."""
    root = tmp_path_factory.mktemp("table")
    gt = _images(root / "gt", 0, 0)
    first, second = root / "first", root / "second"
    for out, name, noise in ((first, "close", 8), (second, "close", 4)):
        assert main(["score", "--pred", str(_images(root / f"{out.name}-{name}", 1, noise)), "--gt", str(gt),
                     "--out", str(out), "--name", name, "--metrics", METRICS, "--no-progress"]) == 0
    far = root / "far-run"
    assert main(["score", "--pred", str(_images(root / "far", 2, 60)), "--gt", str(gt), "--out", str(far),
                 "--name", "far", "--metrics", METRICS, "--no-progress"]) == 0
    return first, far, second


def _table(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["table", *args]) == 0
    return capsys.readouterr().out


def test_markdown_has_arrows_bold_best_and_run_labels(runs, capsys):
    first, far, second = runs
    text = _table(capsys, str(first), str(far), str(second), "--metrics", METRICS)
    header, rule, *body = text.splitlines()
    assert header == "| model | psnr \u2191 | deltae2000 \u2193 | delta_colorfulness \u21920 |"
    assert rule == "| :--- | ---: | ---: | ---: |"
    labels = [line.split(" | ")[0].removeprefix("| ") for line in body]
    assert labels == ["close (first)", "far", "close (second)"]
    far_row = body[1]
    assert "**" not in far_row.split(" | ")[1] and "**" not in far_row.split(" | ")[2]  # worst PSNR and deltaE
    assert "**" in body[2].split(" | ")[1] and "**" in body[2].split(" | ")[2]  # least noise: best of both


def test_printed_values_are_the_runs_own(runs, capsys):
    first, far, _ = runs
    board = {row["model"]: row for row in read_csv(far / "leaderboard.csv")}
    rows = list(csv.reader(io.StringIO(_table(capsys, str(first), str(far), "--format", "csv", "--digits", "4",
                                              "--interval", "range", "--metrics", "psnr"))))
    assert rows[0] == ["model", "psnr", "psnr_lo", "psnr_hi"]
    far_row = next(row for row in rows if row[0] == "far")
    assert far_row[1] == significant(float(board["far"]["psnr"]), 4)
    places = len(far_row[1].partition(".")[2])
    assert far_row[2:] == [f"{float(board['far'][k]):.{places}f}" for k in ("psnr_lo", "psnr_hi")]


def _body_rows(tabular: str) -> list[str]:
    lines = tabular.strip().splitlines()
    assert lines[0].startswith(r"\begin{tabular}{") and lines[-1] == r"\end{tabular}"
    assert lines[1] == r"\toprule" and lines[3] == r"\midrule" and lines[-2] == r"\bottomrule"
    return [lines[2], *lines[4:-2]]


def _check_well_formed(tabular: str) -> None:
    spec = re.match(r"\\begin\{tabular\}\{([lrc]+)\}", tabular)
    assert spec is not None
    for row in _body_rows(tabular):
        assert row.endswith(r" \\")
        assert len(re.split(r"(?<!\\)&", row)) == len(spec.group(1)), row
    unescaped = tabular.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for char in unescaped:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert not re.search(r"(?<!\\)[_%#]", tabular)
    assert tabular.count("$") % 2 == 0


def test_latex_is_a_well_formed_booktabs_tabular(runs, capsys, tmp_path):
    first, far, second = runs
    tabular = _table(capsys, str(first), str(far), str(second), "--format", "latex", "--metrics", METRICS)
    _check_well_formed(tabular)
    assert r"delta\_colorfulness $\rightarrow 0$" in tabular and r"psnr $\uparrow$" in tabular
    assert r"\textbf{" in tabular and r"$\pm$" in tabular
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH: the string checks above stand in for compiling the table")
    document = tmp_path / "table.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                        f"{tabular}\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_specials_in_model_names_are_escaped():
    rows = [TableRow("net_v2 50% #1 & {x}", {"psnr": Estimate(20.0, 19.0, 21.0)})]
    tabular = render_table(rows, ["psnr"], fmt="latex")
    _check_well_formed(tabular)
    assert r"net\_v2 50\% \#1 \& \{x\}" in tabular


def test_ties_are_all_bold_and_best_follows_the_direction():
    rows = [TableRow(name, {"psnr": Estimate(psnr), "delta_colorfulness": Estimate(delta),
                            "colorfulness": Estimate(cf)})
            for name, psnr, delta, cf in (("a", 22.51, -3.0, 40.0), ("b", 22.49, 1.0, 50.0), ("c", 21.0, 5.0, 60.0))]
    text = render_table(rows, ["psnr", "delta_colorfulness", "colorfulness"], interval="none")
    body = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in text.splitlines()[2:]}
    assert body["a"][0] == body["b"][0] == "**22.5**" and body["c"][0] == "21.0"  # a tie at 3 digits
    assert body["b"][1] == "**1.00**" and body["a"][1] == "-3.00"  # ideal 0: closest, not largest
    assert "**" not in "".join(cells[2] for cells in body.values())  # diagnostics are never bold
    assert "colorfulness |" in text.splitlines()[0]  # and carry no arrow


def test_significant_digits_in_fixed_notation():
    assert [significant(v, 3) for v in (12345.0, 0.0012345, 22.4812, -0.0004, float("nan"))] == \
        ["12300", "0.00123", "22.5", "-0.000400", "n/a"]


def test_missing_metric_is_exit_2_naming_folder_and_metric(runs, capsys):
    first, far, _ = runs
    assert main(["table", str(first), str(far), "--metrics", "psnr,ssim"]) == 2
    err = capsys.readouterr().err
    assert str(first) in err and "metric ssim is not in its leaderboard.csv" in err


def test_a_folder_without_run_json_is_refused(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_default_columns_are_the_first_runs_metrics(runs, capsys):
    first, _, _ = runs
    header = _table(capsys, str(first)).splitlines()[0]
    assert header == "| model | psnr \u2191 | deltae2000 \u2193 | delta_colorfulness \u21920 |"


def test_an_edited_leaderboard_is_refused(runs, tmp_path, capsys):
    """A leaderboard changed after the run wrote it (here: one value) no longer matches run.json's sha256; a
    paper table is never made from it."""
    edited = tmp_path / "edited"
    shutil.copytree(runs[0], edited)
    board = edited / "leaderboard.csv"
    board.write_bytes(board.read_bytes()[:-1] + b"1\n")
    assert main(["table", str(edited)]) == 2
    err = capsys.readouterr().err
    assert str(edited) in err and "not the table the run wrote" in err
