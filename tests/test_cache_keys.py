"""Cache keys (issue 8): one helper, definition versions of metrics and models in the keys and run.json, and the
digests that name existing run folders and caches unchanged. A metric enters keys through ``Metric.key()`` alone
(name, parameters, version): rewording a definition or moving a function recomputes nothing, and the keys the
code before ``Metric.key()`` made from whole descriptions (colorbench.io.legacy_keys) still find what it wrote."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from colorbench.cli.main import main
from colorbench.core.cachekey import cache_key, key_description
from colorbench.data.loader import Preprocess
from colorbench.io import legacy_keys
from colorbench.io.images import read_png_text
from colorbench.metrics import registry as metric_registry
from colorbench.models import registry as model_registry
from colorbench.pipeline import model_stage, scoring
from colorbench.pipeline.model_stage import KEY_TAG, prediction_key
from colorbench.pipeline.runner import RunConfig
from colorbench.pipeline.scoring import metric_set_id, metric_set_keys
from colorbench.study import run as study_run
from colorbench.study.run import study_fingerprint

FAST = ["--size", "32", "--no-progress", "--no-study", "--metrics", "psnr,ssim", "--quiet"]
#: A run with every kind of metric-dependent cache: per-image records, the study, set-level values.
WITH_CACHES = ["--models", "gray,groundtruth", "--size", "32", "--no-progress", "--quiet",
               "--metrics", "psnr,ssim,fd_effnet_lite0", "--study-images", "2"]
#: Record folder names the code before Metric.key() gave these metric sets, oldest generation first: up to f48f580
#: (functions named metrics.*) and from 34bc48e (colorbench.metrics.*). e742e10b730f names the records of the
#: smoke profile's metrics in existing run folders. Read from the digests that code wrote, never to be changed.
SMOKE_METRICS = ("mse", "mse255", "psnr", "ssim", "channel_equality", "colorfulness", "delta_colorfulness",
                 "colorfulness_abs", "ms_ssim", "deltae2000", "auc_ab", "segment_chroma_ratio", "vivid_recall",
                 "vivid_precision", "semantic_kl", "semantic_top1")
OLD_RECORD_FOLDERS = {("psnr", "ssim"): ("e813dfa0aa5d", "5911c707e862"),
                      SMOKE_METRICS: ("e742e10b730f", "5fbf954c8fb2")}


def legacy_key(payload: object, length: int) -> str:
    """How keys were computed before core.cachekey (the text that names folders and caches already on disk)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:length]


