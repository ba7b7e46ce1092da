"""The plain-Python reference (tests/reference.py) counts what the speed layer's Polars
aggregation counts, with the same groups and values, for every kind and awkward value:
the other tests trust it as their oracle."""

from __future__ import annotations

from typing import Any

import pytest

from speed_layer.aggregator import PartitionAggregator
from stratum.metrics import MetricDefinition
from tests.reference import group_of, matches, measure

T0 = 1_795_309_200_000  # a minute boundary
FAR_FUTURE = 2**50

METRICS = [
    MetricDefinition(name="events", aggregation="count", dimensions=("type", "country")),
    MetricDefinition(
        name="revenue",
        aggregation="sum",
        field="amount",
        where={"type": "purchase"},
        dimensions=("country",),
    ),
    MetricDefinition(
        name="p95",
        aggregation="quantile",
        quantile=0.95,
        field="latency_ms",
        where={"country": ["DE", "FR"]},
        dimensions=("country", "device"),
    ),
    MetricDefinition(
        name="users", aggregation="distinct", field="user_id", dimensions=("country",)
    ),
    MetricDefinition(name="top", aggregation="max", field="amount", where={"tier": "1"}),
]

EVENTS: list[dict[str, Any]] = [
    {"type": "purchase", "country": "DE", "amount": 12.5, "user_id": "u1", "latency_ms": 80},
    {"type": "click", "country": "FR", "latency_ms": 81.5},
    {"type": "purchase", "amount": 3},  # no country
    {"type": "purchase", "country": "DE", "amount": "12"},  # a number as text
    {"type": "purchase", "country": "DE", "amount": "1e2", "tier": 1},  # exponent, number tier
    {"type": "purchase", "country": "US", "amount": "twelve"},  # text, not a number
    {"type": "view", "country": "DE", "user_id": 42, "latency_ms": None},
    {"type": "view", "country": "FR", "device": 3, "latency_ms": "7.25", "tier": "1.0"},
    {"type": "purchase", "country": "DE", "amount": 0, "device": "ios", "user_id": "", "tier": "1"},
]


def _speed(metric: MetricDefinition, event: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """The speed layer's windows for one event alone: group -> (count, sum)."""
    agg = PartitionAggregator([metric], lateness_ms=60_000)
    agg.add(0, [{"event_id": "e", "ts": T0, **event}], now_ms=FAR_FUTURE)
    return {key[2]: (state.count, state.sum) for key, state in agg.windows.items()}


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
@pytest.mark.parametrize("event", EVENTS, ids=[str(i) for i in range(len(EVENTS))])
def test_reference_counts_what_the_speed_layer_counts(
    metric: MetricDefinition, event: dict[str, Any]
) -> None:
    expected: dict[tuple[str, ...], Any] = {}
    if matches(metric, event):
        value = measure(event.get(metric.field)) if metric.kind.numeric else None
        expected[group_of(metric, event)] = (1, value or 0.0)
    assert _speed(metric, event) == expected


def test_numbers_written_as_text_count_as_numbers() -> None:
    """What the old reference got wrong: it took only JSON numbers as measures."""
    revenue = METRICS[1]
    assert matches(revenue, EVENTS[3]) and measure(EVENTS[3]["amount"]) == 12.0
    assert not matches(revenue, EVENTS[5])
