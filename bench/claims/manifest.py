"""The rule sets of the claims table as data: one TOML manifest per version (bench/claims/versions/N.toml), read
with :mod:`tomllib`.

A manifest names its version (``id``), says what it changed (``description``), may say when it was ``fixed`` (a TOML
date-time: a rule is called pre-registered only for a run made after it, :func:`registration`), may ``extends`` an
earlier version, and gives per claim (reference.md sec. 1: the paper's C1-C7, and C8) the id of the rule function
that decides it (bench/claims/registry.py) and the thresholds that function reads, each with its value and its
source: the paper (with its section) or "ours" (with the reason). A claim a manifest does not name is inherited from
the version it extends; a claim it names with another rule id gets exactly the thresholds listed (new logic states
its own numbers); a claim it names without a new rule id keeps the inherited thresholds and overrides the ones
listed, so a threshold-only change is one manifest entry. Every version stays beside the current one (the last):
``claims.csv`` has one row per claim and version, and ``analysis/claim_rules.csv`` the thresholds of each.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

#: A claim's name in a manifest (``C1`` ... ``C8``, or a part of one such as ``C6-premise``) and a rule function's id
#: (``c4@2``: claim 4, logic of version 2; ``c6-premise@5``).
CLAIM_NAME = re.compile(r"C\d+(?:-[a-z]+)?")
RULE_ID = re.compile(r"c(\d+(?:-[a-z]+)?)@(\d+)")
SOURCES = ("paper", "ours")


class ManifestError(ValueError):
    """A rule-set manifest that does not say what the rules need (unknown key, missing value, bad reference)."""


@dataclass(frozen=True)
class Threshold:
    """One number a rule compares with, and where it comes from (a row of ``analysis/claim_rules.csv``)."""

    version: str
    claim: str
    name: str
    value: float
    source: str

    def as_row(self) -> dict[str, object]:
        return {"version": self.version, "claim": self.claim, "name": self.name, "value": self.value,
                "source": self.source}


@dataclass(frozen=True)
class ClaimRule:
    """How one version decides one claim: the rule function's id and the thresholds passed to it, in order."""

    claim: str
    rule: str
    thresholds: tuple[Threshold, ...] = ()

    def values(self) -> Mapping[str, float]:
        """The thresholds by name, as the rule function receives them."""
        return MappingProxyType({t.name: t.value for t in self.thresholds})


@dataclass(frozen=True)
class RuleVersion:
    """One rule set: its id, what it changed, the version it extends ("" for none), its claims in order and when
    it was fixed (None where the manifest does not say)."""

    id: str
    description: str
    extends: str
    claims: Mapping[str, ClaimRule]
    fixed: datetime | None = None

    def table(self) -> tuple[Threshold, ...]:
        """Every threshold of this version, claim by claim (the rows of ``analysis/claim_rules.csv``)."""
        return tuple(t for rule in self.claims.values() for t in rule.thresholds)


def _keys(where: str, table: Mapping[str, Any], required: AbstractSet[str],
          optional: AbstractSet[str] = frozenset()) -> None:
    if missing := required - set(table):
        raise ManifestError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown := set(table) - required - optional:
        raise ManifestError(f"{where}: unknown {', '.join(sorted(unknown))}")


def _threshold(where: str, version: str, claim: str, name: str, entry: object) -> Threshold:
    if not isinstance(entry, Mapping):
        raise ManifestError(f"{where}: a threshold is a table with value and source")
    _keys(where, entry, {"value", "source"})
    value, source = entry["value"], entry["source"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}: value must be a number, not {value!r}")
    if not isinstance(source, str) or not source.startswith(SOURCES):
        raise ManifestError(f"{where}: source must start with {' or '.join(SOURCES)} (the paper's section or our "
                            "reason)")
    return Threshold(version, claim, name, value, source)


def _claim(where: str, version: str, claim: str, entry: Mapping[str, Any], inherited: ClaimRule | None) -> ClaimRule:
    if not CLAIM_NAME.fullmatch(claim):
        raise ManifestError(f"{where}: a claim is named C<number>")
    _keys(where, entry, set() if inherited else {"rule"}, {"rule", "thresholds"})
    rule = entry.get("rule", inherited.rule if inherited else "")
    if not isinstance(rule, str) or not (found := RULE_ID.fullmatch(rule)) or found[1] != claim[1:]:
        raise ManifestError(f"{where}: rule {rule!r} is not an id c{claim[1:]}@<version> of this claim")
    listed = entry.get("thresholds", {})
    if not isinstance(listed, Mapping):
        raise ManifestError(f"{where}: thresholds is a table of name = {{value, source}}")
    new = {name: _threshold(f"{where}.thresholds.{name}", version, claim, name, t) for name, t in listed.items()}
    if inherited is None or rule != inherited.rule:
        return ClaimRule(claim, rule, tuple(new.values()))
    kept = {t.name: replace(t, version=version) for t in inherited.thresholds}
    if unread := set(new) - set(kept):
        raise ManifestError(f"{where}: rule {rule} reads no threshold {', '.join(sorted(unread))}; a new threshold "
                            "is new logic, so a new rule id")
    return ClaimRule(claim, rule, tuple({**kept, **new}.values()))


