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
   (:data:`stratum.aggregations.STATE_COLUMNS`), with exact samples (:mod:`stratum.aggregations`);
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
from stratum.aggregations import VALUE, Sample
from stratum.archive import HOUR_MS, archive_root, list_files, scan_fields
from stratum.metric_frames import (
    TS_MS,
    WINDOW_START,
    dim_columns,
    dimension_exprs,
    needed_fields,
    where_expr,
    window_starts_expr,
)
from stratum.metrics import MetricCatalog, MetricDefinition
from stratum.settings import Settings
from stratum.sources import BUILTIN, source_of_id
from stratum.storage import Storage, epochs, generations
from stratum.value_hashes import ValueHashCache

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
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
    events = (
        scan_fields(paths, numeric, strings)
        .with_columns(pl.col("ts").dt.epoch("ms").alias(TS_MS))
        .collect()
    )
    # The file numbers from the files' row counts: a literal column per file made the
    # scan 15x slower (0.23 s -> 4 s for 1 M rows in 576 files).
    heights = [pq.read_metadata(path).num_rows for path in paths]
    files = np.repeat(np.array(numbers, dtype=np.uint32), heights)
    return events.with_columns(pl.Series(FILE, files, dtype=pl.UInt32))


def window_rows(
    events: pl.LazyFrame, metric: MetricDefinition, horizon_ms: int, hours: set[int] | None = None
) -> pl.LazyFrame:
    """One row per (window, group) ending at or before ``horizon_ms`` (and starting in
    one of ``hours``, if given): keys, then the state columns the metric's kind computes
    (:mod:`stratum.aggregations`), the others at their defaults. A missing dimension is
    "", as in the speed layer."""
    size = metric.window_ms
    dims = dim_columns(metric)
    keys = [WINDOW_START, *dims]
    session = metric.session_gap is not None
    selected = (
        events.filter(where_expr(metric))
        .select(
            window_starts_expr(metric),
            *dimension_exprs(metric),
            *([pl.col(metric.field).alias(VALUE)] if metric.field else []),
            *([TS_MS] if session else []),
        )
        .explode(WINDOW_START)
        .filter(pl.col(WINDOW_START) + size <= horizon_ms)
    )
    if hours is not None:
        selected = selected.filter((pl.col(WINDOW_START) // HOUR_MS * HOUR_MS).is_in(sorted(hours)))
    # Event times of each window's first and last event: sessions are chained from them.
    times = (
        [pl.col(TS_MS).min().alias("first_ms"), pl.col(TS_MS).max().alias("last_ms")]
        if session
        else []
    )
    if metric.kind.sample == Sample.HASHES:
        # Every distinct value's hash (exact), hashed as the speed layer hashes it.
        selected = selected.with_columns(
            pl.col(VALUE).map_batches(_hash_values, return_dtype=pl.UInt64).alias(VALUE)
        )
    return metric.kind.batch_state(selected, keys, times)


def insert_order(metrics: Sequence[MetricDefinition]) -> list[MetricDefinition]:
    """Metrics with exact samples (quantile values, distinct hashes) first: their inserts
    are the longest, and only the last metric's insert is not hidden behind the next
    metric's computation."""
    return sorted(metrics, key=lambda m: m.kind.sample == Sample.NONE)


def _archived_until(
    settings: Settings, storage: Storage, file_hours: dict[str, int], source: str = BUILTIN
) -> int:
    """How far the archive is complete: a log partition whose archive is behind what the
    speed layer consumed caps the horizon at the newest event it has archived, so batch
    never publishes a window while part of it is still on its way to the archive. A
    retired epoch's partitions do not: nothing of theirs is on its way any more."""
    live = generations.live_generation(storage)
    db = storage.database
    consumed = {
        str(s): int(o)
        for s, o in storage.query(
            f"SELECT source_id, through_offset FROM {db}.speed_checkpoints FINAL "
            f"WHERE generation = {{g:UInt32}} AND {epochs.live_sources_sql(db)}",
            {"g": live},
        )
        if source_of_id(str(s)) == source
    }
    cap = 2**62
    for source, paths in lagging_sources([Path(p) for p in file_hours], consumed).items():
        if not paths:
            return -(2**62)  # consumed, nothing archived yet: no new horizon
        # Files differ in their columns: read each one's ts alone.
        newest = max(
            int(
                pl.read_parquet(path, columns=["ts"])
                .select(pl.col("ts").dt.epoch("ms").max())
                .item()
                or 0
            )
            for path in paths
        )
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
            self.callback(
                RecomputeProgress(
                    phase, self.units_done, self.units_total, self.rows_in, self.rows_out, metric
                )
            )


def recompute(
    settings: Settings,
    catalog: MetricCatalog,
    storage: Storage,
    progress: ProgressCallback | None = None,
    *,
    mode: RecomputeMode = RecomputeMode.INCREMENTAL,
    start_ms: int | None = None,
    end_ms: int | None = None,
    floors: Mapping[str, int] | None = None,
) -> RecomputeResult:
    """Run one batch recompute over the archive as it is now (see the module docstring):
    the dirty hours (incremental), or every hour (full), optionally within a time range.
    Each source's metrics are computed from that source's archive alone, one source
    after the other (each with its own version and horizon). An exception from
    ``progress`` aborts the run; before coverage, it leaves no trace that is served."""
    started = time.perf_counter()
    results = []
    for source in catalog.source_names:
        part = catalog.for_source(source)
        if part.metrics:
            results.append(
                _recompute_source(
                    settings, part, storage, progress, mode, start_ms, end_ms, source, floors
                )
            )
    versions = [r.version for r in results if r.version is not None]
    horizons = [r.horizon for r in results if r.horizon is not None]
    return RecomputeResult(
        max(versions) if versions else None,
        min(horizons) if horizons else None,
        sum(r.rows_in for r in results),
        sum(r.rows_out for r in results),
        sum(r.files for r in results),
        time.perf_counter() - started,
    )


def _recompute_source(
    settings: Settings,
    catalog: MetricCatalog,
    storage: Storage,
    progress: ProgressCallback | None,
    mode: RecomputeMode,
    start_ms: int | None,
    end_ms: int | None,
    source: str,
    floors: Mapping[str, int] | None,
) -> RecomputeResult:
    """:func:`recompute` of one source's metrics over its archive directory."""
    started = time.perf_counter()
    file_hours = {
        str(p): hour_of_file(p) for p in list_files(archive_root(settings.data_dir, source))
    }
    names = set(catalog.names)  # another source's horizon is not this one's
    coverage = {
        key: horizon
        for key, horizon in writer.coverage_horizons(storage, floors).items()
        if key[0] in names
    }
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
            storage,
            catalog.metrics,
            snapshot,
            plan,
            raw,
            version,
            index,
            known.result(),
            lambda hours: read_events(snapshot, hours, catalog),
        )
        del raw
        written = {metric.name: plan.written(metric) for metric in catalog.metrics}
        read = plan.read(catalog.metrics)
        files = [
            Path(p) for p, hour in zip(snapshot.paths, snapshot.hours, strict=True) if hour in read
        ]
        result = _compute_and_write(
            settings,
            catalog,
            storage,
            tracker,
            events,
            written,
            version,
            coverage,
            file_hours,
            source,
        )
        indexing.result()
    if result is None:
        return RecomputeResult(None, None, 0, 0, len(files), time.perf_counter() - started)
    horizon_ms = result
    covered_before = writer.covered_versions(storage)
    writer.write_coverage(storage, written, version, horizon_ms)
    writer.record_files(storage, (str(p) for p in files), version)
    writer.prune_versions(
        storage,
        covered_before
        | writer.covered_versions(storage)
        | writer.versions_for_as_of(storage, settings.batch.keep_versions_s),
    )
    tracker.report("coverage_written")
    log.info(
        "recomputed %d hour(s) from %d file(s) (%s)",
        len(set().union(*written.values())),
        len(files),
        mode.value,
    )
    return RecomputeResult(
        version,
        writer.utc_datetime(horizon_ms),
        tracker.rows_in,
        tracker.rows_out,
        len(files),
        time.perf_counter() - started,
    )


def _compute_and_write(
    settings: Settings,
    catalog: MetricCatalog,
    storage: Storage,
    tracker: _Progress,
    events: pl.DataFrame,
    written: dict[str, set[int]],
    version: int,
    coverage: dict[tuple[str, int], int],
    file_hours: dict[str, int],
    source: str = BUILTIN,
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
        newest_ms = min(int(events.select(pl.col(TS_MS).max()).item()), int(time.time() * 1000))
        newest_ms = min(newest_ms, _archived_until(settings, storage, file_hours, source))
        horizon_ms = max(horizon_ms, (newest_ms - lateness_ms) // MINUTE_MS * MINUTE_MS)
    tracker.report("read")
    # One metric's rows are inserted while the next metric's are computed: the insert is
    # mostly ClickHouse's single-threaded work outside the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-insert") as inserts:
        writing: tuple[MetricDefinition, Future[int]] | None = None

        def finish(metric: MetricDefinition, insert: Future[int]) -> None:
            written_rows = insert.result()
            tracker.rows_out += written_rows
            log.debug("metric %s: %d window rows (version %d)", metric.name, written_rows, version)
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
