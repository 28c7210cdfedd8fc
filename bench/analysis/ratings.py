"""The rating protocol of claim C2 (rule ``c2@5``, issue 21): people judge pairs of arms of one image, which is
more colourful *and* plausible, without seeing the truth, so that a lab can collect its own two-alternative
forced choices (as BAPPS did for LPIPS, Zhang et al. 2018, but without a reference image).

:func:`write_rating_page` writes ``ratings/index.html``, a static page (no server, no network) that shows the pairs
one at a time, each arm on a random side, and asks "Which colorization looks more natural?" (left, right, or
cannot tell; keys 1, 2, 0). Its "Download CSV" button saves the choices as ``ratings.csv`` with the columns
RATING_COLUMNS: ``choice`` is ``a``, ``b`` (the pair's arms as listed) or ``none``. Put the file (several
raters' rows may be concatenated) at ``analysis/ratings.csv`` of the run folder; :func:`load_ratings` reads it
back, and the claims table uses it as the judge "ratings" once it passes the gate (it must then include the
gate's pairs: truth against grey, and every twin pair, which :func:`rating_pairs` serves first).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

from colorbench.core.errors import BenchError
from colorbench.io.schema import read_csv

RATING_COLUMNS = ("rater", "pair_id", "image_id", "arm_a", "arm_b", "choice")
CHOICES = ("a", "b", "none")
QUESTION = "Which colorization looks more natural?"
Pair = dict[str, str]  # pair_id, image_id, arm_a, arm_b, a, b (image paths relative to the page)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>colorbench ratings</title>
<style>body{{font-family:sans-serif;margin:2em}} img{{width:45%;margin:1%}}
button{{font-size:1.1em;margin:.3em}}</style>
</head><body>
<h1>{question}</h1>
<p id="progress"></p>
<div><img id="left" alt="left"><img id="right" alt="right"></div>
<p><button id="pick-left">Left (1)</button><button id="pick-none">Cannot tell (0)</button>
<button id="pick-right">Right (2)</button></p>
<p>Rater name: <input id="rater" value="anonymous"> <button id="download">Download CSV</button></p>
<script>
const PAIRS = {pairs};
const COLUMNS = {columns};
const order = PAIRS.map((_, k) => k).sort(() => Math.random() - 0.5);
const flipped = PAIRS.map(() => Math.random() < 0.5);
const choices = [];
let at = 0;
function show() {{
  document.getElementById("progress").textContent = at < order.length
    ? `pair ${{at + 1}} of ${{order.length}}` : "done: download the CSV";
  if (at >= order.length) return;
  const p = PAIRS[order[at]], flip = flipped[order[at]];
  document.getElementById("left").src = flip ? p.b : p.a;
  document.getElementById("right").src = flip ? p.a : p.b;
}}
function pick(side) {{
  if (at >= order.length) return;
  const p = PAIRS[order[at]], flip = flipped[order[at]];
  const choice = side === "none" ? "none" : ((side === "left") !== flip ? "a" : "b");
  choices.push([p.pair_id, p.image_id, p.arm_a, p.arm_b, choice]);
  at += 1;
  show();
}}
function download() {{
  const rater = document.getElementById("rater").value.replace(/[",\\n]/g, " ");
  const lines = [COLUMNS.join(",")].concat(choices.map(c => [rater, ...c].join(",")));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {{type: "text/csv"}}));
  link.download = "ratings.csv";
  link.click();
}}
document.getElementById("pick-left").onclick = () => pick("left");
document.getElementById("pick-right").onclick = () => pick("right");
document.getElementById("pick-none").onclick = () => pick("none");
document.getElementById("download").onclick = download;
document.addEventListener("keydown", e => {{
  if (e.target.id === "rater") return;
  ({{"1": () => pick("left"), "2": () => pick("right"), "0": () => pick("none")}}[e.key] || (() => {{}}))();
}});
show();
</script></body></html>
"""


def rating_pairs(arm_rows: Sequence[Mapping[str, object]], image_path: str) -> list[Pair]:
    """The pairs to rate from ``analysis/c2_arms.csv`` rows: per image the gate's pairs (truth / grey, each twin
    pair), then every pair of its dull and alternative arms (the endpoints' pairs); ``image_path`` is the
    template (fields ``image``, ``arm``, with ':' written '_') of an arm's image relative to the page."""
    by_image: dict[str, list[tuple[str, str, str]]] = {}
    for row in arm_rows:
        by_image.setdefault(str(row["image_id"]), []).append((str(row["arm"]), str(row["role"]), str(row["pair"])))
    pairs: list[Pair] = []
    for image, arms in by_image.items():
        names = [a for a, _, _ in arms]
        gate = [("truth", "grey")] if {"truth", "grey"} <= set(names) else []
        gate += [(a, f"implausible_twin:{p}") for a, role, p in arms if role == "plausible_twin"]
        endpoint = list(combinations([a for a, role, _ in arms if role in ("dull", "alternative")], 2))
        for a, b in [*gate, *endpoint]:
            pairs.append({"pair_id": str(len(pairs)), "image_id": image, "arm_a": a, "arm_b": b,
                          "a": image_path.format(image=image, arm=a.replace(":", "_")),
                          "b": image_path.format(image=image, arm=b.replace(":", "_"))})
    return pairs


def write_rating_page(folder: Path, pairs: Sequence[Pair]) -> Path:
    """``folder/index.html``, the rating page serving ``pairs`` (their image paths relative to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "index.html"
    page.write_text(PAGE.format(question=html.escape(QUESTION), pairs=json.dumps(list(pairs)),
                                columns=json.dumps(list(RATING_COLUMNS))))
    return page


def load_ratings(path: Path) -> list[dict[str, str]]:
    """The rows of a ratings CSV written by the rating page; a missing column or an unknown choice is an error
    naming the file and the row."""
    rows = read_csv(path)
    for number, row in enumerate(rows, start=2):
        if missing := [c for c in RATING_COLUMNS if not row.get(c) and c != "rater"]:
            raise BenchError(f"{path} line {number}: missing {', '.join(missing)}")
        if row["choice"] not in CHOICES:
            raise BenchError(f"{path} line {number}: choice {row['choice']!r} is not one of {', '.join(CHOICES)}")
    return rows
