"""Switching the explorer's metric: filters and grouping on dimensions the new metric
lacks are dropped, and the page says so (before, the old filter stayed silently)."""

from __future__ import annotations

from datetime import timedelta

from dashboard.api_models import MetricInfo
from dashboard.explorer_state import ExplorerQuery, dropped_note, settle

LATENCY = MetricInfo(
    name="latency_p95",
    aggregation="quantile",
    dimensions=("country", "device"),
    windows=("1m", "5m"),
)
EVENTS = MetricInfo(
    name="events", aggregation="count", dimensions=("type", "country"), windows=("1m", "5m")
)


def test_a_filter_the_new_metric_lacks_is_dropped_and_named() -> None:
    before = ExplorerQuery(
        metric="latency_p95",
        group_by="device",
        filter_dim="device",
        filter_values=("ios", "android"),
    )
    after = settle(before, EVENTS, timedelta(hours=1), keep_step=True)
    assert after.filters == {} and after.group_by is None
    assert dropped_note(before, after, EVENTS) == (
        "Removed the filter device=ios,android and grouping by device: events has no such "
        "dimension (its dimensions: type, country)."
    )


def test_what_still_applies_is_kept_without_a_note() -> None:
    before = ExplorerQuery(
        metric="events", group_by="country", filter_dim="country", filter_values=("DE", "FR")
    )
    after = settle(before, LATENCY, timedelta(hours=1), keep_step=True)
    assert after.filters == {"country": ["DE", "FR"]} and after.group_by == "country"
    assert dropped_note(before, after, LATENCY) is None
