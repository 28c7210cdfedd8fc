"""Provenance records the code a command ran: the git state when it began, not when it wrote run.json."""

from __future__ import annotations

import itertools

import pytest

from colorbench.core import provenance


@pytest.fixture
def moving_head(monkeypatch):  # type: ignore[no-untyped-def]
    """A checkout whose HEAD moves on every look (as if commits landed while a command ran)."""
    commits = (f"{n:040x}" for n in itertools.count(1))
    monkeypatch.setattr(provenance, "_git", lambda *args: next(commits) if args[0] == "rev-parse" else "")


def test_a_commit_during_the_command_is_not_recorded_as_its_source(moving_head):
    with provenance.command():
        recorded = provenance.provenance()
    assert recorded["git"] == {"commit": f"{1:040x}", "dirty": False}
    assert recorded["git_at_write"] == {"commit": f"{2:040x}", "dirty": False}


def test_outside_a_command_the_state_is_read_now_and_a_command_leaves_no_trace(moving_head):
    with provenance.command():
        pass
    recorded = provenance.provenance()
    assert recorded["git"] == {"commit": f"{2:040x}", "dirty": False} and "git_at_write" not in recorded
