"""Rule functions by id. A rule function decides one claim: it gets the run's :class:`Evidence` and the thresholds
its version's manifest lists for that claim (bench/claims/manifest.py), and returns the claim's row.

An id reads ``c<claim>@<version>``: the claim and the rule version whose logic it is. One id is one logic, for
good: version 4 decides C1 with ``c1@2``, version 2's function, bound to version 4's thresholds. A change of what a
function computes, or of anything it calls, is a new function under a new id (and a new manifest naming it), never
an edit, since every version that names the old id would silently change; the golden files of
tests/claims_golden/ fail on any such edit. A function with id ``c<n>@<k>`` is defined in (or imported by) module
``colorbench.claims.v<k>``, so a new version's rules are found without a list to update.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from functools import partial

from colorbench.claims.evidence import Claim, Evidence
from colorbench.claims.manifest import RULE_ID, ClaimRule, version

#: A rule's thresholds by name, as its manifest lists them.
Thresholds = Mapping[str, float]
RuleFunction = Callable[[Evidence, Thresholds], Claim]
_REGISTERED: dict[str, RuleFunction] = {}


def rule(rule_id: str) -> Callable[[RuleFunction], RuleFunction]:
    """Register the decorated function under ``rule_id`` (once: an id names one logic)."""
    if not RULE_ID.fullmatch(rule_id):
        raise ValueError(f"rule id {rule_id!r} is not c<claim>@<version>")

    def register(function: RuleFunction) -> RuleFunction:
        if rule_id in _REGISTERED:
            raise ValueError(f"rule {rule_id} is registered twice")
        _REGISTERED[rule_id] = function
        return function
    return register


def rule_function(rule_id: str) -> RuleFunction:
    """The rule function registered under ``rule_id``, importing the module of its version when needed."""
    if rule_id not in _REGISTERED and (found := RULE_ID.fullmatch(rule_id)):
        module = f"colorbench.claims.v{found[2]}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    if rule_id not in _REGISTERED:
        raise ValueError(f"no rule function {rule_id!r} (a function c<n>@<k> is registered in colorbench.claims.v<k>)")
    return _REGISTERED[rule_id]


def apply(entry: ClaimRule, e: Evidence) -> Claim:
    """One claim's row as ``entry`` (a manifest's claim: rule id and thresholds) decides it on ``e``."""
    claim = rule_function(entry.rule)(e, entry.values())
    if claim.claim != entry.claim:
        raise ValueError(f"rule {entry.rule} answered {claim.claim} where the manifest asks {entry.claim}")
    return claim


def bound(version_id: str, claim: str) -> Callable[[Evidence], Claim]:
    """The rule of ``claim`` under built-in rule version ``version_id``, with that version's thresholds."""
    return partial(apply, version(version_id).claims[claim])
