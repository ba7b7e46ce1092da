"""The speed layer's flush schedule: fixed rate, start to start (speed_layer.app.every)."""

from __future__ import annotations

import pytest

from speed_layer.app import next_run_at


@pytest.mark.parametrize(
    ("due", "now", "expected"),
    [
        (10.0, 10.2, 10.5),  # a 0.2 s run: the next starts 0.5 s after this one was due
        (10.0, 10.0, 10.5),
        (10.0, 10.7, 10.7),  # a run longer than the interval: the next starts at once
        (10.0, 12.3, 12.3),  # ... and only one: no burst to make up for the missed ones
    ],
)
def test_runs_are_due_an_interval_apart_or_at_once_when_late(
    due: float, now: float, expected: float
) -> None:
    assert next_run_at(due, 0.5, now) == pytest.approx(expected)
