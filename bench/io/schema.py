"""The result schema: what a run folder holds and what every column and field means.

Column names are stable: new metrics add columns, existing names never change meaning. Numbers are written
with 10 significant digits; an empty CSV cell (``null`` in JSON) means "not available" (for example SSIM of an
image smaller than its window).

Run folder layout::

    manifest.csv           evaluation split manifest (colorbench.data.splits.MANIFEST_COLUMNS; ``decoding``
                           only when the image rule changed a file)
    manifest_train.csv     training split manifest (when a model was fitted or trained)
    ground_truth/ID.png    originals at the working size, lossless (what predictions are scored against)
    gray/ID.png            the grey input the models saw (Lab L rendered as sRGB grey)
    segments/ID.png        16-bit segment label map (COCO instances or SLIC), for segment metrics and the study
    predictions/M/ID.png   model M's colorization of image ID, lossless 8-bit PNG, tagged with its cache key
    predictions/M.swapped-captions/ID.png   a caption model's colorization with another image's caption
                           (colorbench.pipeline.caption_sensitivity; scored under records/M.swapped-captions, not a
                           leaderboard row)
    records/M/S/*.jsonl    per-image metric records of model M under metric-set hash S (resume cache; each line
                           carries the sha256 of its content, and the pixel hashes of the prediction and ground truth)
    records/M/set_level.json   set-level metric values of model M (cache, with a checksum)
    checkpoints/M.safetensors  fitted or trained weights (metadata: what they were fitted/trained on, and the
                           sha256 of the tensors, checked on load)
    train/M/               steps.csv, epochs.csv, epoch checkpoints and summary.json of a trained model
    train/vocabulary-K.json    the caption models' vocabulary of the training captions (K: hash of those captions)
    study/perturbations.csv    the perturbation study: sweep, strength, image_id, one column per metric
    study/paired_variants.csv  the paired study's outputs: variant, image_id, detail (rule used), one column per metric
    analysis/*.csv         perturbation curves and sensitivity, rank correlations, win rates, metric ranks,
                           paired_study.csv (colorbench.analysis.paired.PAIRED_COLUMNS), BAPPS agreement (when
                           computed), claim_rules.csv (the claims' thresholds and sources, every rule version),
                           common_pixels.csv (C7: both arms on the pixels both contain), reproduction.csv (the
                           paper's Table 1, 2 and 4 figures beside ours: table, experiment, paper_model, model,
                           metric, ours, ours_lo, ours_hi (95% bootstrap interval), n_images, paper, gap (ours -
                           paper), interval_excludes_paper (yes/no), note; colorbench.claims.reproduction)
    figures/*.png          the report's figures
    per_image.csv          PER_IMAGE_COLUMNS
    leaderboard.csv        LEADERBOARD_COLUMNS
    claims.csv             rule_version, current (yes for the current rule version, else no), claim, statement,
                           test, numbers, n (what it counts is the protocol's first item: images, or runs for C5
                           from version 5), protocol, outcome (what the rule computed), verdict (the outcome, or
                           "plumbing only" for sample/smoke data), what_would_change; one row per claim and rule
                           version, the current version's rows first, then older versions newest first
                           (colorbench.claims.table.csv_rows; the column current since rule version 5)
    run.json               RUN_FIELDS
    index.html             the report
    .colorbench-folder.json    which command made the folder (others are refused; colorbench.io.runfolder)
    .colorbench.lock       the lock held by the process writing the folder

Every PNG colorbench writes carries the sha256 of its decoded pixels in the tEXt chunk
``colorbench-pixels-sha256``; a cached PNG whose pixels do not match is rewritten (colorbench.io.integrity).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from colorbench.core.files import atomic_write_bytes

SCHEMA_VERSION = 1

#: per_image.csv: one row per (model, image), then one column per metric under its registry name.
PER_IMAGE_KEYS = {
    "model": "registry name of the model (or the folder name of a scored prediction set)",
    "image_id": "image id from the source (COCO id, or file stem for folders)",
    "file": "file name of the original (run) or of the prediction (score)",
}

#: leaderboard.csv: one row per model; for each metric M the columns M, M_lo, M_hi.
LEADERBOARD_KEYS = {
    "model": "registry name of the model",
    "n_images": "number of images scored for this model",
}
LEADERBOARD_METRIC_COLUMNS = {
    "{metric}": "mean over images of the per-image values (NaN values left out)",
    "{metric}_lo": "lower bound of the 95% percentile bootstrap interval of the mean (1000 resamples of images); "
                   "set-level metrics: the metric's own interval (KID: over subsets), else empty",
    "{metric}_hi": "upper bound of that interval",
}
#: leaderboard.csv columns present when a caption-reading model ran (empty for the other models):
#: caption_sensitivity_n, then for each ranked metric M caption_sensitivity_M, _lo, _hi
#: (colorbench.pipeline.caption_sensitivity).
LEADERBOARD_CAPTION_COLUMNS = {
    "caption_sensitivity_n": "images scored both with their own caption and with another image's",
    "caption_sensitivity_{metric}": "mean over images of goodness(true caption) - goodness(swapped caption): "
                                    "positive when the true caption scores better",
    "caption_sensitivity_{metric}_lo": "lower bound of its paired 95% percentile-bootstrap interval over images",
    "caption_sensitivity_{metric}_hi": "upper bound of that interval",
}

#: run.json top-level fields.
RUN_FIELDS = {
    "schema_version": "version of this schema",
    "command": "the command line that made the run",
    "created": "UTC time the run.json was written (ISO 8601)",
    "provenance": "versions of Python and libraries, platform, colorbench version, git commit and dirty flag when "
                  "the command began (git_at_write: the state when run.json was written, only if it differs)",
    "device": "device the run used",
    "seed": "global seed (model init, shuffles, bootstrap)",
    "config": "the full run configuration (sources, splits, preprocessing, models, metrics)",
    "protocol": "what the claims table states per row (runner.protocol): eval/train source and split, "
                "builtin_sample, n_eval_images, working_size, resize_mode, seeds, segment_source, "
                "train_eval_overlap (files shared by the two manifests); null for `score`",
    "splits": "per role (eval/train): source, split, manifest sha256, counts by status; overlap: files (sha256) "
              "shared by the training and evaluation manifests and whether --allow-overlap permitted them",
    "models": "per model: registry entry (spec, with its definition version), options, weights sha256, cache key, "
              "how the weights were obtained, "
              "the training record of trained models (settings, best/worst epoch, divergence flag), "
              "adversarial (trained against a critic), for trained models replica_of (registry name), seed (this "
              "replica's; --seeds N names replica k > 0 NAME@seed{k}) and protocol (profile, image_size, width, "
              "batch_size, epochs, teacher, seed, n_train_images, batch_exceeds_training_set), "
              "prediction health (non-finite and out-of-range values, clipped before scoring), metric_na (images "
              "with no value per metric), errors; caption_sensitivity for caption-reading models (records_as, "
              "cache_key, swap_key (which caption each image received), derangement_seed, n_images, "
              "n_same_caption_text)",
    "metrics": "per metric: definition, parameters, direction, range, implementing function, definition version",
    "metrics_unavailable": "metrics left out because a weight file or package is missing, with the exact reason",
    "segments": "how segment label maps were made (COCO instances or SLIC superpixels), when used",
    "image_rule": "how every image file was read (colorbench.io.image_rule): EXIF orientation applied, alpha "
                  "composited over white, ICC profiles converted to sRGB; what it changed per file is the "
                  "manifest's decoding column",
    "weight_files": "absolute path -> sha256 of every third-party weight file this run read (teachers, feature "
                    "networks)",
    "skipped": "images left out, with the stage (manifest/ground truth/predict/score/segments) and the reason "
               "(a caption model's images without a caption: not applicable)",
    "tables": "per_image.csv and leaderboard.csv as this command wrote them (sha256, bytes): a table edited or "
              "cut afterwards, even at a line boundary, is refused by `report` and `table`",
    "integrity": "cache entries of this command that failed their checksum (corrupt_entries, and each entry's kind, "
                 "path and reason); each was recomputed, none used (colorbench.io.integrity)",
    "set_level": "per set-level metric: min_images (the fewest images its value is trusted on), reason, and below "
                 "(model -> images scored, for the models under it; colorbench.metrics.small_sets)",
    "timings": "wall seconds per stage (data, fit/train/load, predict, score, study, tables, report), per model "
               "and in total, of the process that wrote the run (colorbench.io.timings); absent for score",
}


def per_image_columns(metric_names: Sequence[str]) -> list[str]:
    return [*PER_IMAGE_KEYS, *metric_names]


def leaderboard_columns(metric_names: Sequence[str]) -> list[str]:
    columns = list(LEADERBOARD_KEYS)
    for name in metric_names:
        columns += [name, f"{name}_lo", f"{name}_hi"]
    return columns


def format_value(value: object) -> str:
    """CSV cell text: floats with 10 significant digits, NaN/None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".10g")
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Write rows (dicts) under fixed columns, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row.get(column)) for column in columns])
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def json_safe(value: object) -> object:
    """Replace NaN/Inf floats by None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: Mapping[str, object]) -> None:
    atomic_write_bytes(path, (json.dumps(json_safe(payload), indent=2, sort_keys=False) + "\n").encode())
