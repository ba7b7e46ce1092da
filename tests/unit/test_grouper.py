"""``MetricDefinition.grouper`` (the speed layer's compiled hot path) answers exactly what
``matches`` and ``group_of`` answer, for every kind of metric and event."""

from __future__ import annotations

import pytest

from stratum.metrics import MetricDefinition

METRICS = [
    MetricDefinition(name="events", aggregation="count", dimensions=("type", "country")),
    MetricDefinition(name="revenue", aggregation="sum", field="amount",
                     where={"type": "purchase"}, dimensions=("country",)),
    MetricDefinition(name="p95", aggregation="quantile", quantile=0.95, field="latency_ms",
                     where={"country": ["DE", "FR"]}, dimensions=("country", "device")),
    MetricDefinition(name="users", aggregation="distinct", field="user_id",
                     dimensions=("country",)),
    MetricDefinition(name="all", aggregation="max", field="amount"),
]

EVENTS = [
    {"event_id": "1", "ts": 1, "type": "purchase", "country": "DE", "amount": 12.5,
     "user_id": "u1", "latency_ms": 80},
    {"event_id": "2", "ts": 2, "type": "click", "country": "FR", "latency_ms": 81.5},
    {"event_id": "3", "ts": 3, "type": "purchase", "amount": 3},                   # no country
    {"event_id": "4", "ts": 4, "type": "purchase", "country": "US", "amount": True},  # bool
    {"event_id": "5", "ts": 5, "type": "purchase", "country": "DE", "amount": "12"},  # string
    {"event_id": "6", "ts": 6, "type": "view", "country": "DE", "user_id": 42,
     "latency_ms": None},
    {"event_id": "7", "ts": 7, "type": "view", "country": ["DE"], "device": 3},   # odd values
    {"event_id": "8", "ts": 8, "type": "purchase", "country": "DE", "amount": 0,
     "device": "ios", "user_id": ""},
]


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e["event_id"])
def test_grouper_is_matches_then_group_of(metric, event):
    expected = metric.group_of(event) if metric.matches(event) else None
    assert metric.grouper()(event) == expected
