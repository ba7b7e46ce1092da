from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stratum.metrics import MetricDefinitionError, load_catalog, parse_catalog
from stratum.settings import DEFAULT_METRICS_FILE


def _one(**fields: Any) -> dict[str, Any]:
    return {"metric": [{"name": "m", "aggregation": "count", **fields}]}


def test_the_shipped_definitions_load() -> None:
    catalog = load_catalog(DEFAULT_METRICS_FILE)
    assert catalog.names == ["events", "revenue", "latency_p95", "unique_users"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "define at least one [[metric]] table"),
        (_one(aggregation="median"), "metric 'm': aggregation: Input should be 'count'"),
        (_one(aggregation="sum"), "metric 'm': definition: aggregation sum needs a numeric field"),
        (_one(field="amount"), "aggregation count takes no field"),
        (_one(aggregation="quantile", field="x"), "quantile = 0..1 goes with"),
        (_one(aggregation="quantile", field="x", quantile=1.5), "quantile: Input should be less"),
        (_one(windows=["1x"]), "windows: '1x' is not a duration"),
        (_one(windows=["1m", "90s"]), "window 90s is not a multiple of the finest window"),
        (_one(windows=["7m"]), "window 7m does not divide a day evenly"),
        (_one(dimensions=["a", "a"]), "dimensions are listed twice"),
        (_one(name="Bad Name"), "name: String should match pattern"),
        ({"metric": [{"name": "m", "aggregation": "count"}] * 2}, "duplicate name"),
        (_one(session_gap="30m", windows=["5m"], hop="1m"), "session_gap and hop exclude"),
        (_one(session_gap="1d"), "session_gap 1d must be shorter than a day"),
        (_one(session_gap="30s"), "the finest window 1m must not be longer than session_gap 30s"),
        (_one(session_gap="ten"), "'ten' is not a duration"),
    ],
)
def test_each_mistake_gets_its_own_message(data: dict[str, Any], message: str) -> None:
    with pytest.raises(MetricDefinitionError) as info:
        parse_catalog(data)
    assert message in str(info.value)


def test_a_missing_or_broken_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(MetricDefinitionError, match="does not exist"):
        load_catalog(tmp_path / "nope.toml")
    broken = tmp_path / "m.toml"
    broken.write_text("[[metric]\nname=")
    with pytest.raises(MetricDefinitionError, match="is not valid TOML"):
        load_catalog(broken)


def test_a_session_metric_loads_with_its_gap() -> None:
    metric = parse_catalog(_one(session_gap="30m", dimensions=["user"])).metrics[0]
    assert metric.session_gap_ms == 1_800_000
    assert metric.window_ms == 60_000  # the windows sessions are chained from
