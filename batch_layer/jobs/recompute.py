"""The batch recompute: archive Parquet in, exact window state out, as a new version.

Driven only by the metric definitions (no metric-specific code). One run:

1. snapshots the archive's file list, plans the hours it writes and reads
   (:mod:`batch_layer.planning`: hopping windows reach across hours) and reads the
   fields the catalog needs;
2. deduplicates by ``event_id`` across the whole archive, not just the hours it reads:
   the first copy in log order counts (:mod:`batch_layer.dedup`);
3. sets the horizon: newest event time (capped at the wall clock, so an event stamped in
   the future cannot make batch authoritative for windows that have not happened yet)
   minus the allowed lateness, floored to the minute;
4. per metric, filters (``where``, field present), assigns its windows and writes one
   row per (window, group) starting in the hours it writes for that metric and ending
   at or before the horizon to ``batch_windows``, in the state shape the speed layer writes
   (:meth:`stratum.aggregation.WindowState.to_columns`), with an exact quantile sample;
5. only then writes ``batch_coverage`` (metric, hour) -> version, so a run killed before
   this point changes nothing that is served, and drops rows of versions nothing refers to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from batch_layer import dedup, writer
from batch_layer.dedup import FILE, Snapshot
from batch_layer.planning import (
    RecomputeMode,
    hour_of_file,
    lagging_sources,
    plan_hours,
)
from stratum.aggregation import MAX_HASH
from stratum.archive import HOUR_MS, archive_root, list_files, scan_fields
from stratum.metric_frames import (
    TS_MS,
    VALUE,
    WINDOW_START,
    dim_columns,
    dimension_exprs,
    needed_fields,
    where_expr,
    window_starts_expr,
)
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition
from stratum.settings import Settings
from stratum.storage import Storage, epochs, generations
from stratum.value_hashes import ValueHashCache

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
RUNS = "__runs"  # an internal name, like those of stratum.metric_frames
_VALUE_HASHES = ValueHashCache()  # one batch job runs at a time; users recur across runs


@dataclass(frozen=True, slots=True)
class RecomputeProgress:
    """Where a run is: ``phase`` is read, metric, windows_written or coverage_written."""

    phase: str
    units_done: int
    units_total: int
    rows_in: int
    rows_out: int
    metric: str | None = None


ProgressCallback = Callable[[RecomputeProgress], None]


@dataclass(frozen=True, slots=True)
class RecomputeResult:
    version: int | None  # None: the archive was empty and nothing was written
    horizon: datetime | None
    rows_in: int
    rows_out: int
    files: int
    duration_s: float


def read_events(snapshot: Snapshot, hours: set[int], catalog: MetricCatalog) -> pl.DataFrame:
    """The events of the snapshot's files in ``hours``, not deduplicated, with the event
    time as epoch milliseconds in ``TS_MS`` and each file's number in FILE."""
    numbers = [i for i, hour in enumerate(snapshot.hours) if hour in hours]
    paths = [Path(snapshot.paths[i]) for i in numbers]
    numeric, strings = needed_fields(catalog)
    events = scan_fields(paths, numeric, strings).with_columns(
        pl.col("ts").dt.epoch("ms").alias(TS_MS)).collect()
    # The file numbers from the files' row counts: a literal column per file made the
    # scan 15x slower (0.23 s -> 4 s for 1 M rows in 576 files).
    heights = [pq.read_metadata(path).num_rows for path in paths]
    files = np.repeat(np.array(numbers, dtype=np.uint32), heights)
    return events.with_columns(pl.Series(FILE, files, dtype=pl.UInt32))


