"""Golden rows of every claims rule version: a rule version, once shipped, never changes a verdict.

The evidence is fixed: tests/claims_golden/scenarios.json describes a few synthetic runs (decisive, contrary,
undecided, absent, partial, sample), built into :class:`Evidence` by :func:`scenario_evidence` with no random
draws. For each built-in version N, tests/claims_golden/vN.json holds every claim's whole row (the columns of
claims.csv: test, numbers, n, protocol, outcome, verdict, what would change it) in every scenario written by
then (a scenario added with version N says ``"since": "N"``, so an old version's golden file never grows), and
the test fails on any difference. A change that moves an old version's row is a logic change: a new rule function
under a new id and a new version (bench/claims/registry.py), not an edit.

The golden file of a NEW version N (after adding bench/claims/versions/N.toml) is written once, by

    .venv/bin/python -m tests.test_claims_golden N

which refuses to overwrite an existing golden file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from colorbench.claims.evidence import (
    INCONCLUSIVE,
    NOT_RUN,
    NOT_SUPPORTED,
    NOT_TESTED,
    PLUMBING_ONLY,
    SUPPORTED,
    Evidence,
)
from colorbench.claims.manifest import BUILT_IN, ManifestError, RuleVersion, load, parse, version
from colorbench.claims.registry import rule_function
from colorbench.claims.table import evaluate_claims

GOLDEN = Path(__file__).parent / "claims_golden"
FIXTURE = json.loads((GOLDEN / "scenarios.json").read_text())
NOISE: list[float] = FIXTURE["noise"]
WRITE = "python -m tests.test_claims_golden {id}"


# -- the fixed evidence ----------------------------------------------------------------------------------------
def _replicas(name: str, spec: Mapping) -> list[tuple[str, Mapping]]:
    """A model spec with ``seeds`` becomes one entry per seed (NAME, NAME@seed1, ...), replicas of NAME."""
    if "seeds" not in spec:
        return [(name, spec)]
    return [(name if k == 0 else f"{name}@seed{k}", {**spec, "seed": seed, "replica_of": name})
            for k, seed in enumerate(spec["seeds"])]


def _info(spec: Mapping) -> dict[str, object]:
    """A run.json model entry (interfaces 3 and 4: seed, replica_of, adversarial, training record)."""
    training, seed = spec.get("training", "train"), spec.get("seed", 0)
    info: dict[str, object] = {"spec": {"training": training}, "error": None, "options": {
        "profile": spec.get("profile", "paper"), "teacher": "vgg16", "seed": seed, **spec.get("options", {})}}
    if training == "train":
        info.update(seed=seed, adversarial=spec.get("adversarial", False), training=spec.get("record", {}))
        if "replica_of" in spec:
            info["replica_of"] = spec["replica_of"]
    return info


def _value(mean_spread: list[float], image: int, place: int) -> float:
    mean, spread = mean_spread
    return mean + spread * NOISE[(image + 5 * place) % len(NOISE)]


def _board(name: str, spec: Mapping) -> dict[str, str]:
    """A leaderboard row: a [mean, lo, hi] entry fills METRIC, METRIC_lo and METRIC_hi."""
    row = {"model": name, "n_images": str(len(NOISE))}
    for metric, value in spec.get("board", {}).items():
        if isinstance(value, list):
            row.update({metric: str(value[0]), f"{metric}_lo": str(value[1]), f"{metric}_hi": str(value[2])})
        else:
            row[metric] = str(value)
    return row


def _paired_study(blocks: list[Mapping]) -> list[dict[str, str]]:
    """Paired-study rows (interface 2) of the high band: every dull output against every alternative."""
    return [{"dull": dull, "alternative": alternative, "metric": metric, "band": "high", "n": str(block["n"]),
             "prefers_dull": str(share), "prefers_dull_lo": str(lo), "prefers_dull_hi": str(hi)}
            for block in blocks for dull in block["dull"] for alternative in block["alternatives"]
            for metric, (share, lo, hi) in block["prefers"].items()]


def _common_pixels(spec: Mapping[str, Mapping[str, list[float]]]) -> list[dict[str, object]]:
    """C7 rows: resize = mean (1 + 0.05 noise), crop = resize + gain + jitter mean noise (another image's); an
    entry is [mean, gain] (jitter 0.01) or [mean, gain, jitter]."""
    rows: list[dict[str, object]] = []
    for place, (model, metrics) in enumerate(spec.items()):
        for image in range(len(NOISE)):
            for metric, (mean, gain, *jitter) in metrics.items():
                resize = mean * (1 + 0.05 * NOISE[(image + place) % len(NOISE)])
                crop = resize + gain + (jitter or [0.01])[0] * mean * NOISE[(image + place + 1) % len(NOISE)]
                rows.append({"model": model, "image_id": str(image), "metric": metric, "resize": resize,
                             "crop": crop})
    return rows


def _c2_arms(spec: Mapping) -> list[dict[str, object]]:
    """Rows of analysis/c2_arms.csv (rule c2@5) for ``spec["images"]`` images."""
    return [{"image_id": str(i), "arm": arm, "role": role, "pair": pair,
             **{column: _value(mean_spread, i, place) for column, mean_spread in columns.items()}}
            for i in range(spec["images"]) for place, (arm, role, pair, columns) in enumerate(spec["arms"])]


def scenario_evidence(spec: Mapping) -> Evidence:
    """The Evidence one scenario of scenarios.json describes."""
    entries = [entry for name, model in spec["models"].items() for entry in _replicas(name, model)]
    per_image = [{"model": name, "image_id": str(i), **{m: str(_value(v, i, place))
                                                        for m, v in model.get("values", {}).items()}}
                 for place, (name, model) in enumerate(entries) if model.get("values") for i in range(len(NOISE))]
    measured = [m for _, model in entries for m in model.get("values", {})]
    run = {"config": {"eval_source": spec.get("source", "coco:/data:val2017"),
                      "preprocess": {"size": 224, "mode": "resize"}},
           "models": {name: _info(model) for name, model in entries},
           "metrics": {m: {} for m in spec.get("metrics", dict.fromkeys(measured))}, "segments": {"kind": "coco"},
           **({"splits": spec["splits"]} if "splits" in spec else {})}
    near_grey = {name: {str(i): min(max(_value(model["near_grey"], i, place), 0.0), 1.0) for i in range(len(NOISE))}
                 for place, (name, model) in enumerate(entries) if "near_grey" in model}
    return Evidence(run, [_board(name, model) for name, model in entries], per_image,
                    sensitivity=spec.get("sensitivity", ()), curves=spec.get("curves", ()),
                    correlations=spec.get("correlations", ()), paired_study=_paired_study(spec.get("paired_study", [])),
                    human=spec.get("human", ()), near_grey=near_grey,
                    common_pixels=_common_pixels(spec.get("common_pixels", {})),
                    crop=scenario_evidence(spec["crop"]) if "crop" in spec else None,
                    c2_arms=_c2_arms(spec["c2_arms"]) if "c2_arms" in spec else (),
                    c2_params=FIXTURE["c2_params"] if "c2_arms" in spec else {})


SCENARIOS = {name: scenario_evidence(spec) for name, spec in FIXTURE["scenarios"].items()}


def pinned(rule_version: RuleVersion) -> list[str]:
    """The scenarios a version's golden file holds: those written with that version or before (``since``)."""
    return [name for name, spec in FIXTURE["scenarios"].items() if int(spec.get("since", "1")) <= int(rule_version.id)]


def golden_rows(rule_version: RuleVersion) -> dict[str, list[dict[str, Any]]]:
    """Scenario -> the whole claims.csv row of every claim under ``rule_version`` alone."""
    return {name: [c.as_row() for c in evaluate_claims(SCENARIOS[name], (rule_version,))]
            for name in pinned(rule_version)}


def write_golden(rule_version: RuleVersion, folder: Path = GOLDEN) -> Path:
    """Write ``folder/v<id>.json``; an existing golden file is never rewritten (FileExistsError)."""
    path = folder / f"v{rule_version.id}.json"
    with path.open("x") as handle:
        json.dump(golden_rows(rule_version), handle, indent=1)
        handle.write("\n")
    return path


def _golden(version_id: str) -> dict[str, list[dict[str, Any]]]:
    path = GOLDEN / f"v{version_id}.json"
    assert path.is_file(), f"rule version {version_id} has no golden file: write it with {WRITE.format(id=version_id)}"
    return json.loads(path.read_text())


# -- old verdicts stay --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version_id", list(BUILT_IN))
def test_every_version_reproduces_its_golden_rows(version_id):
    expected, found = _golden(version_id), golden_rows(version(version_id))
    assert list(found) == list(expected)
    for scenario, rows in expected.items():
        for want, got in zip(rows, found[scenario], strict=True):
            assert got == want, f"version {version_id}, scenario {scenario}, claim {want['claim']} changed"


def test_the_scenarios_reach_every_outcome_of_every_claim():
    """The fixture exercises each rule's paths: every claim of every version meets all four outcomes (but
    ``c6@1``, which tests only the premise and so is at best inconclusive; ``c2@5`` also reads not tested), and
    both labels are shown."""
    verdicts = set()
    for version_id, rule_version in BUILT_IN.items():
        outcomes: dict[str, set[str]] = {}
        for rows in _golden(version_id).values():
            for row in rows:
                outcomes.setdefault(row["claim"], set()).add(row["outcome"])
                verdicts.add(row["verdict"])
        for claim, met in outcomes.items():
            every = {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN} - ({SUPPORTED} if claim == "C6" and
                                                                         rule_version.claims[claim].rule == "c6@1"
                                                                         else set())
            if rule_version.claims[claim].rule == "c2@5":
                every.add(NOT_TESTED)
            assert met == every, (version_id, claim, met)
    assert verdicts == {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN, NOT_TESTED, PLUMBING_ONLY}


class _Recording(Mapping[str, float]):
    """Thresholds that note which of them a rule function reads."""

    def __init__(self, values: Mapping[str, float], read: set[str]) -> None:
        self.values_, self.read = values, read

    def __getitem__(self, name: str) -> float:
        self.read.add(name)
        return self.values_[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values_)

    def __len__(self) -> int:
        return len(self.values_)


@pytest.mark.parametrize("version_id", list(BUILT_IN))
def test_a_version_lists_exactly_the_thresholds_its_rules_read(version_id):
    for claim, entry in version(version_id).claims.items():
        read: set[str] = set()
        for name in pinned(version(version_id)):
            rule_function(entry.rule)(SCENARIOS[name], _Recording(entry.values(), read))
        assert read == set(entry.values()), (version_id, claim, entry.rule)


# -- a new version ------------------------------------------------------------------------------------------------
FIVE_SEEDS = """
id = "6"
description = "C4 needs five seeds"
extends = "5"

[claims.C4.thresholds.min_seeds]
value = 5
source = "ours: a test of a threshold-only change"
"""


def test_a_threshold_only_change_is_one_manifest_entry(tmp_path):
    (tmp_path / "6.toml").write_text(FIVE_SEEDS)
    five = load(tmp_path / "6.toml")
    assert {c: r.rule for c, r in five.claims.items()} == {c: r.rule for c, r in version("5").claims.items()}
    assert five.claims["C4"].values() == {"min_seeds": 5}
    assert [t.version for t in five.table()] == ["6"] * len(version("5").table())
    old, new = _golden("5"), golden_rows(five)
    for scenario, rows in old.items():
        for before, after in zip(rows, new[scenario], strict=True):
            assert after["rule_version"] == "6"
            same = {**after, "rule_version": before["rule_version"]} == before
            assert same == (before["claim"] != "C4"), (scenario, before["claim"])
    assert new["decisive"][3]["outcome"] == INCONCLUSIVE and old["decisive"][3]["outcome"] == SUPPORTED
    assert "needs >= 5" in new["decisive"][3]["numbers"]
    path = write_golden(five, tmp_path)
    assert json.loads(path.read_text()) == new
    with pytest.raises(FileExistsError):
        write_golden(five, tmp_path)


def test_an_existing_golden_file_is_never_rewritten():
    before = (GOLDEN / "v4.json").read_bytes()
    with pytest.raises(FileExistsError):
        write_golden(version("4"))
    assert (GOLDEN / "v4.json").read_bytes() == before


@pytest.mark.parametrize("text, message", [
    ('id = "6"\ndescription = "x"\nextends = "9"\n[claims]', "extends unknown version '9'"),
    ('id = "4"\ndescription = "x"\n[claims]', "version 4 exists already"),
    ('id = "6"\ndescription = "x"\nextends = "5"\n[claims.C4.thresholds.max_seeds]\nvalue = 9\nsource = "ours"',
     "reads no threshold max_seeds"),
    ('id = "6"\ndescription = "x"\n[claims.C4]\nrule = "c5@2"', "not an id c4@<version>"),
    ('id = "6"\ndescription = "x"\n[claims.C4]\nrule = "c4@2"\n[claims.C4.thresholds.min_seeds]\nvalue = 3\n'
     'source = "a hunch"', "source must start with paper or ours"),
    ('id = "6"\ndescription = "x"\ncolour = "red"\n[claims]', "unknown colour"),
    ('id = "6"\ndescription = "x"\nfixed = 2026-12-03\n[claims]', "fixed must be a TOML date-time with its offset"),
])
def test_a_manifest_that_does_not_say_what_the_rules_need_is_refused(text, message):
    with pytest.raises(ManifestError, match=message):
        parse(text, BUILT_IN)


def test_an_unknown_rule_id_is_refused():
    with pytest.raises(ValueError, match="no rule function 'c4@9'"):
        rule_function("c4@9")


if __name__ == "__main__":
    for version_id in sys.argv[1:]:
        try:
            print(write_golden(version(version_id)))
        except FileExistsError as error:
            sys.exit(f"{error.filename} exists: a shipped version's golden file is never rewritten")
