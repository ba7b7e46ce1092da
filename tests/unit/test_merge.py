"""The serving merge: how rows become series, and where each point came from."""

from __future__ import annotations

import pytest

from serving.queries import (
    Point,
    assemble,
    merge_series,
    source_of,
    step_problem,
    value_sql,
    with_window_starts,
)
from stratum.metrics import parse_catalog
from tests.reference import weighted_quantile

CATALOG = parse_catalog(
    {
        "metric": [
            {"name": "c", "aggregation": "count", "dimensions": ["country"]},
            {"name": "s", "aggregation": "sum", "field": "amount"},
            {"name": "a", "aggregation": "avg", "field": "amount"},
            {"name": "q", "aggregation": "quantile", "field": "x", "quantile": 0.99},
        ]
    }
)


@pytest.mark.parametrize(
    ("all_batch", "any_batch", "source"), [(1, 1, "batch"), (0, 0, "speed"), (0, 1, "mixed")]
)
def test_each_point_says_where_it_came_from(all_batch: int, any_batch: int, source: str) -> None:
    assert source_of(all_batch, any_batch) == source


@pytest.mark.parametrize(
    ("name", "sql"),
    [
        ("c", "toFloat64(sum(count))"),
        ("s", "sum(sum)"),
        ("a", "sum(sum) / nullIf(sum(count), 0)"),
        ("q", "quantileExactWeightedArray(0.99)(q_values, q_weights)"),
    ],
)
def test_values_roll_up_from_state_never_from_finished_values(name: str, sql: str) -> None:
    metric = CATALOG.get(name)
    assert metric is not None
    assert value_sql(metric) == sql


def test_assemble_groups_and_orders_points() -> None:
    rows = [(120, "FR", 2.0, 0, 0, 2), (60, "DE", 5.0, 1, 1, 5), (0, "DE", 1.0, 1, 1, 1)]
    series = assemble(rows, ["country"])
    assert [s.group for s in series] == [{"country": "DE"}, {"country": "FR"}]
    assert [(p.t_ms, p.value, p.source) for p in series[0].points] == [
        (0, 1.0, "batch"),
        (60, 5.0, "batch"),
    ]
    assert series[1].points[0].source == "speed"


@pytest.mark.parametrize(
    ("step_ms", "problem"),
    [(60_000, None), (300_000, "the step must be 1m"), (30_000, "the step must be 1m")],
)
def test_hopping_windows_only_answer_at_their_hop(step_ms: int, problem: str | None) -> None:
    metric = parse_catalog(
        {"metric": [{"name": "h", "aggregation": "count", "windows": ["5m"], "hop": "1m"}]}
    ).metrics[0]
    found = step_problem(metric, step_ms)
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize(("step_ms", "ok"), [(60_000, True), (300_000, True), (90_000, False)])
def test_tumbling_windows_roll_up_to_multiples(step_ms: int, ok: bool) -> None:
    metric = CATALOG.get("c")
    assert metric is not None
    assert (step_problem(metric, step_ms) is None) is ok


@pytest.mark.parametrize(
    ("values", "weights", "q", "expected"),
    [
        ([1, 2, 3, 4], [1, 1, 1, 1], 0.5, 2),
        ([1, 2, 3, 4], [1, 1, 1, 1], 0.95, 4),
        ([5], [3], 0.5, 5),
        ([1, 10], [9, 1], 0.9, 1),
        ([1, 10], [9, 1], 0.95, 10),
        ([], [], 0.5, None),
    ],
)
def test_reference_quantile_matches_clickhouse_definition(
    values: list[float], weights: list[int], q: float, expected: float | None
) -> None:
    assert weighted_quantile(values, weights, q) == expected


def test_cached_and_fresh_points_merge_in_time_order_per_group() -> None:
    def points(*ts: int) -> list[Point]:
        return [Point(t, float(t), "batch", 1) for t in ts]

    cached = {("DE",): points(60, 120)}
    fresh = {("DE",): points(0, 180), ("FR",): points(60)}  # read before and after the cache
    series = merge_series(cached, fresh, ["country"])
    assert [s.group for s in series] == [{"country": "DE"}, {"country": "FR"}]
    assert [p.t_ms for p in series[0].points] == [0, 60, 120, 180]
    assert [p.t_ms for p in series[1].points] == [60]


def test_ranges_without_a_window_start_are_not_read() -> None:
    minute = 60_000
    ranges = [
        (10 * minute + 25_000, 11 * minute),  # the sliver before the first bucket
        (11 * minute, 12 * minute),
        (15 * minute - 1, 15 * minute + 1),
        (16 * minute + 1, 17 * minute),
    ]
    assert with_window_starts(ranges, minute) == [
        (11 * minute, 12 * minute),
        (15 * minute - 1, 15 * minute + 1),
    ]
    assert with_window_starts([(10 * minute + 25_000, 11 * minute)], 15_000) == [
        (10 * minute + 25_000, 11 * minute)
    ]  # hopping every 15 s: 10:30 starts one


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_value_past_float64_is_flagged_as_overflow_never_a_silent_null(value: float) -> None:
    rows = [(0, "DE", value, 1, 1, 2), (60_000, "DE", 5.0, 1, 1, 1), (120_000, "DE", None, 0, 0, 0)]
    points = assemble(rows, ["country"])[0].points
    assert [(p.value, p.overflow) for p in points] == [(None, True), (5.0, False), (None, False)]
