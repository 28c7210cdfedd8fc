"""Every input in the key of what is derived from it (issue 22, kinds 1 and 2), run side: edit one input alone,
run again, and assert what was recomputed and what was not (the README's cache section, one case per row).

The source is a copy of the built-in sample's test part with an instances file of our own (one rectangle per
image), so segment maps are COCO instances. Recomputation is read from the run folder: a PNG rewritten gets a new
mtime, a record recomputed appends a line to its records file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from colorbench.cli.main import main
from colorbench.data.sources import open_source
from colorbench.io.layout import RunLayout
from colorbench.io.schema import read_csv
from colorbench.models import registry
from colorbench.models.base import Colorizer
from colorbench.models.registry import ModelSpec
from colorbench.pipeline import data_stage
from colorbench.pipeline.caption_sensitivity import swapped_captions, swapped_name
from colorbench.pipeline.scoring import metric_set_id
from tests.dependency_sources import coco_copy, edit_caption, edit_pixel, edit_polygon, flip

METRICS = ["psnr", "vivid_recall"]
MODELS = ["gray", "caption-tint"]
EDITED = "7"  # the image each case edits
SWAPPED = swapped_name("caption-tint")


class CaptionTint(Colorizer):
    """A caption-reading model: the grey input tinted by a colour that the caption's length decides."""

    def colorize(self, inputs):
        grey = inputs.L / 100
        tint = torch.tensor([[len(c) % 7 / 10, len(c) % 5 / 10, 0.0] for c in inputs.captions])
        return (grey.expand(-1, 3, -1, -1) + tint[:, :, None, None]).clamp(0, 1)


@pytest.fixture
def caption_model(monkeypatch):
    spec = ModelSpec("caption-tint", lambda: CaptionTint(), ("L", "caption"), "none", "caption-reading test model")
    monkeypatch.setitem(registry._REGISTRY, "caption-tint", spec)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return coco_copy(tmp_path, "test")


def run(root: Path, out: Path, models: list[str] = MODELS) -> None:
    open_source.cache_clear()  # a new process would read the edited files afresh
    assert main(["run", "--models", ",".join(models), "--eval", f"coco:{root}:test", "--out", str(out), "--size",
                 "32", "--no-progress", "--no-study", "--metrics", ",".join(METRICS)]) == 0


def given_captions(out: Path) -> dict[str, str]:
    """The caption each image receives in the caption model's swapped-caption evaluation."""
    rows = [row for row in read_csv(out / "manifest.csv") if row["status"] == "ok"]
    return swapped_captions([row["image_id"] for row in rows], [row["caption"] for row in rows], seed=0)


def written(out: Path) -> dict[str, int]:
    """mtime (ns) of every PNG of the run folder's image stages."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for folder in ("ground_truth", "gray", "segments",
                                                                         "predictions")
            for p in (out / folder).rglob("*.png")}


def record_lines(out: Path) -> Counter[tuple[str, str]]:
    """How many record lines each (model, image id) has: one per computation."""
    layout, counts = RunLayout(out), Counter()
    for model in MODELS:
        for path in layout.records_dir(model, metric_set_id(METRICS)).glob("rank-*.jsonl"):
            counts.update((model, str(json.loads(line)["image_id"])) for line in path.read_text().splitlines())
    return counts


def recomputed(root: Path, out: Path, edit) -> tuple[set[str], set[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """Run, apply ``edit``, run again: the PNGs rewritten and the (model, image) records recomputed."""
    run(root, out)
    files, records = written(out), record_lines(out)
    edit()
    run(root, out)
    after, records_after = written(out), record_lines(out)
    return ({p for p in after if files.get(p) != after[p]},
            {k for k in records_after if records_after[k] != records[k]})


def test_edit_one_images_polygons_remakes_its_map_and_segment_records_only(root, tmp_path, caption_model):
    files, records = recomputed(root, tmp_path / "out", lambda: edit_polygon(root, "test", EDITED))
    assert files == {f"segments/{EDITED}.png"}
    assert records == {(m, EDITED) for m in MODELS}


def test_deleted_segment_maps_are_remade_and_records_follow_their_pixels(root, tmp_path, caption_model):
    """Deleting segments/ remakes every map; identical maps keep the records computed with them."""
    out = tmp_path / "out"
    files, records = recomputed(root, out, lambda: shutil.rmtree(out / "segments"))
    assert files == {p for p in written(out) if p.startswith("segments/")} and not records


def test_edit_one_caption_remakes_the_caption_models_prediction_only(root, tmp_path, caption_model):
    out = tmp_path / "out"
    given: list[dict[str, str]] = []

    def edit_and_note() -> None:
        given.append(given_captions(out))
        edit_caption(root, "test", EDITED)

    files, records = recomputed(root, out, edit_and_note)
    moved = {i for i, caption in given_captions(out).items() if given[0][i] != caption}
    assert files == {f"predictions/caption-tint/{EDITED}.png"} | {
        f"predictions/{SWAPPED}/{i}.png" for i in moved}
    assert records == {("caption-tint", EDITED)}
    shown = {row["image_id"]: row["caption"] for row in read_csv(out / "manifest.csv")}
    assert shown[EDITED] == "A grey cat, renamed."


def test_edit_one_file_remakes_everything_of_that_image_only(root, tmp_path, caption_model):
    files, records = recomputed(root, tmp_path / "out", lambda: edit_pixel(root, "test", EDITED))
    assert files == {f"{stage}/{EDITED}.png" for stage in ("ground_truth", "gray", "segments")} | {
        f"predictions/{m}/{EDITED}.png" for m in (*MODELS, SWAPPED)}
    assert records == {(m, EDITED) for m in MODELS}


def after_first_truth(monkeypatch, action) -> None:  # type: ignore[no-untyped-def]
    """Run ``action`` once, right after the run's first ground-truth stage (between the stages)."""
    write = data_stage.GroundTruth.write
    done = []

    def write_then_act(self, entries=None):  # type: ignore[no-untyped-def]
        write(self, entries)
        if not done:
            done.append(True)
            action()

    monkeypatch.setattr(data_stage.GroundTruth, "write", write_then_act)


