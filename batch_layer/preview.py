"""A draft metric computed by the batch code over a recent range of the archive, without
storing anything: the metric editor's preview.

The windows come from :func:`batch_layer.jobs.recompute.window_rows` (the batch layer's
own Polars expressions) over the archive files of the range's hours; they are rolled up
to the step the way serving merges stored state (counts and sums add, min/max combine,
quantiles over the union of weighted samples, distinct counts over the union of hashes).
Unlike a batch run it does not drop duplicate event ids: a preview, not a correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from batch_layer.dedup import Snapshot
from batch_layer.jobs.recompute import read_events, window_rows
from stratum.archive import HOUR_MS, archive_root, hour_of_file, list_files
from stratum.metric_frames import WINDOW_START
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition
from stratum.settings import Settings

BUCKET = "__bucket"


@dataclass(frozen=True)
class PreviewPoint:
    t_ms: int
    value: float | None
    count: int


def preview(
    settings: Settings, metric: MetricDefinition, start_ms: int, end_ms: int, step_ms: int
) -> list[PreviewPoint]:
    """One series (all groups together) of ``metric`` from ``start_ms`` to ``end_ms``."""
    first_hour = (start_ms - metric.window_ms) // HOUR_MS * HOUR_MS
    files = [
        (str(p), hour_of_file(p))
        for p in list_files(archive_root(settings.data_dir, metric.source))
    ]
    files = [(p, h) for p, h in files if first_hour <= h < end_ms]
    if not files:
        return []
    snapshot = Snapshot([p for p, _ in files], [h for _, h in files], frozenset())
    events = read_events(snapshot, {h for _, h in files}, MetricCatalog(metrics=(metric,)))
    rows = (
        window_rows(events.lazy(), metric, end_ms)
        .filter((pl.col(WINDOW_START) >= start_ms) & (pl.col(WINDOW_START) < end_ms))
        .with_columns((pl.col(WINDOW_START) // step_ms * step_ms).alias(BUCKET))
        .collect()
    )
    return [
        PreviewPoint(int(b), v, int(n))
        for b, v, n in roll_up(rows, metric).sort(BUCKET).iter_rows()
    ]


def roll_up(rows: pl.DataFrame, metric: MetricDefinition) -> pl.DataFrame:
    """``(bucket, value, count)`` per bucket from window state rows."""
    count = pl.col("count").sum().alias("n")
    match metric.aggregation:
        case Aggregation.COUNT:
            value = pl.col("count").sum().cast(pl.Float64)
        case Aggregation.SUM:
            value = pl.col("sum").sum()
        case Aggregation.MIN:
            value = pl.col("min").min()
        case Aggregation.MAX:
            value = pl.col("max").max()
        case Aggregation.AVG:
            value = pl.col("sum").sum() / pl.col("count").sum()
        case Aggregation.DISTINCT:
            value = pl.col("d_hashes").explode().n_unique().cast(pl.Float64)
        case Aggregation.QUANTILE:
            return _quantiles(rows, float(metric.quantile or 0.5))
    return rows.group_by(BUCKET).agg(value.cast(pl.Float64).alias("value"), count)


def _quantiles(rows: pl.DataFrame, q: float) -> pl.DataFrame:
    """Weighted quantile of each bucket's samples (the smallest value whose cumulative
    weight reaches q of the total, as ClickHouse's quantileExactWeighted)."""
    counts = rows.group_by(BUCKET).agg(pl.col("count").sum().alias("n"))
    samples = rows.select(BUCKET, "q_values", "q_weights").explode("q_values", "q_weights")
    samples = (
        samples.drop_nulls()
        .sort(BUCKET, "q_values")
        .with_columns(
            pl.col("q_weights").cum_sum().over(BUCKET).alias("cum"),
            pl.col("q_weights").sum().over(BUCKET).alias("total"),
        )
    )
    values = (
        samples.filter(pl.col("cum") >= pl.col("total") * q)
        .group_by(BUCKET)
        .agg(pl.col("q_values").first().alias("value"))
    )
    return values.join(counts, on=BUCKET).select(BUCKET, "value", "n")