def window_rows(events: pl.LazyFrame, metric: MetricDefinition, horizon_ms: int,
                hours: set[int] | None = None) -> pl.LazyFrame:
    """One row per (window, group) ending at or before ``horizon_ms`` (and starting in
    one of ``hours``, if given): keys, then state. A missing dimension is "" exactly like
    ``MetricDefinition.group_of``."""
    size = metric.window_ms
    dims = dim_columns(metric)
    keys = [WINDOW_START, *dims]
    session = metric.session_gap is not None
    selected = events.filter(where_expr(metric)).select(
        window_starts_expr(metric),
        *dimension_exprs(metric),
        *([pl.col(metric.field).alias(VALUE)] if metric.field else []),
        *([TS_MS] if session else []),
    ).explode(WINDOW_START).filter(pl.col(WINDOW_START) + size <= horizon_ms)
    if hours is not None:
        selected = selected.filter(
            (pl.col(WINDOW_START) // HOUR_MS * HOUR_MS).is_in(sorted(hours)))
    # Event times of each window's first and last event: sessions are chained from them.
    times = [pl.col(TS_MS).min().alias("first_ms"), pl.col(TS_MS).max().alias("last_ms")] \
        if session else []
    defaults = {"q_values": pl.lit([], dtype=pl.List(pl.Float64)),
                "q_weights": pl.lit([], dtype=pl.List(pl.UInt64)),
                "d_hashes": pl.lit([], dtype=pl.List(pl.UInt64)),
                "d_theta": pl.lit(MAX_HASH, dtype=pl.UInt64),
                **({} if session else {"first_ms": pl.lit(0, dtype=pl.Int64),
                                       "last_ms": pl.lit(0, dtype=pl.Int64)})}

    def rest(*computed: str) -> dict[str, pl.Expr]:
        return {k: v for k, v in defaults.items() if k not in computed}

    if metric.field is None:
        counted = selected.group_by(keys).agg(pl.len().alias("count"), *times)
        return counted.with_columns(sum=pl.lit(0.0), min=pl.lit(0.0), max=pl.lit(0.0),
                                    **rest())
    if metric.aggregation == Aggregation.DISTINCT:
        # Every distinct value's hash (exact), hashed as the speed layer hashes it.
        hashed = selected.with_columns(pl.col(VALUE).map_batches(
            _hash_values, return_dtype=pl.UInt64).alias(VALUE))
        return hashed.group_by(keys).agg(
            pl.len().alias("count"), pl.col(VALUE).unique().sort().alias("d_hashes"), *times,
        ).with_columns(sum=pl.lit(0.0), min=pl.lit(0.0), max=pl.lit(0.0), **rest("d_hashes"))
    if metric.aggregation == Aggregation.QUANTILE:
        # The exact sample: each distinct value once, in order, weighted by how often it
        # occurs: the run-length encoding of the window's sorted values (one group-by;
        # half the time of grouping by value first).
        runs = selected.group_by(keys).agg(
            pl.len().alias("count"), pl.col(VALUE).sum().alias("sum"),
            pl.col(VALUE).min().alias("min"), pl.col(VALUE).max().alias("max"),
            pl.col(VALUE).sort().rle().alias(RUNS), *times)
        return runs.with_columns(
            q_values=pl.col(RUNS).list.eval(pl.element().struct.field("value")),
            q_weights=pl.col(RUNS).list.eval(pl.element().struct.field("len").cast(pl.UInt64)),
            **rest("q_values", "q_weights"),
        ).drop(RUNS)
    return selected.group_by(keys).agg(
        pl.len().alias("count"), pl.col(VALUE).sum().alias("sum"),
        pl.col(VALUE).min().alias("min"), pl.col(VALUE).max().alias("max"), *times,
    ).with_columns(**rest())


def insert_order(metrics: Sequence[MetricDefinition]) -> list[MetricDefinition]:
    """Metrics with exact samples (quantile values, distinct hashes) first: their inserts
    are the longest, and only the last metric's insert is not hidden behind the next
    metric's computation."""
    heavy = (Aggregation.QUANTILE, Aggregation.DISTINCT)
    return sorted(metrics, key=lambda m: m.aggregation not in heavy)


def _archived_until(settings: Settings, storage: Storage, file_hours: dict[str, int]) -> int:
    """How far the archive is complete: a log partition whose archive is behind what the
    speed layer consumed caps the horizon at the newest event it has archived, so batch
    never publishes a window while part of it is still on its way to the archive. A
    retired epoch's partitions do not: nothing of theirs is on its way any more."""
    live = generations.live_generation(storage)
    db = storage.database
    consumed = {str(s): int(o) for s, o in storage.query(
        f"SELECT source_id, through_offset FROM {db}.speed_checkpoints FINAL "
        f"WHERE generation = {{g:UInt32}} AND {epochs.live_sources_sql(db)}", {"g": live})}
    cap = 2**62
    for source, paths in lagging_sources([Path(p) for p in file_hours], consumed).items():
        if not paths:
            return -(2**62)  # consumed, nothing archived yet: no new horizon
        # Files differ in their columns: read each one's ts alone.
        newest = max(int(pl.read_parquet(path, columns=["ts"])["ts"].dt.epoch("ms").max() or 0)
                     for path in paths)
        cap = min(cap, newest)
        log.info("archive of %s is behind the speed layer: horizon capped", source)
    return cap


def _hash_values(values: pl.Series) -> pl.Series:
    """``value_hash`` of each value, through the batch layer's cache of recurring values."""
    return _VALUE_HASHES.hashes(values)


class _Progress:
    """Counts units (read, one per metric, coverage) and forwards them to the callback."""

    def __init__(self, callback: ProgressCallback | None, units_total: int) -> None:
        self.callback = callback
        self.units_total = units_total
        self.units_done = self.rows_in = self.rows_out = 0

    def report(self, phase: str, metric: str | None = None, units: int = 1) -> None:
        self.units_done += units
        if self.callback is not None:
            self.callback(RecomputeProgress(phase, self.units_done, self.units_total,
                                            self.rows_in, self.rows_out, metric))


def recompute(settings: Settings, catalog: MetricCatalog, storage: Storage,
              progress: ProgressCallback | None = None, *,
              mode: RecomputeMode = RecomputeMode.INCREMENTAL,
              start_ms: int | None = None, end_ms: int | None = None,
              floors: Mapping[str, int] | None = None) -> RecomputeResult:
    """Run one batch recompute over the archive as it is now (see the module docstring):
    the dirty hours (incremental), or every hour (full), optionally within a time range.
    An exception from ``progress`` aborts the run; before coverage, it leaves no trace
    that is served."""
    started = time.perf_counter()
    file_hours = {str(p): hour_of_file(p) for p in list_files(archive_root(settings.data_dir))}
    coverage = writer.coverage_horizons(storage, floors)
    processed = writer.processed_files(storage)
    plan = plan_hours(file_hours, processed, coverage, catalog.metrics, mode, start_ms, end_ms)
    # The run counts what earlier runs did and the new files of the hours it recomputes.
    paths = sorted(p for p, hour in file_hours.items() if p in processed or hour in plan.changed)
    snapshot = Snapshot(paths, [file_hours[p] for p in paths], frozenset(processed))
    tracker = _Progress(progress, len(catalog.metrics) + 2)
    # The version lookup scans batch_windows in ClickHouse, and the dedup tables are
    # read, while Polars reads the files; the id index is written beside the metrics'
    # computation.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-index") as index:
        next_version = index.submit(writer.next_version, storage)
        known = index.submit(dedup.prefetch, storage, snapshot, plan.read(catalog.metrics))
        raw = read_events(snapshot, plan.read(catalog.metrics), catalog)
        version = next_version.result()
        events, plan, indexing = dedup.resolve(
            storage, catalog.metrics, snapshot, plan, raw, version, index, known.result(),
            lambda hours: read_events(snapshot, hours, catalog))
        del raw
        written = {metric.name: plan.written(metric) for metric in catalog.metrics}
        read = plan.read(catalog.metrics)
        files = [Path(p) for p, hour in zip(snapshot.paths, snapshot.hours, strict=True)
                 if hour in read]
        result = _compute_and_write(settings, catalog, storage, tracker, events, written,
                                    version, coverage, file_hours)
        indexing.result()
    if result is None:
        return RecomputeResult(None, None, 0, 0, len(files), time.perf_counter() - started)
    horizon_ms = result
    covered_before = writer.covered_versions(storage)
    writer.write_coverage(storage, written, version, horizon_ms)
    writer.record_files(storage, (str(p) for p in files), version)
    writer.prune_versions(storage, covered_before | writer.covered_versions(storage)
                          | writer.versions_for_as_of(storage, settings.batch.keep_versions_s))
    tracker.report("coverage_written")
    log.info("recomputed %d hour(s) from %d file(s) (%s)",
             len(set().union(*written.values())), len(files), mode.value)
    return RecomputeResult(version, writer.utc_datetime(horizon_ms), tracker.rows_in,
                           tracker.rows_out, len(files), time.perf_counter() - started)


def _compute_and_write(settings: Settings, catalog: MetricCatalog, storage: Storage,
                       tracker: _Progress, events: pl.DataFrame,
                       written: dict[str, set[int]], version: int,
                       coverage: dict[tuple[str, int], int], file_hours: dict[str, int]
                       ) -> int | None:
    """Window rows of every metric's written hours into ``batch_windows``; the horizon
    (None: nothing to write at all)."""
    tracker.rows_in = events.height
    previous_ms = max(coverage.values(), default=None)
    if events.is_empty() and previous_ms is None:
        tracker.report("coverage_written", units=tracker.units_total)
        return None

    lateness_ms = settings.speed.allowed_lateness_ms
    horizon_ms = previous_ms or 0
    if not events.is_empty():
        newest_ms = min(int(events.select(pl.col(TS_MS).max()).item()),
                        int(time.time() * 1000))
        newest_ms = min(newest_ms, _archived_until(settings, storage, file_hours))
        horizon_ms = max(horizon_ms, (newest_ms - lateness_ms) // MINUTE_MS * MINUTE_MS)
    tracker.report("read")
    # One metric's rows are inserted while the next metric's are computed: the insert is
    # mostly ClickHouse's single-threaded work outside the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-insert") as inserts:
        writing: tuple[MetricDefinition, Future[int]] | None = None

        def finish(metric: MetricDefinition, insert: Future[int]) -> None:
            written_rows = insert.result()
            tracker.rows_out += written_rows
            log.debug("metric %s: %d window rows (version %d)", metric.name, written_rows,
                      version)
            tracker.report("metric", metric.name)

        for metric in insert_order(catalog.metrics):
            rows = window_rows(events.lazy(), metric, horizon_ms, written[metric.name])
            table = writer.to_arrow(rows.collect(), metric, version)
            if writing is not None:
                finish(*writing)
            writing = (metric, inserts.submit(writer.write_windows, storage, table))
        if writing is not None:
            finish(*writing)
    tracker.report("windows_written", units=0)
    return horizon_ms
