"""A job's progress in words, said the same way by the API, the CLI and the admin page:
"2/6 · computing metrics" (2 of 6 units done, metrics under way), "1/1 · following the
log".

Why one place: a batch run counts units (reading the archive, one per metric, writing
coverage) and a replay reports phases; shown raw, "1/6" means nothing, and two views that
each guessed disagreed. Units are reported when they *finish*, so the phase named is the
unit after the last one done.

Replays keep their ``phase`` and ``generation`` in the stored params (the jobs table has
no column for them); :func:`split_params` tells the request's parameters from that state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATE_KEYS = ("phase", "generation")
REPLAY_PHASES = {
    "archive": "reading the archive",
    "log": "following the log",
    "switched": "switched to the new generation",
}


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what was asked, what the runner recorded as it went)."""
    asked = {k: v for k, v in params.items() if k not in STATE_KEYS}
    state = {k: v for k, v in params.items() if k in STATE_KEYS}
    return asked, state


def batch_phase(step: int, steps: int) -> str:
    """The name of batch unit ``step`` (1-based) of ``steps``."""
    if step <= 1:
        return "reading archive"
    if step >= steps:
        return "writing coverage"
    return "computing metrics"


def progress_label(
    kind: str, state: str, units_done: int, units_total: int, phase: str | None = None
) -> str:
    """ "2/6 · computing metrics" while running (units done, then the one under way),
    "6/6 · done" once succeeded, "queued"; a failed run says how far it got."""
    if state == "queued":
        return "queued"
    if kind == "replay":
        name = REPLAY_PHASES.get(phase or "", phase or "starting")
        if state == "succeeded":
            name = REPLAY_PHASES["switched"]
        return f"{units_done}/{units_total} · {name}" if units_total else name
    if not units_total:
        return "starting" if state == "running" else state
    if state == "succeeded":
        return f"{units_total}/{units_total} · done"
    done = min(units_done, units_total)
    if state == "running":
        return f"{done}/{units_total} · {batch_phase(min(done + 1, units_total), units_total)}"
    return f"{done}/{units_total}"
