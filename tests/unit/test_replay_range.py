"""Where a replay from a time starts rebuilding, and how that is said."""

from __future__ import annotations

from typing import Any

import pytest

from stratum.metrics import parse_catalog
from stratum.replay_range import describe, range_params

T = 1_795_255_530_125  # 2026-11-21T10:05:30.125Z


@pytest.mark.parametrize(
    ("metrics", "start"),
    [
        ([{"windows": ["1m", "5m"]}], T - T % 60_000),
        ([{"windows": ["1m"]}, {"windows": ["5m"], "hop": "1m"}], T - T % 300_000),
        ([{"windows": ["10s"]}, {"windows": ["15s"]}], T - T % 30_000),
        ([{"windows": ["1m"], "session_gap": "30m"}], T - T % 60_000),
    ],
)
def test_a_replay_starts_where_every_metric_starts_a_window(
    metrics: list[dict[str, Any]], start: int
) -> None:
    catalog = parse_catalog(
        {"metric": [{"name": f"m{i}", "aggregation": "count", **m} for i, m in enumerate(metrics)]}
    )
    assert catalog.replay_start_ms(T) == start
    assert catalog.replay_start_ms(start) == start


def test_the_range_is_named_in_params_and_in_words() -> None:
    assert describe(range_params(None)) == "rebuilds all windows from the archive and the log"
    params = {"from_ms": T, **range_params(T - T % 60_000, carried_rows=7)}
    assert params["rebuilds"] == "windows from 2026-11-21T10:05:00Z"
    assert describe(params) == (
        "rebuilds windows from 2026-11-21T10:05:00Z; keeps the windows before it (served by "
        "batch, or carried over from the live generation); asked from "
        "2026-11-21T10:05:30.125Z, aligned down to a window start; 7 window row(s) carried "
        "over"
    )
