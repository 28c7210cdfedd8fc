"""The run's protocol: seed replicas (--seeds), the training-source default of --eval, the train/eval overlap
check, the built-in sample's split, and the protocol facts run.json gives the claims table."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorbench.cli.main import default_train_source, main
from colorbench.core.errors import BenchError
from colorbench.data.sample import SAMPLE_PHOTOS

QUICK = ["--size", "48", "--no-progress", "--no-study", "--metrics", "psnr,mse"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_seed_replicas_are_separate_model_entries(tmp_path):
    """--seeds 2: each trained model twice (seeds 5 and 6), the second as NAME@seed1 in every output; models that
    are not trained appear once; run.json says which entry replicates which model, with its seed."""
    out = tmp_path / "run"
    assert main(["run", "--models", "gray,chromagan-noclass", "--seeds", "2", "--seed", "5", "--epochs", "1",
                 "--out", str(out), *QUICK]) == 0
    names = ["gray", "chromagan-noclass", "chromagan-noclass@seed1"]
    assert [row["model"] for row in read_rows(out / "leaderboard.csv")] == names
    assert {row["model"] for row in read_rows(out / "per_image.csv")} == set(names)
    for name in names:
        assert len(list((out / "predictions" / name).glob("*.png"))) == 4
    run = json.loads((out / "run.json").read_text())
    models = run["models"]
    assert models["gray"]["adversarial"] is False and "replica_of" not in models["gray"]
    for k, name in enumerate(names[1:]):
        info = models[name]
        assert info["replica_of"] == "chromagan-noclass" and info["seed"] == 5 + k and info["adversarial"] is True
        assert info["options"]["seed"] == 5 + k and info["protocol"]["seed"] == 5 + k
        assert info["protocol"]["profile"] == "smoke" and info["protocol"]["batch_exceeds_training_set"] is False
        assert (out / "checkpoints" / f"{name}.safetensors").is_file()
    assert models[names[1]]["weights_sha256"] != models[names[2]]["weights_sha256"]
    protocol = run["protocol"]
    assert protocol["seeds"] == [5, 6] and protocol["builtin_sample"] is True and protocol["n_eval_images"] == 4
    assert protocol["train_eval_overlap"] == 0 and protocol["working_size"] == 48
    assert run["config"]["seeds"] == 2
    with pytest.raises(SystemExit) as refused:  # refused when parsed (issue 22)
        main(["run", "--models", "gray", "--seeds", "0", "--out", str(tmp_path / "none"), *QUICK])
    assert refused.value.code == 2


def write_images(folder: Path, names: list[str], seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{name}.png")


def test_train_eval_overlap_is_refused_unless_allowed(tmp_path, capsys):
    """A file (by sha256) in both the training and the evaluation data stops the run, naming both files; with
    --allow-overlap (a deliberate overfitting check) the run goes ahead and run.json records the overlap."""
    train, evaluate = tmp_path / "train", tmp_path / "eval"
    write_images(train, ["a", "b", "c"], seed=0)
    write_images(evaluate, ["d"], seed=1)
    shutil.copy(train / "b.png", evaluate / "copy_of_b.png")
    args = ["run", "--models", "baseline0", "--train", f"folder:{train}", "--eval", f"folder:{evaluate}", *QUICK]
    assert main([*args, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "1 evaluation image(s) are also training images" in err and "b.png = copy_of_b.png" in err
    assert "--allow-overlap" in err and len(err.strip().splitlines()) == 1
    out = tmp_path / "allowed"
    assert main([*args, "--out", str(out), "--allow-overlap"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["splits"]["overlap"] == {"n_shared": 1, "allowed": True, "eval_image_ids": ["copy_of_b"]}
    assert run["protocol"]["train_eval_overlap"] == 1 and run["protocol"]["builtin_sample"] is False
    # Models that learn nothing need no training data, so nothing is checked for them.
    assert main(["run", "--models", "gray", "--train", f"folder:{evaluate}", "--eval", f"folder:{evaluate}",
                 "--out", str(tmp_path / "gray"), *QUICK]) == 0


def test_eval_alone_trains_on_the_same_coco_roots_train2017(tmp_path, capsys):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    evaluate = f"coco:{root}:val2017"
    with pytest.raises(BenchError, match="--train coco:OTHER_ROOT:train2017"):
        default_train_source(evaluate, ["gray", "baseline0"], {})
    assert main(["run", "--models", "chromagan", "--eval", evaluate]) == 2
    assert "chromagan must be fitted or trained" in capsys.readouterr().err
    assert default_train_source(evaluate, ["gray"], {}) == "sample:train"  # nothing to fit or train
    assert default_train_source(evaluate, ["baseline0"], {"baseline0": Path("w.safetensors")}) == "sample:train"
    (root / "annotations" / "captions_train2017.json").write_text("{}")
    (root / "train2017").mkdir()
    assert default_train_source(evaluate, ["baseline0"], {}) == f"coco:{root}:train2017"
    assert default_train_source("folder:photos", ["baseline0"], {}) == "sample:train"


def test_sample_keeps_the_stereo_pair_on_one_side():
    """The two views of skimage's stereo motorcycle are one scene: a split between train and test would score a
    model on a near-copy of a training image."""
    parts = {p.loader: p.part for p in SAMPLE_PHOTOS}
    assert parts["motorcycle_left"] == parts["motorcycle_right"]
    assert sum(p.part == "test" for p in SAMPLE_PHOTOS) == 5 and len({p.image_id for p in SAMPLE_PHOTOS}) == 11
