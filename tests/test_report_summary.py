"""A report that opens with the answer (issue 23): the verdict summary first, one line per claim that ran with a
link to its collapsed details, one line for the claims that could not run, plots before their tables, a colour and
a marker per model in scatter plots, and a progress line for the report stage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from colorbench.claims.table import INCONCLUSIVE, NOT_RUN, PLUMBING_ONLY, SUPPORTED, Claim
from colorbench.cli.main import main
from colorbench.reports import plots
from colorbench.reports.check import check_report, find_chromium
from colorbench.reports.html import build_report
from colorbench.reports.verdicts import first_sentence, summarize


def claim(name: str, verdict: str, statement: str = "A claim. More text.", change: str = "") -> Claim:
    return Claim(name, statement, "a test", "some numbers", INCONCLUSIVE, change=change, verdict=verdict)


def test_summary_has_one_line_per_claim_that_ran_and_one_for_the_rest():
    claims = [claim("C1", SUPPORTED), claim("C2", NOT_RUN, change="a run on COCO with instances"),
              claim("C6-premise", PLUMBING_ONLY, "(premise of C6, Sec. 7.6) Global metrics average it away. Why."),
              claim("C7", NOT_RUN, change="bench report RUN --crop-run CROP_RUN")]
    summary = summarize(claims)
    assert [(line.claim, line.verdict, line.anchor) for line in summary.lines] == [
        ("C1", SUPPORTED, "claim-C1"), ("C6-premise", PLUMBING_ONLY, "claim-C6-premise")]
    assert summary.lines[0].sentence == "A claim."
    assert summary.lines[1].sentence == ("(premise of C6, Sec. 7.6) Global metrics average it away. The rule alone "
                                         "says inconclusive, on plumbing data.")
    assert summary.not_run == ("Not run on these records: C2 (needs a run on COCO with instances); C7 (needs bench "
                               "report RUN --crop-run CROP_RUN).")
    assert summarize([claim("C1", SUPPORTED)]).not_run == ""


@pytest.mark.parametrize(("text", "first"), [
    ("Zhang et al. 2016 found it. Then more.", "Zhang et al. 2016 found it."),
    ("Above SSIM 0.9 / PSNR 22 dB they stop (Sec. 7.4). Next.", "Above SSIM 0.9 / PSNR 22 dB they stop (Sec. 7.4)."),
    ("No full stop at all", "No full stop at all"),
])
def test_first_sentence_reads_past_abbreviations_and_decimals(text, first):
    assert first_sentence(text) == first


def test_scatter_gives_thirteen_models_distinct_colours_and_markers(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure) or path)
    models = [f"model-{k}" for k in range(13)]
    rows = [{"model": m, "image_id": str(i), "psnr": str(20 + k + i), "ssim": "0.9"}
            for k, m in enumerate(models) for i in range(3)]
    plots.metric_scatter(rows, "psnr", "ssim", tmp_path / "s.png", skip={"model-12"})
    collections = figures[0].axes[0].collections
    assert [c.get_label() for c in collections] == models[:12]
    colours = {tuple(c.get_facecolor()[0][:3]) for c in collections}
    markers = {c.get_paths()[0].vertices.tobytes() for c in collections}
    assert len(colours) == len(markers) == 12
    assert len(set(plots.model_styles(models).values())) == 13


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("summary") / "run"
    assert main(["run", "--models", "gray,baseline0", "--size", "32", "--metrics",
                 "psnr,ssim,colorfulness,delta_colorfulness", "--out", str(out), "--no-progress"]) == 0
    return out


def test_report_opens_with_verdicts_and_puts_plots_before_tables(sample_run, capsys):
    capsys.readouterr()
    build_report(sample_run, progress=True)
    assert "report" in capsys.readouterr().err  # the progress line of the report stage
    page = (sample_run / "index.html").read_text()
    summary = page.index('<ul class="verdicts">')
    assert summary < page.index("<details") and summary < page.index('<section id="leaderboard">')
    links = re.findall(r'<a href="#(claim-[^"]+)">details</a>', page)
    assert links and all(f'<details id="{anchor}" class="claim">' in page for anchor in links)
    assert "Not run on these records: C2 (needs" in page
    assert page.count('class="badge') == len(links)
    perturbations = page[page.index('<section id="perturbations">'):page.index('<section id="correlations">')]
    assert perturbations.index("curves_") < perturbations.index("<details>") < perturbations.index("<table>")
    assert page.index('id="rule-versions"') < page.index("Verdict changes across rule versions")


def test_report_page_is_checked_in_chromium_with_its_height(sample_run):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    found = check_report(sample_run)
    assert found["broken"] == [] and "claims" in found["sections"]
    assert isinstance(found["height"], int) and found["height"] > 1000