def test_source_changed_mid_run_is_read_again_and_rescored(root, tmp_path, monkeypatch, caplog, caption_model):
    """Kind 2: a file rewritten between the data stage and the models is never scored against its old ground
    truth: the run warns, reads it again and scores it again, and its tables equal a clean run's on the new
    file."""
    after_first_truth(monkeypatch, lambda: flip(root, "test", EDITED))
    with caplog.at_level(logging.WARNING):
        run(root, tmp_path / "changed")
    assert "changed during the run" in caplog.text
    run(root, tmp_path / "clean")  # the patched stage changes the file only once
    for table in ("per_image.csv", "manifest.csv"):
        assert (tmp_path / "changed" / table).read_bytes() == (tmp_path / "clean" / table).read_bytes(), table


def test_ground_truth_replaced_before_scoring_is_read_again(root, tmp_path, monkeypatch, caplog, caption_model):
    """Kind 2: scored ground truth must carry its original's pixels key; a ground-truth PNG swapped for another
    image's between the stages is read again from the original (with a warning) before it is scored."""
    out = tmp_path / "swapped"
    layout = RunLayout(out)
    after_first_truth(monkeypatch, lambda: shutil.copyfile(layout.ground_truth("2"), layout.ground_truth(EDITED)))
    with caplog.at_level(logging.WARNING):
        run(root, out)
    assert "read again from the originals" in caplog.text
    run(root, tmp_path / "clean")
    assert (out / "per_image.csv").read_bytes() == (tmp_path / "clean" / "per_image.csv").read_bytes()


def mtimes(paths: dict[str, Path]) -> dict[str, int]:
    return {name: path.stat().st_mtime_ns for name, path in paths.items()}


def rerun_after(edit, first, paths: dict[str, Path]) -> set[str]:  # type: ignore[no-untyped-def]
    """Run ``first()``, apply ``edit``, run ``first()`` again: the names in ``paths`` whose file was rewritten."""
    first()
    before = mtimes(paths)
    edit()
    first()
    return {name for name, stamp in mtimes(paths).items() if stamp != before[name]}


@pytest.mark.parametrize(("edit", "rewritten"), [("caption", {"caption-tint"}), ("pixel", set(MODELS)),
                                                 ("nothing", set())])
def test_set_level_values_follow_their_models_predictions(root, tmp_path, caption_model, edit, rewritten):
    """Set-level values (README cache table): a caption edit remakes only the caption model's prediction, so only
    its Frechet distance is computed again; an image edit changes every model's; no edit reuses both."""
    out = tmp_path / "out"
    edits = {"caption": lambda: edit_caption(root, "test", EDITED), "pixel": lambda: flip(root, "test", EDITED),
             "nothing": lambda: None}

    def first() -> None:
        open_source.cache_clear()
        assert main(["run", "--models", ",".join(MODELS), "--eval", f"coco:{root}:test", "--out", str(out), "--size",
                     "32", "--no-progress", "--no-study", "--metrics", "psnr,fd_effnet_lite0"]) == 0

    layout = RunLayout(out)
    assert rerun_after(edits[edit], first, {m: layout.set_level(m) for m in MODELS}) == rewritten


@pytest.mark.parametrize(("edit", "redone"), [("caption", False), ("pixel", True), ("polygons", True)])
def test_study_records_follow_ground_truth_and_segments_only(root, tmp_path, edit, redone):
    """Study records (README cache table) are made from the ground truth and its segment maps alone: a caption
    edit reuses them, an image or polygon edit makes them again."""
    out = tmp_path / "out"
    edits = {"caption": lambda: edit_caption(root, "test", EDITED), "pixel": lambda: flip(root, "test", EDITED),
             "polygons": lambda: edit_polygon(root, "test", EDITED)}

    def first() -> None:
        open_source.cache_clear()
        assert main(["run", "--models", "gray", "--eval", f"coco:{root}:test", "--out", str(out), "--size", "32",
                     "--no-progress", "--metrics", "psnr,vivid_recall"]) == 0

    layout = RunLayout(out)
    assert rerun_after(edits[edit], first, {"study": layout.study_fingerprint}) == ({"study"} if redone else set())


@pytest.mark.parametrize(("edit", "refit"), [("train pixel", True), ("eval pixel", False), ("nothing", False)])
def test_fitted_weights_follow_the_training_images_only(root, tmp_path, edit, refit):
    """Fitted weights (README cache table) are keyed on the training manifest: editing a training image fits
    baseline0 again; editing an evaluation image or nothing reuses the fit."""
    train = coco_copy(tmp_path / "train-root", "train")
    out = tmp_path / "out"
    edits = {"train pixel": lambda: flip(train, "train", "3"), "eval pixel": lambda: flip(root, "test", EDITED),
             "nothing": lambda: None}

    def first() -> None:
        open_source.cache_clear()
        assert main(["run", "--models", "baseline0", "--train", f"coco:{train}:train", "--eval",
                     f"coco:{root}:test", "--out", str(out), "--size", "32", "--no-progress", "--no-study",
                     "--metrics", "psnr"]) == 0

    changed = rerun_after(edits[edit], first, {"fit": RunLayout(out).checkpoint("baseline0")})
    assert changed == ({"fit"} if refit else set())
