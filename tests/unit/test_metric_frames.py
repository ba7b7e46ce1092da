"""Table tests of the Polars expressions both layers read events with
(:mod:`stratum.metric_frames`): one row per case, the expression's answer beside it."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from stratum.metric_frames import (
    TS_MS,
    WINDOW_START,
    dimension_exprs,
    needed_fields,
    typed_fields,
    where_expr,
    window_starts_expr,
)
from stratum.metrics import MetricDefinition
from stratum.numbers import number_text

MINUTE = 60_000


def _metric(**fields: Any) -> MetricDefinition:
    return MetricDefinition.model_validate({"name": "m", "aggregation": "count", **fields})


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (
            pl.Series(["12.5", "12", "1e2", "-3", " 7", "twelve", "", None], dtype=pl.String),
            [12.5, 12.0, 100.0, -3.0, None, None, None, None],
        ),
        (pl.Series(["NaN", "inf", "-Infinity", "1e999"], dtype=pl.String), [None] * 4),
        (
            pl.Series([1.5, float("nan"), float("inf"), None], dtype=pl.Float64),
            [1.5, None, None, None],
        ),
        (pl.Series([3, -1], dtype=pl.Int64), [3.0, -1.0]),
    ],
)
def test_a_numeric_field_reads_finite_numbers_and_text_that_reads_as_one(
    column: pl.Series, expected: list[float | None]
) -> None:
    frame = pl.DataFrame({"amount": column})
    typed = frame.select(typed_fields(frame.schema, ["amount"], []))
    assert typed["amount"].dtype == pl.Float64
    assert typed["amount"].to_list() == expected


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (pl.Series(["DE", "01", "1.0", None], dtype=pl.String), ["DE", "01", "1.0", None]),
        (
            pl.Series([1.0, 2.5, 3e20, None], dtype=pl.Float64),
            ["1", "2.5", number_text(3e20), None],
        ),
        (pl.Series([7, -2], dtype=pl.Int64), ["7", "-2"]),
    ],
)
def test_a_string_field_is_text_and_a_number_its_canonical_text(
    column: pl.Series, expected: list[str | None]
) -> None:
    frame = pl.DataFrame({"tier": column})
    typed = frame.select(typed_fields(frame.schema, [], ["tier"]))
    assert typed["tier"].to_list() == expected


def test_a_field_no_event_has_is_null_of_its_type() -> None:
    frame = pl.DataFrame({"other": [1]})
    typed = frame.select(typed_fields(frame.schema, ["amount"], ["country"]))
    assert typed.schema == {"amount": pl.Float64, "country": pl.String}
    assert typed.row(0) == (None, None)


@pytest.mark.parametrize(
    ("where", "field", "rows", "expected"),
    [
        ({"type": "purchase"}, None, [{"type": "purchase"}, {"type": "view"}], [True, False]),
        (
            {"country": ["DE", "FR"]},
            None,
            [{"country": "DE"}, {"country": "FR"}, {"country": "US"}, {"country": None}],
            [True, True, False, False],
        ),
        (
            {"tier": "1.0"},
            None,
            [{"tier": "1"}, {"tier": "1.0"}, {"tier": "01"}],
            [True, True, False],
        ),
        ({"tier": 1}, None, [{"tier": "1"}, {"tier": "1.0"}], [True, False]),
        ({}, "amount", [{"amount": 3.0}, {"amount": None}], [True, False]),
        (
            {"type": "purchase"},
            "amount",
            [
                {"type": "purchase", "amount": 1.0},
                {"type": "purchase", "amount": None},
                {"type": "view", "amount": 1.0},
            ],
            [True, False, False],
        ),
    ],
)
def test_where_is_equality_or_membership_as_text_and_the_field_present(
    where: dict[str, Any], field: str | None, rows: list[dict[str, Any]], expected: list[bool]
) -> None:
    metric = _metric(where=where, **({"aggregation": "sum", "field": field} if field else {}))
    schema = {"type": pl.String, "country": pl.String, "tier": pl.String, "amount": pl.Float64}
    frame = pl.DataFrame([{**dict.fromkeys(schema), **row} for row in rows], schema=schema)
    assert frame.select(where_expr(metric).alias("w"))["w"].to_list() == expected


def test_dimensions_are_text_and_a_missing_one_is_empty() -> None:
    metric = _metric(dimensions=["country", "device"])
    frame = pl.DataFrame({"country": ["DE", None], "device": [None, "ios"]})
    got = frame.select(dimension_exprs(metric))
    assert got.rows() == [("DE", ""), ("", "ios")]
    assert got.columns == ["__d0", "__d1"]


@pytest.mark.parametrize(
    ("windows", "hop", "ts", "expected"),
    [
        (["1m"], None, 0, [0]),
        (["1m"], None, MINUTE - 1, [0]),
        (["1m"], None, MINUTE, [MINUTE]),
        (["1m", "5m"], None, 7 * MINUTE + 5, [7 * MINUTE]),  # the finest window is stored
        (["3m"], "1m", 5 * MINUTE + 5, [5 * MINUTE, 4 * MINUTE, 3 * MINUTE]),
        (["2m"], "1m", 0, [0, -MINUTE]),
    ],
)
def test_window_starts_are_every_window_holding_the_event_time(
    windows: list[str], hop: str | None, ts: int, expected: list[int]
) -> None:
    metric = _metric(windows=windows, hop=hop)
    frame = pl.DataFrame({TS_MS: [ts]}, schema={TS_MS: pl.Int64})
    assert frame.select(window_starts_expr(metric))[WINDOW_START].to_list() == [expected]


def test_needed_fields_split_measures_from_text() -> None:
    metrics = [
        _metric(name="a", aggregation="sum", field="amount", dimensions=["country"]),
        _metric(name="b", aggregation="distinct", field="user_id", where={"tier": "1"}),
        _metric(name="c", dimensions=["type"]),
    ]
    assert needed_fields(metrics) == (["amount"], ["country", "tier", "user_id"])