def parse(text: str, known: Mapping[str, RuleVersion], where: str = "manifest") -> RuleVersion:
    """The rule version a manifest's TOML ``text`` describes; ``extends`` is looked up in ``known``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{where}: {error}") from error
    _keys(where, data, {"id", "description", "claims"}, {"extends", "fixed"})
    fixed = data.get("fixed")
    if fixed is not None and not (isinstance(fixed, datetime) and fixed.tzinfo is not None):
        raise ManifestError(f"{where}: fixed must be a TOML date-time with its offset, e.g. 2026-12-03T14:00:00Z")
    version, extends = str(data["id"]), str(data.get("extends", ""))
    if version in known:
        raise ManifestError(f"{where}: version {version} exists already")
    if extends and extends not in known:
        raise ManifestError(f"{where}: extends unknown version {extends!r}; known: {', '.join(known)}")
    base: Mapping[str, ClaimRule] = known[extends].claims if extends else {}
    claims = {claim: replace(rule, thresholds=tuple(replace(t, version=version) for t in rule.thresholds))
              for claim, rule in base.items()}
    if not isinstance(data["claims"], Mapping):
        raise ManifestError(f"{where}: claims is a table of C<number> = {{rule, thresholds}}")
    for claim, entry in data["claims"].items():
        claims[claim] = _claim(f"{where}: claims.{claim}", version, claim, entry, claims.get(claim))
    return RuleVersion(version, str(data["description"]), extends, MappingProxyType(claims), fixed)


def load(path: Path, known: Mapping[str, RuleVersion] | None = None) -> RuleVersion:
    """The rule version of the manifest file ``path``; ``extends`` is looked up in ``known`` (the built-in ones
    unless told)."""
    return parse(path.read_text(), BUILT_IN if known is None else known, str(path))


def _built_in() -> Mapping[str, RuleVersion]:
    """The versions in bench/claims/versions/, oldest first: each file is named after its integer id."""
    folder = resources.files("colorbench.claims") / "versions"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: int(f.name[:-5]))
    known: dict[str, RuleVersion] = {}
    for file in files:
        version = parse(file.read_text(), known, f"versions/{file.name}")
        if version.id != file.name[:-5]:
            raise ManifestError(f"versions/{file.name}: id {version.id!r} differs from the file's name")
        known[version.id] = version
    return MappingProxyType(known)


#: The built-in rule versions by id, oldest first; the last is the current one.
BUILT_IN = _built_in()
#: What each built-in version changed, by id.
VERSIONS: Mapping[str, str] = MappingProxyType({v.id: v.description for v in BUILT_IN.values()})
CURRENT_VERSION: str = list(BUILT_IN)[-1]
#: Every built-in version's thresholds, oldest version first.
RULE_TABLE: tuple[Threshold, ...] = tuple(t for v in BUILT_IN.values() for t in v.table())


def version(version_id: str) -> RuleVersion:
    """A built-in rule version by id."""
    if version_id not in BUILT_IN:
        raise ValueError(f"unknown rule version {version_id!r}; known: {', '.join(BUILT_IN)}")
    return BUILT_IN[version_id]


def registration(rule_version: RuleVersion, run_created: str) -> str:
    """How the report may describe ``rule_version`` for a run created at ``run_created`` (run.json ``created``,
    ISO 8601): ``pre-registered`` only when the manifest records a fixing time before the run was made."""
    if rule_version.fixed is None:
        return "no fixing time recorded, so not pre-registered for this run"
    fixed = rule_version.fixed.isoformat()
    try:
        created = datetime.fromisoformat(run_created)
    except ValueError:
        created = None
    if created is None or created.tzinfo is None:
        return f"fixed {fixed}; the run records no creation time with its offset, so not pre-registered for it"
    if created <= rule_version.fixed:
        return f"fixed {fixed}, after this run was made: not pre-registered for it"
    return f"pre-registered: fixed {fixed}, before this run was made"
