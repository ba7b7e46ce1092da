"""Metric definitions as Polars expressions, shared by the speed and the batch layer.

Both layers select the same fields with the same types (:func:`typed_fields`: numeric
fields as Float64, read leniently, dimensions and filters as strings), filter with
:func:`where_expr`, group by :func:`dimension_exprs` and assign windows with
:func:`window_starts_expr`, so a definition means one thing in both.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from stratum.aggregations import VALUE, FieldUse
from stratum.metrics import MetricCatalog, MetricDefinition
from stratum.numbers import filter_texts, number_text_expr

BASE_COLUMNS = ("event_id", "ts", "type", "offset")
# Internal column names cannot clash with event fields (an event may have a "count").
TS_MS, WINDOW_START = "__ts_ms", "__window_start"
__all__ = [
    "BASE_COLUMNS",
    "TS_MS",
    "VALUE",
    "WINDOW_START",
    "dim_columns",
    "dimension_exprs",
    "needed_fields",
    "typed_fields",
    "where_expr",
    "window_starts_expr",
]


def needed_fields(catalog: MetricCatalog | list[MetricDefinition]) -> tuple[list[str], list[str]]:
    """(numeric, string) event fields the metrics read; ``type`` is a base column."""
    metrics = catalog.metrics if isinstance(catalog, MetricCatalog) else catalog
    numeric = sorted({m.field for m in metrics if m.field and m.kind.field == FieldUse.NUMBER})
    strings = {name for m in metrics for name in (*m.dimensions, *m.where)}
    strings |= {m.field for m in metrics if m.field and m.kind.field == FieldUse.VALUE}
    return numeric, sorted(strings - set(BASE_COLUMNS) - set(numeric))


def typed_fields(
    present: Mapping[str, pl.DataType], numeric: list[str], strings: list[str]
) -> list[pl.Expr]:
    """The named fields typed as asked; a field not ``present`` is null. A number that
    arrived as text ("12") counts as a number, text that is not one is null, and so is
    one that is not finite (ingest rejects "NaN"; archives written before it did may
    hold it). A string field stored as numbers (a file whose batch held only numbers
    there) reads as their canonical text (:func:`stratum.numbers.number_text`), so ``1``,
    ``1.0`` and ``"1"`` are one dimension value whatever the file."""
    exprs: list[pl.Expr] = []
    for name in numeric:
        if name in present:
            number = pl.col(name).cast(pl.Float64, strict=False)
            exprs.append(pl.when(number.is_finite()).then(number).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=pl.Float64).alias(name))
    for name in strings:
        if name in BASE_COLUMNS:
            continue
        if name not in present:
            exprs.append(pl.lit(None, dtype=pl.String).alias(name))
        elif present[name].is_numeric():
            exprs.append(number_text_expr(pl.col(name)).alias(name))
        else:
            exprs.append(pl.col(name).cast(pl.String))
    return exprs


def where_expr(metric: MetricDefinition) -> pl.Expr:
    """Whether the metric counts an event: each ``where`` key equal to (or one of) its
    values, compared as text, and the field present (after :func:`typed_fields`, so a
    numeric field is present when it reads as a finite number). A filter value that
    reads as a number also matches that number's canonical text."""
    expr = pl.lit(value=True)
    for key, expected in metric.where.items():
        column = pl.col(key).cast(pl.String)
        texts = filter_texts(expected if isinstance(expected, list) else [expected])
        if len(texts) > 1:
            expr &= column.is_in(pl.Series(texts, dtype=pl.String))
        else:
            expr &= column == texts[0]
    if metric.field is not None:
        expr &= pl.col(metric.field).is_not_null()
    return expr.fill_null(value=False)


def dim_columns(metric: MetricDefinition) -> list[str]:
    return [f"__d{index}" for index in range(len(metric.dimensions))]


def dimension_exprs(metric: MetricDefinition) -> list[pl.Expr]:
    """The metric's dimensions as strings under :func:`dim_columns`; missing is ""."""
    return [
        pl.col(name).cast(pl.String).fill_null("").alias(alias)
        for name, alias in zip(metric.dimensions, dim_columns(metric), strict=True)
    ]


def window_starts_expr(metric: MetricDefinition, ts: str = TS_MS) -> pl.Expr:
    """The start of every window an event belongs to, as a list (one entry unless windows
    hop): each start ``s`` with ``s <= ts < s + window``, ``s`` a multiple of the hop."""
    hop = metric.hop_ms
    base = pl.col(ts) - pl.col(ts) % hop
    return pl.concat_list([base - k * hop for k in range(metric.window_ms // hop)]).alias(
        WINDOW_START
    )
