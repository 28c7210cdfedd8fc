"""The records rule ``c2@5`` decides claim C2 from (issue 21): per evaluation image, every arm of
colorbench.study.c2_arms scored by the fidelity metrics, the judges and the controls, written to
``analysis/c2_arms.csv`` (ARM_COLUMNS), one row per (image, arm).

Columns: ``role`` is ``truth`` (the ground truth, for the gate), ``dull``, ``alternative``, ``plausible_twin`` or
``implausible_twin`` (``pair`` names the instance two twins share); ``psnr`` and ``ssim`` against the truth;
``neg_mse`` (minus the RGB mean squared error, the fidelity control the gate must reject); ``semantic_kl``
(EfficientNet-lite0 agreement with the truth's own classifier output: it sees the truth, so it is a control of the
gate, not a judge, scored on the gate's arms only; empty elsewhere and when the classifier's weights are not
installed); ``colour_likelihood``, the proxy judge of
colorbench.analysis.colour_judge. Arms are made at the run's working size from the saved ground truth, segment
maps and predictions, so the report can rebuild them without a model.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorbench.analysis.colour_judge import NAME, colour_likelihood
from colorbench.analysis.ratings import rating_pairs, write_rating_page
from colorbench.core.errors import BenchError
from colorbench.data.color import rgb_to_lab
from colorbench.data.segments import coco_label_categories
from colorbench.data.sources import CocoSource, open_source
from colorbench.io.images import read_label_png, read_png_u8, write_png
from colorbench.io.layout import RunLayout
from colorbench.io.schema import read_csv, write_csv
from colorbench.metrics.registry import compute
from colorbench.metrics.semantic import semantic_unavailable
from colorbench.study.c2_arms import ARM_PARAMETERS, class_recolouring, half_chroma, large_instances, twins
from colorbench.study.class_colours import ClassColours, stored_class_colours
from colorbench.study.run import to_rgb8

ARM_COLUMNS = ("image_id", "arm", "role", "pair", "detail", "psnr", "ssim", "neg_mse", "semantic_kl", NAME)
#: The dull model whose output is an arm as it is (the other models are dull at half chroma).
DULL_MODELS = ("baseline0",)
GATE_ROLES = ("truth", "plausible_twin", "implausible_twin")
#: Bumped when the arms or their scores change, so stored rows are remade.
ARMS_VERSION = 3
#: Images whose arms the rating page serves (the first in id order), and where the page finds them.
RATING_IMAGES = 20
RATING_PATH = "arms/{image}/{arm}.png"
Arm = tuple[str, str, str, str, torch.Tensor]  # arm, role, pair, detail, 8-bit RGB (3, H, W)
logger = logging.getLogger(__name__)


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """The draws of one image's recolourings: from the run's seed and the image id alone, so a study on more
    images repeats the draws of a smaller one."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def image_arms(out: Path, image_id: str, categories: Mapping[int, str], fit: ClassColours,
               rules: Mapping[str, float], models: Sequence[str], seed: int) -> list[Arm]:
    """Every arm of one image (module docstring of colorbench.study.c2_arms); ``models`` are the run's models
    whose outputs are arms (baseline0 as it is, each model at half chroma, credible ones also as they are)."""
    layout = RunLayout(out)
    truth = read_png_u8(layout.ground_truth(image_id))
    lab = rgb_to_lab(truth[None].float() / 255)[0]
    instances = large_instances(read_label_png(layout.segments(image_id)), categories, fit, rules)
    arms: list[Arm] = [("truth", "truth", "", "", truth),
                       ("grey", "dull", "", "ab = 0", to_rgb8(lab[None, :1], torch.zeros_like(lab[None, 1:]))[0])]
    for model in models:
        path = layout.prediction(model, image_id)
        if not path.is_file():
            continue
        output = read_png_u8(path)
        arms.append((f"{model}@half", "dull", "", "own ab x 0.5", half_chroma(output[None])[0]))
        arms.append((model, "dull" if model in DULL_MODELS else "alternative", "", "model output", output))
    rng = image_rng(seed, image_id)
    for k in range(int(rules["recolourings"])):
        if (made := class_recolouring(lab, instances, fit, rng)) is not None:
            arms.append((f"recolour{k + 1}", "alternative", "", made[1], to_rgb8(lab[None, :1], made[0][None])[0]))
    for pair, plausible, implausible, detail in twins(lab, instances, fit, rules):
        for role, ab in (("plausible_twin", plausible), ("implausible_twin", implausible)):
            arms.append((f"{role}:{pair}", role, pair, detail, to_rgb8(lab[None, :1], ab[None])[0]))
    return arms


