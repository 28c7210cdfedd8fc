"""Cache keys (issue 8): one helper, definition versions of metrics and models in the keys and run.json, and the
digests that name existing run folders and caches unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from colorbench.cli.main import main
from colorbench.core.cachekey import cache_key, key_description
from colorbench.data.loader import Preprocess
from colorbench.io.images import read_png_text
from colorbench.metrics import registry as metric_registry
from colorbench.models import registry as model_registry
from colorbench.pipeline import scoring
from colorbench.pipeline.model_stage import KEY_TAG, prediction_key
from colorbench.pipeline.runner import RunConfig
from colorbench.pipeline.scoring import metric_set_id

FAST = ["--size", "32", "--no-progress", "--no-study", "--metrics", "psnr,ssim", "--quiet"]


def legacy_key(payload: object, length: int) -> str:
    """How keys were computed before core.cachekey (the text that names folders and caches already on disk)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:length]


def bumped_metric(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Metric ``name`` at definition version 2, everywhere the harness looks it up."""
    table = dict(metric_registry.METRICS)
    table[name] = dataclasses.replace(table[name], version=2)
    monkeypatch.setattr(metric_registry, "METRICS", table)
    monkeypatch.setattr(scoring, "METRICS", table)


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
    names = ["psnr", "ssim", "deltae2000"]
    described = [{k: v for k, v in metric_registry.METRICS[n].describe().items() if k != "version"} for n in names]
    assert metric_set_id(names) == legacy_key(described, 12)
    info = {"options": {"width": 1}, "weights_sha256": "ab"}
    payload = {"model": "gray", "options": info["options"], "weights_sha256": "ab",
               "preprocess": Preprocess(32).as_dict()}
    assert prediction_key("gray", info, Preprocess(32)) == legacy_key(payload, 16)


def test_bumping_a_metric_changes_exactly_the_sets_holding_it(monkeypatch):
    before = {names: metric_set_id(names) for names in (("psnr", "ssim"), ("ssim", "mse"), ("psnr",))}
    bumped_metric(monkeypatch, "psnr")
    after = {names: metric_set_id(names) for names in before}
    assert after[("ssim", "mse")] == before[("ssim", "mse")]
    assert after[("psnr", "ssim")] != before[("psnr", "ssim")] and after[("psnr",)] != before[("psnr",)]


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
