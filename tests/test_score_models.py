"""`bench score` with many models: one call equals separate calls, the ground truth's work is done once, a folder
gains models without recomputing or losing the ones it holds, grey originals are set aside, and the size and
metric policies are said on stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorbench.cli.main import main
from colorbench.metrics.distribution import EffNetLite0Features
from colorbench.pipeline import score_folders, scoring
from colorbench.reports import html
from colorbench.reports.build import RunFolder
from tests.hostile_files import one_line
from tests.test_runner import read_rows

MODELS = ("alpha", "beta", "gamma")
#: A pixel metric, SSIM, a colour metric, a segment metric (SLIC of the ground truth), a classifier metric (its
#: logits of the ground truth) and a set-level distance (its features of the ground truth).
METRICS = "psnr,ssim,colorfulness,segment_chroma_ratio,semantic_kl,fd_effnet_lite0"
COLOUR_IDS = ("c0", "c1", "c2", "c3")


def _save(array: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """A ground-truth folder (four colour images and one grey original, 32x32) and a root of three models'
    prediction folders (the ground truth plus each model's own noise)."""
    rng = np.random.default_rng(7)
    gt, root = tmp_path / "gt", tmp_path / "preds"
    gt.mkdir()
    truths = {image_id: rng.integers(0, 256, (32, 32, 3)) for image_id in COLOUR_IDS}
    truths["grey"] = rng.integers(0, 256, (32, 32, 1)).repeat(3, axis=2)
    for image_id, array in truths.items():
        _save(array, gt / f"{image_id}.png")
    for model in MODELS:
        (root / model).mkdir(parents=True)
        for image_id, array in truths.items():
            _save(array + rng.integers(-25, 26, array.shape), root / model / f"{image_id}.png")
    return gt, root


def _score(gt: Path, out: Path, *preds: str, metrics: str = METRICS) -> int:
    return main(["score", "--gt", str(gt), *preds, "--metrics", metrics, "--out", str(out), "--no-progress"])


def _score_without_report(gt: Path, out: Path, predictions: dict[str, Path]) -> None:
    """The command's own function (the CLI adds only the report, which these tests do not read)."""
    score_folders.score_folders(predictions, gt, out=out, metric_names=METRICS.split(","), progress=False)


def _by_model(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["model"], []).append(row)
    return grouped


def test_one_call_gives_the_rows_of_separate_calls(folders, tmp_path):
    gt, root = folders
    _score_without_report(gt, tmp_path / "all", {model: root / model for model in MODELS})
    together = _by_model(read_rows(tmp_path / "all" / "per_image.csv"))
    board = {row["model"]: row for row in read_rows(tmp_path / "all" / "leaderboard.csv")}
    assert list(board) == list(MODELS)
    for model in MODELS:
        alone = tmp_path / f"alone-{model}"
        _score_without_report(gt, alone, {model: root / model})
        assert together[model] == read_rows(alone / "per_image.csv")
        assert [board[model]] == read_rows(alone / "leaderboard.csv")
    assert [row["image_id"] for row in together["alpha"]] == list(COLOUR_IDS)
    assert board["alpha"]["fd_effnet_lite0"] != ""


class _Counts:
    """Calls of the ground-truth work, counted by wrapping the real functions (nothing is replaced)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, gt: Path) -> None:
        self.gt_reads = self.slic = self.logits = self.features = 0
        read, slic = scoring.read_png_u8, score_folders.slic_segments
        logits, features = EffNetLite0Features.logits, scoring.SetLevelScorer.features

        def counted_read(path: Path):  # type: ignore[no-untyped-def]
            self.gt_reads += Path(path).parent == gt
            return read(path)

        def counted_slic(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.slic += 1
            return slic(*args, **kwargs)

        def counted_logits(net, images):  # type: ignore[no-untyped-def]
            self.logits += 1
            return logits(net, images)

        def counted_features(scorer, name, paths, desc):  # type: ignore[no-untyped-def]
            self.features += all(Path(p).parent == gt for p in paths)
            return features(scorer, name, paths, desc)

        monkeypatch.setattr(scoring, "read_png_u8", counted_read)
        monkeypatch.setattr(score_folders, "slic_segments", counted_slic)
        monkeypatch.setattr(EffNetLite0Features, "logits", counted_logits)
        monkeypatch.setattr(scoring.SetLevelScorer, "features", counted_features)


def test_ground_truth_work_is_done_once_for_any_number_of_models(folders, tmp_path, monkeypatch):
    gt, root = folders
    one = _Counts(monkeypatch, gt)
    _score_without_report(gt, tmp_path / "one", {"alpha": root / "alpha"})
    monkeypatch.undo()
    three = _Counts(monkeypatch, gt)
    _score_without_report(gt, tmp_path / "three", {model: root / model for model in MODELS})
    assert one.slic == three.slic == len(COLOUR_IDS)
    assert one.features == three.features == 1
    assert one.gt_reads == three.gt_reads == 2 * len(COLOUR_IDS)  # per-image pass and set-level features
    assert three.logits == one.logits + len(MODELS) - 1  # only the predictions are classified per model


def test_a_folder_gains_models_without_recomputing_its_own(folders, tmp_path, monkeypatch):
    gt, root = folders
    out = tmp_path / "out"
    assert _score(gt, out, "--pred", f"alpha={root / 'alpha'}", "--pred", f"beta={root / 'beta'}") == 0
    before = {row["model"]: row for row in read_rows(out / "leaderboard.csv")}
    stored = {m: (out / "scored" / f"{m}.json").read_bytes() for m in ("alpha", "beta")}
    asked: list[list[str]] = []
    real = score_folders.score_models

    def recorded(pairs_by_model, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(list(pairs_by_model))
        return real(pairs_by_model, *args, **kwargs)

    monkeypatch.setattr(score_folders, "score_models", recorded)
    assert _score(gt, out, "--pred", f"gamma={root / 'gamma'}", "--pred", f"alpha={root / 'alpha'}") == 0
    assert asked == [["gamma"]]
    after = {row["model"]: row for row in read_rows(out / "leaderboard.csv")}
    assert list(after) == ["alpha", "beta", "gamma"]
    assert {m: after[m] for m in before} == before
    assert {m: (out / "scored" / f"{m}.json").read_bytes() for m in stored} == stored
    assert _by_model(read_rows(out / "per_image.csv")).keys() == {"alpha", "beta", "gamma"}
    assert json.loads((out / "run.json").read_text())["config"]["predictions"]["gamma"] == str(root / "gamma")


@pytest.mark.parametrize(("change", "needles"), [
    ("metrics", ("other settings", "metrics")),
    ("ground truth", ("another ground truth", "--out")),
    ("predictions", ("already holds model alpha", "other predictions")),
])
def test_a_folder_refuses_another_ground_truth_metric_set_or_model(change, needles, folders, tmp_path, capsys):
    gt, root = folders
    out = tmp_path / "out"
    assert _score(gt, out, "--pred", f"alpha={root / 'alpha'}", metrics="psnr") == 0
    capsys.readouterr()
    kept = (out / "per_image.csv").read_bytes()
    if change == "ground truth":
        (gt / "c0.png").write_bytes((gt / "c1.png").read_bytes())
    code = _score(gt, out, "--pred", f"alpha={root / ('beta' if change == 'predictions' else 'alpha')}",
                  metrics="psnr,ssim" if change == "metrics" else "psnr")
    assert code == 2
    one_line(capsys.readouterr().err, *needles)
    assert (out / "per_image.csv").read_bytes() == kept


def test_grey_originals_are_set_aside_with_their_reason(folders, tmp_path, capsys):
    gt, root = folders
    out = tmp_path / "out"
    assert _score(gt, out, "--pred", str(root / "alpha"), "--name", "mine", metrics="psnr") == 0
    skipped = json.loads((out / "run.json").read_text())["skipped"]
    assert [(s["image_id"], s["stage"]) for s in skipped] == [("grey", "ground truth")]
    assert skipped[0]["reason"].startswith("grayscale: ")
    assert [r["image_id"] for r in read_rows(out / "per_image.csv")] == list(COLOUR_IDS)
    assert {r["model"] for r in read_rows(out / "leaderboard.csv")} == {"mine"}
    assert "skipped 1 pairs (grey: grayscale: " in capsys.readouterr().err


@pytest.mark.parametrize("policy", ["none", "gt"])
def test_size_mismatches_follow_the_resize_policy(policy, folders, tmp_path, capsys):
    gt, root = folders
    small = Image.open(root / "alpha" / "c2.png").resize((24, 24))
    small.save(root / "alpha" / "c2.png")
    out = tmp_path / "out"
    assert main(["score", "--gt", str(gt), "--pred", f"alpha={root / 'alpha'}", "--metrics", "psnr", "--out",
                 str(out), "--no-progress", "--resize-pred", policy]) == 0
    run = json.loads((out / "run.json").read_text())
    ids = [r["image_id"] for r in read_rows(out / "per_image.csv")]
    err = capsys.readouterr().err
    assert run["config"]["resize_pred"] == policy
    if policy == "none":
        assert "c2" not in ids and "skipped 2 pairs" in err and "size mismatch" in err
    else:
        assert ids == list(COLOUR_IDS) and run["models"]["alpha"]["resized"] == ["c2"]
        assert "resized 1 predictions" in err


@pytest.fixture
def no_weight_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("COLORBENCH_WEIGHTS_DIR", raising=False)


def test_an_unavailable_metric_names_its_missing_file(folders, tmp_path, no_weight_files, capsys):
    gt, root = folders
    assert _score(gt, tmp_path / "out", "--pred", f"alpha={root / 'alpha'}", metrics="psnr,lpips_alex") == 2
    one_line(capsys.readouterr().err, "lpips_alex", "alexnet-owt-7be5be79.pth")
    assert not (tmp_path / "out").exists()


def test_the_default_set_says_what_it_leaves_out(folders, tmp_path, no_weight_files, capsys):
    gt, root = folders
    for image_id in COLOUR_IDS[1:]:
        for folder in (gt, root / "alpha"):
            (folder / f"{image_id}.png").unlink()
    assert main(["score", "--gt", str(gt), "--pred", str(root / "alpha"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "default metric set leaves out" in line]
    assert len(lines) == 1 and all(name in lines[0] for name in ("lpips_alex", "lpips_vgg", "fid_inception"))


def test_a_model_named_twice_is_refused(folders, tmp_path, capsys):
    gt, root = folders
    assert _score(gt, tmp_path / "out", "--pred", f"alpha={root / 'beta'}", "--pred-root", str(root)) == 2
    one_line(capsys.readouterr().err, "alpha", "more than once")


@pytest.mark.coco
def test_score_of_a_runs_gray_folders_gives_its_rows_and_sets_its_grey_originals_aside(coco_mini, tmp_path):
    """``score`` on coco-mini val2017 with ``gray`` gives the per-image rows of ``run --models gray`` on that split.
    The run's ground truth holds no grey original (its manifest set them aside), so they are put back, at the
    run's size, beside their own grey "prediction": ``score`` must set them aside as the run did."""
    run, metrics = tmp_path / "run", "psnr,ssim,colorfulness"
    assert main(["run", "--models", "gray", "--eval", f"coco:{coco_mini}:val2017", "--size", "64", "--no-study",
                 "--metrics", metrics, "--out", str(run), "--no-progress"]) == 0
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shutil.copytree(run / "ground_truth", gt)
    shutil.copytree(run / "predictions" / "gray", pred)
    grey = [row for row in read_rows(run / "manifest.csv") if row["status"] == "grayscale"]
    assert grey, "coco-mini val2017 holds grey originals"
    for row in grey:
        original = Image.open(coco_mini / "val2017" / row["file"]).convert("RGB").resize((64, 64))
        original.save(gt / f"{row['image_id']}.png")
        original.save(pred / f"{row['image_id']}.png")
    out = tmp_path / "scored"
    assert _score(gt, out, "--pred", f"gray={pred}", metrics=metrics) == 0
    names = ["image_id", "model", *metrics.split(",")]
    from_run = [{k: r[k] for k in names} for r in read_rows(run / "per_image.csv")]
    assert [{k: r[k] for k in names} for r in read_rows(out / "per_image.csv")] == from_run
    skipped = json.loads((out / "run.json").read_text())["skipped"]
    assert sorted(s["image_id"] for s in skipped) == sorted(row["image_id"] for row in grey)
    assert all(s["reason"].startswith("grayscale: ") for s in skipped)


def test_the_report_gallery_shows_every_models_prediction(folders, tmp_path):
    """The report of a several-model score folder shows, per image, the ground truth as given and each model's
    own file (not only the first model's)."""
    gt, root = folders
    out = tmp_path / "out"
    assert _score(gt, out, "--pred-root", str(root)) == 0
    rows = html._gallery(RunFolder.load(out), limit=1)
    assert [tile.label for tile in rows[0]] == ["ground truth (as given)", *MODELS]
    image_id = COLOUR_IDS[0]
    assert [Path(tile.src).parent.name for tile in rows[0]] == [gt.name, *MODELS]
    assert all(Path(tile.src).stem == image_id for tile in rows[0])


def test_frechet_and_kid_share_one_feature_pass_and_kid_has_its_interval(folders, tmp_path, monkeypatch):
    """fd_effnet_lite0 and kid_effnet_lite0 name one extractor: each image set goes through it once (ground truth
    once, each model's predictions once), and KID's subset interval fills its leaderboard _lo/_hi."""
    gt, root = folders
    passes: list[str] = []
    features = scoring.SetLevelScorer.features

    def counted(self, build, paths, desc):  # type: ignore[no-untyped-def]
        passes.append(desc)
        return features(self, build, paths, desc)

    monkeypatch.setattr(scoring.SetLevelScorer, "features", counted)
    out = tmp_path / "out"
    assert _score(gt, out, "--pred", f"alpha={root / 'alpha'}", "--pred", f"beta={root / 'beta'}",
                  metrics="psnr,fd_effnet_lite0,kid_effnet_lite0") == 0
    assert len(passes) == 3, passes  # ground truth, alpha, beta
    for row in read_rows(out / "leaderboard.csv"):
        low, value, high = (float(row[f"kid_effnet_lite0{s}"]) for s in ("_lo", "", "_hi"))
        assert np.isfinite([low, value, high]).all() and low < high and row["fd_effnet_lite0_lo"] == ""
