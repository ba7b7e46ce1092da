"""Writes of the batch tables, in the order that keeps a failed run invisible.

``batch_windows`` rows carry the run's version; nothing serves them until
``batch_coverage`` points an hour at that version. So a run writes every window row
first, then coverage, then drops the rows no coverage refers to any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from stratum.aggregations import STATE_COLUMNS
from stratum.groups import group_key
from stratum.metric_frames import WINDOW_START, dim_columns
from stratum.metrics import MetricDefinition
from stratum.storage import Storage

INSERT_BATCH_ROWS = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

WINDOW_SCHEMA = pa.schema(
    [
        ("metric", pa.string()),
        ("window_ms", pa.uint32()),
        ("window_start", pa.timestamp("ms", tz="UTC")),
        ("dims", pa.map_(pa.string(), pa.string())),
        ("group_key", pa.string()),
        ("count", pa.uint64()),
        ("sum", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("q_values", pa.list_(pa.float64())),
        ("q_weights", pa.list_(pa.uint64())),
        ("d_hashes", pa.list_(pa.uint64())),
        ("d_theta", pa.uint64()),
        ("first_ms", pa.int64()),
        ("last_ms", pa.int64()),
        ("version", pa.uint64()),
    ]
)
"""``batch_windows`` as Arrow, column for column (see stratum.storage.schema)."""


def utc_datetime(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=epoch_ms)


def next_version(storage: Storage) -> int:
    """Newer than every version already written, even if the clock went backwards."""
    db = storage.database
    found = storage.query(
        f"SELECT greatest((SELECT max(version) FROM {db}.batch_windows), "
        f"(SELECT max(version) FROM {db}.batch_coverage))"
    )
    return max(time.time_ns() // 1_000_000, int(found[0][0] or 0) + 1)


def to_arrow(rows: pl.DataFrame, metric: MetricDefinition, version: int) -> pa.Table:
    """``batch_windows`` rows: the canonical ``group_key`` (the speed layer's own function,
    run once per distinct group) and ``dims`` as a ClickHouse Map."""
    dims = dim_columns(metric)
    if dims:
        groups = rows.select(dims).unique()
        keys = [group_key(metric.dimensions, values) for values in groups.iter_rows()]
        rows = rows.join(
            groups.with_columns(pl.Series("group_key", keys, dtype=pl.String)), on=dims, how="left"
        )
    else:
        rows = rows.with_columns(group_key=pl.lit(""))
    table = rows.select(
        pl.lit(metric.name).alias("metric"),
        pl.lit(metric.window_ms).alias("window_ms"),
        pl.col(WINDOW_START).cast(pl.Datetime("ms", "UTC")).alias("window_start"),
        "group_key",
        *STATE_COLUMNS,
        pl.lit(version).alias("version"),
    ).to_arrow()
    return table.add_column(3, "dims", _dims_map(rows, metric)).cast(WINDOW_SCHEMA)


def _dims_map(rows: pl.DataFrame, metric: MetricDefinition) -> pa.MapArray:
    width = len(metric.dimensions)
    offsets = pa.array(np.arange(rows.height + 1, dtype=np.int32) * width)
    names = pa.array(list(metric.dimensions) * rows.height, pa.string())
    if width:
        flat = rows.select(pl.concat_list(dim_columns(metric)).alias("v")).explode("v")
        values = flat["v"].to_arrow().cast(pa.string())
    else:
        values = pa.array([], pa.string())
    return pa.MapArray.from_arrays(offsets, names, values)


def write_windows(storage: Storage, table: pa.Table) -> int:
    """Insert window rows (already cast to :data:`WINDOW_SCHEMA`) in 100 K-row batches."""
    for start in range(0, table.num_rows, INSERT_BATCH_ROWS):
        storage.insert_arrow("batch_windows", table.slice(start, INSERT_BATCH_ROWS))
    return int(table.num_rows)


def covered_versions(storage: Storage) -> set[int]:
    rows = storage.query(f"SELECT DISTINCT version FROM {storage.database}.batch_coverage FINAL")
    return {int(row[0]) for row in rows}


def coverage_horizons(
    storage: Storage, floors: Mapping[str, int] | None = None
) -> dict[tuple[str, int], int]:
    """(metric, hour ms) -> the horizon (ms) its covering version is final to. Coverage
    by a version below the metric's floor was computed with an earlier definition of it
    (:mod:`stratum.storage.definitions`): left out, so the run recomputes those hours."""
    rows = storage.query(
        f"SELECT metric, toUnixTimestamp(hour_start) * 1000, "
        f"toUnixTimestamp64Milli(horizon), version "
        f"FROM {storage.database}.batch_coverage FINAL"
    )
    floors = floors or {}
    return {(str(m), int(h)): int(z) for m, h, z, v in rows if int(v) >= floors.get(str(m), 0)}


def processed_files(storage: Storage) -> set[str]:
    rows = storage.query(f"SELECT path FROM {storage.database}.archive_files")
    return {str(row[0]) for row in rows}


def record_files(storage: Storage, paths: Iterable[str], version: int) -> None:
    """Remember which archive files a finished run read (after its coverage is in)."""
    rows = [[path, version] for path in paths]
    for start in range(0, len(rows), INSERT_BATCH_ROWS):
        storage.insert(
            "archive_files", rows[start : start + INSERT_BATCH_ROWS], ("path", "version")
        )


def write_coverage(
    storage: Storage, hours: Mapping[str, set[int]], version: int, horizon_ms: int
) -> int:
    """Point each metric's recomputed hours that start before the horizon at
    ``version``, final up to ``horizon_ms``."""
    horizon = utc_datetime(horizon_ms)
    rows = [
        [metric, utc_datetime(h), version, horizon]
        for metric, chosen in hours.items()
        for h in sorted(chosen)
        if h < horizon_ms
    ]
    storage.insert("batch_coverage", rows, ("metric", "hour_start", "version", "horizon"))
    now = datetime.now(tz=UTC)  # the log says since when each version was served
    storage.insert(
        "batch_coverage_log",
        [[*row, now] for row in rows],
        ("metric", "hour_start", "version", "horizon", "recorded_at"),
    )
    return len(rows)


def versions_for_as_of(storage: Storage, keep_s: float) -> set[int]:
    """Versions served at some moment of the last ``keep_s`` seconds (superseded since
    then, or still current): as-of reads that far back need their window rows."""
    if keep_s <= 0:  # the versions coverage points at are kept anyway
        return set()
    cutoff = time.time() - keep_s
    rows = storage.query(  # one row per metric and hour a run wrote: a small table
        f"SELECT metric, hour_start, version, toUnixTimestamp64Milli(recorded_at) "
        f"FROM {storage.database}.batch_coverage_log ORDER BY metric, hour_start, recorded_at"
    )
    keep: set[int] = set()
    for i, (metric, hour, version, _) in enumerate(rows):
        later = rows[i + 1] if i + 1 < len(rows) else None
        if (
            later is None
            or (later[0], later[1]) != (metric, hour)
            or int(later[3]) >= cutoff * 1000
        ):
            keep.add(int(version))
    return keep


def prune_versions(storage: Storage, keep: set[int]) -> None:
    """Drop window rows of versions no coverage refers to (superseded, or left by a
    killed run). Callers keep the versions covered before the run too, for readers that
    looked at coverage a moment ago. The delete is a mutation (asynchronous on a server)."""
    if not keep:
        return
    present = {
        int(v)
        for (v,) in storage.query(f"SELECT DISTINCT version FROM {storage.database}.batch_windows")
    }
    if present <= keep:
        # Nothing to delete. chDB runs a mutation in the foreground and it touches every
        # part, so issuing it anyway cost an incremental run over 1.5 s on 10 M events.
        return
    listed = ", ".join(str(int(v)) for v in sorted(keep))
    storage.command(
        f"ALTER TABLE {storage.database}.batch_windows DELETE WHERE version NOT IN ({listed})"
    )
