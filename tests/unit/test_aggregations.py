"""The registry of aggregation kinds: every kind complete, and each layer reading it."""

from __future__ import annotations

import polars as pl
import pytest

from dashboard.api_models import MetricList
from serving.queries import value_sql
from serving.routes.metrics import info
from stratum.aggregations import KINDS, STATE_COLUMNS, VALUE, Aggregation, Sample, kind_of
from stratum.metrics import MetricDefinition


def test_every_aggregation_has_one_kind() -> None:
    assert set(KINDS) == set(Aggregation)
    assert all(kind_of(name.value) is KINDS[name] for name in Aggregation)


@pytest.mark.parametrize("kind", KINDS.values(), ids=lambda k: k.aggregation.value)
def test_a_kind_fills_stored_columns_its_batch_state_computes(kind) -> None:
    rows = pl.LazyFrame({"k": [1, 1, 2], VALUE: [3.0, 1.0, 3.0]})
    if kind.sample == Sample.HASHES:
        rows = rows.with_columns(pl.col(VALUE).cast(pl.UInt64))
    state = kind.batch_state(rows, ["k"], []).sort("k").collect()
    assert set(state.columns) == {"k", *STATE_COLUMNS}
    assert set(kind.stored_columns) <= set(STATE_COLUMNS)
    assert state["count"].to_list() == [2, 1]
    if kind.numeric:
        assert state.select("sum", "min", "max").rows() == [(4.0, 1.0, 3.0), (3.0, 3.0, 3.0)]
    if kind.sample == Sample.VALUES:
        assert state["q_values"].to_list() == [[1.0, 3.0], [3.0]]
        assert state["q_weights"].to_list() == [[1, 1], [1]]
    if kind.sample == Sample.HASHES:
        assert state["d_hashes"].to_list() == [[1, 3], [3]]


@pytest.mark.parametrize(
    ("aggregation", "sql"),
    [
        ("count", "toFloat64(sum(count))"),
        ("avg", "sum(sum) / nullIf(sum(count), 0)"),
        ("quantile", "quantileExactWeightedArray(0.9)(q_values, q_weights)"),
    ],
)
def test_serving_merges_with_the_kinds_sql(aggregation: str, sql: str) -> None:
    metric = MetricDefinition(
        name="m",
        aggregation=aggregation,
        field=None if aggregation == "count" else "x",
        quantile=0.9 if aggregation == "quantile" else None,
    )
    assert value_sql(metric) == sql


def test_the_listing_serves_the_kind_and_the_dashboard_reads_it() -> None:
    metrics = [
        MetricDefinition(name="c", aggregation="count"),
        MetricDefinition(name="u", aggregation="distinct", field="user"),
        MetricDefinition(name="p", aggregation="quantile", field="x", quantile=0.5),
    ]
    listing = {"metrics": [info(m).model_dump() for m in metrics]}
    count, users, p50 = MetricList.model_validate(listing).metrics
    assert (count.additive, count.counts_events, count.kind.whole) == (True, True, True)
    assert (users.additive, users.counts_events, users.kind.whole) == (False, False, True)
    assert (users.kind.accumulates, users.kind.approximate) == (True, True)
    assert (p50.additive, p50.kind.whole, p50.kind.accumulates) == (False, False, False)