def changed_metric(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> None:
    """Metric ``name`` with ``changes`` made to its row, everywhere the harness looks it up."""
    table = dict(metric_registry.METRICS)
    table[name] = dataclasses.replace(table[name], **changes)
    monkeypatch.setattr(metric_registry, "METRICS", table)


def bumped_metric(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Metric ``name`` at definition version 2."""
    changed_metric(monkeypatch, name, version=2)


def psnr_description() -> dict[str, object]:
    return metric_registry.METRICS["psnr"].describe()


def psnr_elsewhere(pred, target, **params):
    """PSNR under another module path (as a package rename or a move would give it)."""
    return metric_registry.psnr(pred, target, **params)


def reworded_psnr(monkeypatch: pytest.MonkeyPatch) -> None:
    """PSNR with a space added to its definition and its function moved: neither may change a key."""
    changed_metric(monkeypatch, "psnr", definition=metric_registry.METRICS["psnr"].definition + " ", fn=psnr_elsewhere)


def test_key_description_drops_only_version_one():
    assert key_description({"name": "m", "version": 1}) == {"name": "m"}
    assert key_description({"name": "m", "version": 2}) == {"name": "m", "version": 2}
    assert cache_key({"b": 1, "a": [1, 2]}) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()[:16]


def test_existing_folder_names_and_record_folders_keep_their_digests():
    cfg = RunConfig(models=["gray", "baseline0"], eval_source="sample:test")
    assert cfg.resolved_out().name.endswith(legacy_key(cfg.identity(), 10))
    fixed = {k: v for k, v in cfg.as_dict().items()
             if k in ("eval_source", "train_source", "eval_split", "train_split", "preprocess", "limit")}
    assert cfg.data_id() == legacy_key(fixed, 10)
    info = {"options": {"width": 1}, "weights_sha256": "ab"}
    payload = {"model": "gray", "options": info["options"], "weights_sha256": "ab",
               "preprocess": Preprocess(32).as_dict()}
    assert prediction_key("gray", info, Preprocess(32)) == legacy_key(payload, 16)


def test_a_metric_enters_keys_by_name_parameters_and_version():
    psnr = metric_registry.METRICS["psnr"]
    assert psnr.key() == {"name": "psnr", "params": {"data_range": 1.0, "max_db": 100.0}, "version": 1}
    assert metric_set_id(["psnr", "ssim"]) == cache_key([psnr.key(), metric_registry.METRICS["ssim"].key()], 12)
    assert metric_registry.DISTRIBUTION_METRICS["fd_effnet_lite0"].key() == {"name": "fd_effnet_lite0", "params": {},
                                                                             "version": 1}


def test_old_record_folder_names_are_still_found():
    for names, old in OLD_RECORD_FOLDERS.items():
        assert metric_set_keys(names).legacy == old
        assert metric_set_id(names) not in old  # new records go under the new key


def test_rewording_or_moving_a_metric_changes_no_key(monkeypatch, tmp_path):
    names = ["psnr", "ssim"]
    before, described = (metric_set_keys(names), study_fingerprint([], names, tmp_path, {})), psnr_description()
    reworded_psnr(monkeypatch)
    assert {k for k, v in psnr_description().items() if described[k] != v} == {"definition", "function"}
    assert (metric_set_keys(names), study_fingerprint([], names, tmp_path, {})) == before


def test_bumping_a_metric_changes_exactly_the_sets_holding_it(monkeypatch, tmp_path):
    sets = (("psnr", "ssim"), ("ssim", "mse"), ("psnr",))
    before = {names: (metric_set_keys(names), study_fingerprint([], names, tmp_path, {})) for names in sets}
    bumped_metric(monkeypatch, "psnr")
    after = {names: (metric_set_keys(names), study_fingerprint([], names, tmp_path, {})) for names in sets}
    assert after[("ssim", "mse")] == before[("ssim", "mse")]
    for names in (("psnr", "ssim"), ("psnr",)):
        (records, study), (old_records, old_study) = after[names], before[names]
        assert records.current != old_records.current and study.current != old_study.current
        assert records.legacy == study.legacy == ()  # an old folder cannot stand for the bumped definition


def test_bumping_a_model_changes_only_its_prediction_key():
    info = {"options": {}, "weights_sha256": "ab"}
    one, two = (prediction_key("gray", info, Preprocess(32), version) for version in (1, 2))
    assert one != two
    assert prediction_key("groundtruth", info, Preprocess(32)) == prediction_key("groundtruth", info, Preprocess(32), 1)
    with pytest.raises(ValueError, match="version 0"):
        model_registry.register_model("x", inputs=("L",), training="none", description="", version=0)


@pytest.fixture(scope="module")
def versioned_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("versions") / "run"
    assert main(["run", "--models", "gray,groundtruth", "--out", str(out), *FAST]) == 0
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "copy")
    return tmp_path / "copy"


def key_tags(run: Path, model: str) -> dict[str, str]:
    return {p.name: read_png_text(p)[KEY_TAG] for p in sorted((run / "predictions" / model).glob("*.png"))}


def test_run_json_records_versions(versioned_run):
    run = json.loads((versioned_run / "run.json").read_text())
    assert run["metrics"]["psnr"]["version"] == 1 and run["models"]["gray"]["spec"]["version"] == 1


def test_a_bumped_metric_recomputes_its_records_and_nothing_else(versioned_run, tmp_path, monkeypatch):
    run = copy_of(versioned_run, tmp_path)
    old_sets = {p.name for p in (run / "records" / "gray").iterdir() if p.is_dir()}
    predictions = {p: p.read_bytes() for p in (run / "predictions").rglob("*.png")}
    bumped_metric(monkeypatch, "psnr")
    assert main(["run", "--models", "gray,groundtruth", "--out", str(run), *FAST]) == 0
    new_sets = {p.name for p in (run / "records" / "gray").iterdir() if p.is_dir()} - old_sets
    assert len(new_sets) == 1 and list((run / "records" / "gray" / new_sets.pop()).glob("*.jsonl"))
    assert predictions == {p: p.read_bytes() for p in (run / "predictions").rglob("*.png")}
    assert json.loads((run / "run.json").read_text())["metrics"]["psnr"]["version"] == 2


def test_a_bumped_model_remakes_its_predictions_only(versioned_run, tmp_path, monkeypatch):
    run = copy_of(versioned_run, tmp_path)
    gray, truth = key_tags(run, "gray"), key_tags(run, "groundtruth")
    spec = model_registry.get_model_spec("gray")
    monkeypatch.setitem(model_registry._REGISTRY, "gray", dataclasses.replace(spec, version=2))
    assert main(["run", "--models", "gray,groundtruth", "--out", str(run), *FAST]) == 0
    remade = key_tags(run, "gray")
    assert remade.keys() == gray.keys() and all(remade[n] != gray[n] for n in gray)
    assert key_tags(run, "groundtruth") == truth
    assert json.loads((run / "run.json").read_text())["models"]["gray"]["spec"]["version"] == 2


def as_old_code(payload_of: legacy_keys.PayloadOf, keys, length: int) -> legacy_keys.CacheKeys:
    """Keys as the code before Metric.key() made them (its oldest generation): what it wrote results under."""
    return legacy_keys.CacheKeys(legacy_keys.legacy_digests(payload_of, keys, length)[0], ())


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    """A run folder with records, a study and set-level values, written under the old code's keys."""
    out = tmp_path_factory.mktemp("old") / "run"
    with pytest.MonkeyPatch.context() as patch:
        for module in (scoring, study_run, model_stage):
            patch.setattr(module, "cache_keys", as_old_code)
        assert main(["run", *WITH_CACHES, "--out", str(out)]) == 0
    return out


def results(run: Path) -> dict[str, bytes]:
    """The files a rerun must leave as they are when it reuses every cache."""
    files = [run / name for name in ("per_image.csv", "leaderboard.csv", "claims.csv")]
    files += [*(run / "study").iterdir(), *(run / "records").rglob("*.json*")]
    return {str(path.relative_to(run)): path.read_bytes() for path in files}


def recomputing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any per-image scoring (records, study) or set-level scoring fail the run."""
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a cached result")

    for module in (scoring, study_run):
        monkeypatch.setattr(module, "compute", refuse)
    monkeypatch.setattr(scoring.SetLevelScorer, "__call__", refuse)


def test_a_run_folder_of_the_old_code_is_reused_without_recomputing(old_run, tmp_path, monkeypatch):
    run = copy_of(old_run, tmp_path)
    assert sorted(p.name for p in (run / "records" / "gray").iterdir()) == [OLD_RECORD_FOLDERS[("psnr", "ssim")][0],
                                                                          "set_level.json"]
    before = results(run)
    recomputing_fails(monkeypatch)
    reworded_psnr(monkeypatch)
    assert main(["run", *WITH_CACHES, "--out", str(run)]) == 0
    assert results(run) == before  # nothing written under a new key either


def test_a_bumped_metric_recomputes_what_it_produced_in_an_old_run_folder(old_run, tmp_path, monkeypatch):
    run = copy_of(old_run, tmp_path)
    before = results(run)
    bumped_metric(monkeypatch, "psnr")
    assert main(["run", *WITH_CACHES, "--out", str(run)]) == 0
    after = results(run)
    new_keys = metric_set_keys(["psnr", "ssim"])
    assert new_keys.legacy == () and list((run / "records" / "gray" / new_keys.current).glob("*.jsonl"))
    old_records = {name: data for name, data in before.items() if name.endswith(".jsonl")}
    assert {name: after[name] for name in old_records} == old_records  # read, never rewritten
    for cache in ("study/fingerprint.json", "records/gray/set_level.json"):  # both depend on psnr
        assert after[cache] != before[cache], cache
