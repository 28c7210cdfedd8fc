"""Run folders under changed settings and models with non-finite numbers (issue 22, kinds 4 and 5): a folder's
identity covers every setting that changes an output, so without ``--out`` other settings get their own folder
and with ``--out`` they are refused naming it - nothing finished is replaced by a different result; weights
holding NaN/Inf, or a model whose output is non-finite, end in exit 1 naming the model, which is then marked
non-finite in run.json and left out of the tables, rankings and claims."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from colorbench.cli.main import main
from colorbench.core.errors import BenchError
from colorbench.data.loader import Preprocess
from colorbench.io.checkpoints import load_state, save_state
from colorbench.io.runfolder import claim
from colorbench.pipeline.context import NEUTRAL_SETTINGS, RunConfig
from tests.hostile_files import one_line, tiny_folder

FAST = ["--no-study", "--no-progress", "--size", "32", "--metrics", "psnr,ssim"]
TRAINED = ["chromagan-noclass", "model-b"]
#: One changed value per setting that changes an output (the config field and its other value).
CHANGED = {
    "epochs": 4, "metrics": ["psnr"], "seed": 7, "seeds": 2, "profile": "paper", "teacher": "vgg16",
    "text_encoder": "minilm", "batch_size": 3, "gallery": 2, "study": False, "study_images": 4, "bf16": False,
    "allow_overlap": True, "device": "cpu",
}


@pytest.mark.parametrize("setting", CHANGED)
def test_each_setting_gets_its_own_default_folder(setting):
    base = RunConfig(models=TRAINED, epochs=2)
    other = RunConfig(models=TRAINED, **{"epochs": 2, setting: CHANGED[setting]})
    assert other.resolved_out() != base.resolved_out()
    assert other.identity()["settings"][setting] != base.identity()["settings"][setting]


def test_every_config_field_is_in_the_identity_or_named_neutral():
    fields = set(RunConfig(models=["gray"]).as_dict())
    assert fields == set(RunConfig(models=["gray"]).settings()) | NEUTRAL_SETTINGS
    plain = RunConfig(models=["gray"]).resolved_out()
    assert RunConfig(models=["gray"], workers=3, progress=False, resume=False).resolved_out() == plain
    assert RunConfig(models=["gray"], preprocess=Preprocess(64)).resolved_out() != plain


@pytest.mark.parametrize("setting", CHANGED)
def test_a_folder_of_other_settings_is_refused_naming_out(setting, tmp_path):
    out = tmp_path / "out"
    with claim(out, RunConfig(models=TRAINED, epochs=2, out=out).identity()):
        (out / "per_image.csv").write_text("the first run's table\n")
    other = RunConfig(models=TRAINED, out=out, **{"epochs": 2, setting: CHANGED[setting]})
    with pytest.raises(BenchError) as refused, claim(out, other.identity()):
        (out / "per_image.csv").write_text("replaced\n")
    assert "--out" in str(refused.value) and f"{setting}:" in str(refused.value)
    assert (out / "per_image.csv").read_text() == "the first run's table\n"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("settings"), 2)


@pytest.mark.parametrize("option", [["--metrics", "psnr"], ["--seed", "3"], ["--gallery", "1"],
                                    ["--batch-size", "1"]])
def test_run_with_other_settings_never_replaces_a_finished_table(option, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--models", "gray", "--eval", f"folder:{images}", *FAST]
    assert main(argv) == 0
    [first] = list((tmp_path / "results").iterdir())
    table = (first / "per_image.csv").read_bytes()
    assert main([*argv, *option]) == 0
    assert len(list((tmp_path / "results").iterdir())) == 2
    assert (first / "per_image.csv").read_bytes() == table
    capsys.readouterr()
    assert main([*argv, *option, "--out", str(first)]) == 2
    one_line(capsys.readouterr().err, "--out", "other settings", option[0][2:].replace("-", "_"))
    assert (first / "per_image.csv").read_bytes() == table


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, images) -> dict[str, torch.Tensor]:
    """baseline0's fitted weights (its luma -> RGB table), from a run on the tiny folder."""
    out = tmp_path_factory.mktemp("fitted") / "run"
    assert main(["run", "--models", "baseline0", "--eval", f"folder:{images}", *FAST, "--out", str(out)]) == 0
    return load_state(out / "checkpoints" / "baseline0.safetensors")


def test_other_weight_file_bytes_get_their_own_folder(fitted, images, tmp_path, monkeypatch):
    """The same --weights path holding other bytes is another setting (its sha256 is in the identity)."""
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "w.safetensors"
    save_state(weights, fitted)
    argv = ["run", "--models", "gray,baseline0", "--weights", f"baseline0={weights}", "--eval", f"folder:{images}",
            *FAST]
    assert main(argv) == 0
    save_state(weights, {**fitted, "table": fitted["table"] * 0.5})
    assert main(argv) == 0
    tables = [(f / "leaderboard.csv").read_text() for f in sorted((tmp_path / "results").iterdir())]
    assert len(tables) == 2 and tables[0] != tables[1]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_left_out(out: Path, model: str) -> None:
    """``model`` is in no table, ranking (analysis/) or claim's numbers of the run folder."""
    for table in ("leaderboard.csv", "per_image.csv"):
        assert {r["model"] for r in rows(out / table)} == {"gray"}
    assert not any(model in r["numbers"] for r in rows(out / "claims.csv"))
    rankings = [path for path in (out / "analysis").glob("*.csv") if path.name != "claim_rules.csv"]
    assert rankings and not any(model in path.read_text() for path in rankings)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_weights_holding_nan_or_inf_exit_1_naming_the_model(value, fitted, images, tmp_path, capsys):
    weights, out = tmp_path / "broken.safetensors", tmp_path / "out"
    broken = fitted["table"].clone()
    broken[:, 100] = value
    save_state(weights, {**fitted, "table": broken})
    assert main(["run", "--models", "gray,baseline0", "--weights", f"baseline0={weights}", "--eval",
                 f"folder:{images}", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: a model failed (baseline0:")
    assert "NaN or Inf" in err
    assert_left_out(out, "baseline0")


def test_a_model_with_non_finite_output_exits_1_and_is_left_out(fitted, images, tmp_path, capsys):
    """Finite weights too large for the float32 output (1e300 -> inf): every prediction is non-finite."""
    weights, out = tmp_path / "huge.safetensors", tmp_path / "out"
    save_state(weights, {**fitted, "table": torch.full_like(fitted["table"], 1e300)})
    assert main(["run", "--models", "gray,baseline0", "--weights", f"baseline0={weights}", "--eval",
                 f"folder:{images}", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "baseline0" in err.strip().splitlines()[-1]
    assert "produced non-finite values (NaN or Inf) in 2 of 2 images" in err
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["baseline0"]["non_finite"] is True and run["models"]["gray"]["non_finite"] is False
    assert_left_out(out, "baseline0")
