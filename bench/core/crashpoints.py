"""Named points where the crash-safety tests kill a run (tests/test_crash_safety.py).

``COLORBENCH_KILL_AT=STAGE[:N]`` makes the process send itself SIGKILL the N-th time (default the first) it
passes the point named STAGE: a real, unannounced death (no exception handlers, no flushing), as an
out-of-memory kill or a pulled plug would be. Without the variable a crash point does nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

KILL_ENV = "COLORBENCH_KILL_AT"
#: The stages a run passes, in order: after a prediction batch is written, after a batch of records is
#: appended, after a model is fitted (before its weights are saved), after an epoch checkpoint is written, and
#: between the tables and the report.
STAGES = ("predict", "score", "fit", "train-epoch", "report")
_passed: Counter[str] = Counter()


def crash_point(stage: str) -> None:
    """Die by SIGKILL here when ``$COLORBENCH_KILL_AT`` names this stage and its count is reached."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name != stage:
        return
    _passed[stage] += 1
    if _passed[stage] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
