"""The paired, within-image saturation study (claim C2): on the same image, does a metric prefer a dull output
to a plausible recolouring, to an oversaturated one, or to a trained model's output?

The paper (Sec. 1, 7) says that above SSIM 0.9 / PSNR 22 dB, PSNR and SSIM stop telling good colorizations
from dull ones. Asked within an image, content cannot drive the answer: for each image, each metric's goodness
(higher = better, ``colorbench.metrics.registry.goodness``) of the dull output is compared with that of the alternative.

- ``prefers_dull``: the share of images with goodness(dull) > goodness(alternative), ties counting half;
- ``mean_diff``: the mean over images of goodness(dull) - goodness(alternative), in the metric's goodness units.

Both come with percentile-bootstrap 95% intervals (``scipy.stats.bootstrap``, method ``percentile``, resampling
images; the per-image comparison is formed first, so the resampling keeps the pairs). Percentile rather than
BCa because BCa is undefined when every image gives the same answer, the case that matters most here.
``band`` is ``all`` or ``high``: the images whose dull output already scores PSNR >= 22 dB and SSIM >= 0.9
against the truth (the paper's regime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from colorbench.analysis.tables import PSNR_THRESHOLD, SSIM_THRESHOLD
from colorbench.metrics.registry import METRICS, goodness, ranked

DULL = ("grey", "desaturated_50")
PAIRED_COLUMNS = ("dull", "alternative", "metric", "band", "n", "prefers_dull", "prefers_dull_lo", "prefers_dull_hi",
                  "mean_diff", "mean_diff_lo", "mean_diff_hi")
N_RESAMPLES = 2000
#: Metrics drawn in the report's figure: the paper's two and the semantic yardstick (issue 12).
FIGURE_METRICS = ("psnr", "ssim", "semantic_kl")


def outputs_table(
    variant_rows: Sequence[Mapping[str, str]], per_image: Sequence[Mapping[str, str]], models: Sequence[str],
    metric_names: Sequence[str],
) -> pd.DataFrame:
    """One row per (output, image): the study's variants (``variant`` column) and the given models' records
    (``model`` column), with the metric values as floats (empty cells NaN)."""
    frames = [pd.DataFrame(list(variant_rows)).rename(columns={"variant": "output"}),
              pd.DataFrame([r for r in per_image if r["model"] in models]).rename(columns={"model": "output"})]
    table = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    present = [n for n in metric_names if n in table.columns]
    if table.empty:
        return pd.DataFrame(columns=["output", "image_id", *present])
    values = table[present].apply(pd.to_numeric, errors="coerce")
    return pd.concat([table[["output", "image_id"]].astype(str), values], axis=1)


def _interval(sample: np.ndarray, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of the mean of a per-image sample (NaN for fewer than 2 images)."""
    if sample.size < 2:
        return float("nan"), float("nan")
    if np.all(sample == sample[0]):
        return float(sample[0]), float(sample[0])
    result = stats.bootstrap((sample,), np.mean, n_resamples=N_RESAMPLES, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _directed(metric_names: Sequence[str]) -> list[str]:
    """The registered metrics with a direction (diagnostics have no goodness and are left out)."""
    return ranked([name for name in metric_names if name in METRICS])


def _high_band(wide: pd.DataFrame, dull: str) -> pd.Series:
    """Images whose dull output scores PSNR >= 22 dB and SSIM >= 0.9 against the truth (paper Sec. 1)."""
    if ("psnr", dull) not in wide.columns or ("ssim", dull) not in wide.columns:
        return pd.Series(False, index=wide.index)
    return (wide[("psnr", dull)] >= PSNR_THRESHOLD) & (wide[("ssim", dull)] >= SSIM_THRESHOLD)


def paired_preferences(
    outputs: pd.DataFrame, metric_names: Sequence[str], *, dull: Sequence[str] = DULL,
    alternatives: Sequence[str] | None = None, seed: int = 0,
) -> pd.DataFrame:
    """The paired table (columns PAIRED_COLUMNS) from :func:`outputs_table`'s rows: every dull output against
    every alternative (default: every other output present) on every directed metric, in both bands."""
    present = list(dict.fromkeys(outputs["output"])) if len(outputs) else []
    others = [a for a in (alternatives if alternatives is not None else present) if a not in dull and a in present]
    names = [n for n in _directed(metric_names) if n in outputs.columns]
    rows: list[dict[str, object]] = []
    if not names or not others:
        return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    wide = outputs.pivot_table(index="image_id", columns="output", values=names, aggfunc="first", dropna=False)
    for d in (d for d in dull if d in present):
        high = _high_band(wide, d)
        for alternative in others:
            for name in names:
                if (name, d) not in wide.columns or (name, alternative) not in wide.columns:
                    continue
                diff_all = (goodness(name, wide[(name, d)].to_numpy(float))
                            - goodness(name, wide[(name, alternative)].to_numpy(float)))
                defined = np.isfinite(diff_all)
                for band, selected in (("all", defined), ("high", defined & high.to_numpy(bool))):
                    diff = diff_all[selected]
                    wins = (diff > 0) + 0.5 * (diff == 0)
                    row: dict[str, object] = {
                        "dull": d, "alternative": alternative, "metric": name, "band": band, "n": int(diff.size),
                        "prefers_dull": float(wins.mean()) if diff.size else float("nan"),
                        "mean_diff": float(diff.mean()) if diff.size else float("nan")}
                    row["prefers_dull_lo"], row["prefers_dull_hi"] = _interval(wins.astype(float), seed)
                    row["mean_diff_lo"], row["mean_diff_hi"] = _interval(diff, seed)
                    rows.append(row)
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