def score_arms(arms: Sequence[Arm], image_id: str, segments: torch.Tensor, categories: Mapping[int, str],
               fit: ClassColours, rules: Mapping[str, float]) -> list[dict[str, object]]:
    """The rows of one image's arms (ARM_COLUMNS); the first arm is the truth. semantic_kl, a control of the
    gate only, is scored on the gate's arms (truth, grey, twins)."""
    outputs = torch.stack([a[4] for a in arms]).float() / 255
    truth = outputs[:1].expand_as(outputs).contiguous()
    values = compute(["psnr", "ssim"], outputs, truth)
    gate = [k for k, a in enumerate(arms) if a[1] in GATE_ROLES or a[0] == "grey"]
    semantic = ({} if semantic_unavailable() else
                dict(zip(gate, compute(["semantic_kl"], outputs[gate], truth[gate])["semantic_kl"].tolist(),
                         strict=True)))
    mse = (outputs - truth).double().pow(2).mean(dim=(1, 2, 3))
    ab = rgb_to_lab(outputs)[:, 1:]
    rows = []
    for k, (arm, role, pair, detail, _) in enumerate(arms):
        judged = colour_likelihood(ab[k], segments, categories, fit, rules)
        rows.append({"image_id": image_id, "arm": arm, "role": role, "pair": pair, "detail": detail,
                     "psnr": float(values["psnr"][k]), "ssim": float(values["ssim"][k]), "neg_mse": -float(mse[k]),
                     "semantic_kl": semantic.get(k, ""), NAME: judged})
    return rows


def c2_arm_rows(out: Path, image_ids: Sequence[str], categories: Mapping[str, Mapping[int, str]],
                fit: ClassColours, rules: Mapping[str, float], models: Sequence[str], seed: int = 0,
                ) -> list[dict[str, object]]:
    """The rows of ``analysis/c2_arms.csv`` for the given images of the run folder ``out``; the arms of the
    first RATING_IMAGES images are saved under ``ratings/arms/`` with the rating page (colorbench.analysis.ratings)
    that serves their pairs."""
    rows: list[dict[str, object]] = []
    kit = out / "ratings"
    with torch.no_grad():
        for k, image_id in enumerate(image_ids):
            labels = categories.get(image_id) or {}
            arms = image_arms(out, image_id, labels, fit, rules, models, seed)
            segments = read_label_png(RunLayout(out).segments(image_id))
            rows += score_arms(arms, image_id, segments, labels, fit, rules)
            if k < RATING_IMAGES:
                for arm, _, _, _, rgb8 in arms:
                    write_png(kit / "arms" / image_id / f"{arm.replace(':', '_')}.png", rgb8)
    rated = {str(i) for i in image_ids[:RATING_IMAGES]}
    write_rating_page(kit, [p for p in rating_pairs(rows, RATING_PATH) if p["image_id"] in rated])
    return rows


def c2_records(out: Path, run: Mapping[str, Any], rules: Mapping[str, float]) -> tuple[list[dict[str, object]],
                                                                                   dict[str, float]]:
    """(rows, arm parameters) of a run folder's C2 arms, written to ``analysis/c2_arms.csv``; no rows (and
    nothing written) when the evaluation or training source has no COCO instances or no segment maps were
    saved. The training split's class colours are fitted once and kept in ``analysis/class_colours.json``, and
    the rows are reused while ``analysis/c2_arms.json`` (what they were made from) is unchanged."""
    config = run.get("config", {})
    evaluation, training = (str(config.get(k, "")) for k in ("eval_source", "train_source"))
    layout = RunLayout(out)
    try:
        source = open_source(evaluation)
        coco = source.instances() if isinstance(source, CocoSource) else None
        if coco is None or not isinstance(open_source(training), CocoSource):
            return [], {}
        fit = stored_class_colours(layout.analysis("class_colours.json"), training, rules["large_area"])
    except BenchError as error:
        logger.warning("C2 arms not made: %s", error)
        return [], {}
    images = sorted({p.stem for p in layout.ground_truth_dir.glob("*.png") if layout.segments(p.stem).is_file()})
    categories = {i: coco_label_categories(coco, int(i)) for i in images if i.isdigit()}
    models = [m for m, info in run.get("models", {}).items() if m != "gray" and not info.get("error")
              and not (info.get("spec") or {}).get("reference")
              and not ((info.get("training") or {}).get("divergence") or {}).get("diverged")]
    params, seed = {k: float(rules[k]) for k in ARM_PARAMETERS}, int(run.get("seed", 0))
    key = {"version": ARMS_VERSION, "params": params, "train": training, "models": models, "images": images,
           "seed": seed}
    table, key_file = layout.analysis("c2_arms.csv"), layout.analysis("c2_arms.json")
    if table.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key:
        return read_csv(table), params  # type: ignore[return-value]
    rows = c2_arm_rows(out, [i for i in images if i in categories], categories, fit, rules, models, seed)
    write_csv(table, ARM_COLUMNS, rows)
    key_file.write_text(json.dumps(key))
    return rows, params
