"""Batch: rows/s of Stratum's recompute over the archive, against computing the same
aggregations straight from the same Parquet files with Polars and with chDB ``file()``.

- full: ``recompute(mode=FULL)`` over 10 M archived events (1 M with ``--quick``), from
  reading the archive to coverage written in ClickHouse;
- incremental: a late file lands in one hour of that history, then
  ``recompute(mode=INCREMENTAL)``; the baselines compute that hour alone.

The baselines do what a user would write by hand for the catalog's metrics: drop
duplicate ``event_id``s, filter, group by minute and dimensions, and aggregate (count,
sum, exact p95, exact distinct count), without writing anything anywhere.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.archive_cache import Archive, ensure_archive, mirror
from benchmarks.common import (
    Figure,
    Instrumented,
    bench_parser,
    emit,
    median,
    median_pair,
    synthetic_events,
)
from stratum.archive import HOUR_MS, archive_root, list_files, write_partition_range
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition, load_catalog
from stratum.settings import Settings
from stratum.storage import Storage, open_storage

LATE_EVENTS = 5_000


def polars_job(files: Sequence[Path], catalog: MetricCatalog) -> int:
    """The direct Polars run; returns the rows it read."""
    scan = pl.scan_parquet(
        [str(f) for f in files], missing_columns="insert", extra_columns="ignore"
    )
    events = scan.unique(subset=["event_id"], keep="any").with_columns(
        (pl.col("ts").dt.epoch("ms") // 60_000 * 60_000).alias("minute")
    )
    frames = [events.select(pl.len())]
    for metric in catalog.metrics:
        selected = events
        for key, expected in metric.where.items():
            values = expected if isinstance(expected, list) else [expected]
            selected = selected.filter(pl.col(key).is_in(values))
        keys = ["minute", *metric.dimensions]
        frames.append(selected.group_by(keys).agg(_polars_value(metric)))
    counted, *_ = pl.collect_all(frames)
    return int(counted.item())


def _polars_value(metric: MetricDefinition) -> pl.Expr:
    field = pl.col(metric.field) if metric.field else None
    match metric.aggregation:
        case Aggregation.COUNT:
            return pl.len().alias("value")
        case Aggregation.SUM:
            return field.sum().alias("value")  # type: ignore[union-attr]
        case Aggregation.QUANTILE:
            return field.quantile(metric.quantile or 0.5, "nearest").alias("value")  # type: ignore[union-attr]
        case Aggregation.DISTINCT:
            return field.drop_nulls().n_unique().alias("value")  # type: ignore[union-attr]
        case Aggregation.MIN:
            return field.min().alias("value")  # type: ignore[union-attr]
        case Aggregation.MAX:
            return field.max().alias("value")  # type: ignore[union-attr]
        case Aggregation.AVG:
            return field.mean().alias("value")  # type: ignore[union-attr]
    raise AssertionError(metric.aggregation)


def chdb_job(storage: Storage, pattern: str, catalog: MetricCatalog) -> int:
    """The direct chDB run over the same files (a ``file()`` glob); returns rows read."""
    table = f"{storage.database}.staged"
    # One pass over the files into memory, duplicates dropped, as a user would stage them.
    storage.command(f"DROP TABLE IF EXISTS {table}")
    storage.command(
        f"CREATE TABLE {table} ENGINE = Memory AS SELECT * FROM "
        f"file('{pattern}', Parquet) LIMIT 1 BY event_id"
    )
    rows = int(storage.query(f"SELECT count() FROM {table}")[0][0])
    for metric in catalog.metrics:
        where = (
            " AND ".join(
                f"{key} IN ({', '.join(repr(v) for v in _as_list(exp))})"
                for key, exp in metric.where.items()
            )
            or "1"
        )
        dims = "".join(f", {d}" for d in metric.dimensions)
        storage.command(
            f"SELECT intDiv(toUnixTimestamp64Milli(ts), 60000) AS minute{dims}, "
            f"{_chdb_value(metric)} FROM {table} WHERE {where} "
            f"GROUP BY minute{dims} FORMAT Null"
        )
    storage.command(f"DROP TABLE {table}")
    return rows


def _chdb_value(metric: MetricDefinition) -> str:
    match metric.aggregation:
        case Aggregation.COUNT:
            return "count()"
        case Aggregation.SUM:
            return f"sum({metric.field})"
        case Aggregation.QUANTILE:
            return f"quantileExact({metric.quantile})({metric.field})"
        case Aggregation.DISTINCT:
            return f"uniqExact({metric.field})"
        case Aggregation.MIN:
            return f"min({metric.field})"
        case Aggregation.MAX:
            return f"max({metric.field})"
        case Aggregation.AVG:
            return f"avg({metric.field})"
    raise AssertionError(metric.aggregation)


def has_incremental() -> bool:
    from batch_layer.jobs.recompute import recompute

    return "mode" in inspect.signature(recompute).parameters


def stratum_run(
    settings: Settings, catalog: MetricCatalog, storage: Storage, mode: str
) -> tuple[float, int, Any]:
    """One recompute; returns (seconds, rows read, result)."""
    from batch_layer.jobs.recompute import recompute

    kwargs: dict[str, Any] = {}
    if has_incremental():
        from batch_layer.planning import RecomputeMode

        kwargs["mode"] = RecomputeMode(mode)
    started = time.perf_counter()
    result = recompute(settings, catalog, storage, **kwargs)
    return time.perf_counter() - started, int(result.rows_in), result


def add_late_hour(data_dir: Path, archive: Archive) -> tuple[int, list[Path]]:
    """A late file in the middle hour of the history; returns its hour and the files of
    that hour (the baselines' input)."""
    hour = archive.start_ms + (archive.end_ms - archive.start_ms) // 2 // HOUR_MS * HOUR_MS
    late = synthetic_events(LATE_EVENTS, hour, hour + HOUR_MS, seed=99, id_prefix="late-")
    write_partition_range(archive_root(data_dir), "late", 0, [(i, e) for i, e in enumerate(late)])
    files = [p for p in list_files(archive_root(data_dir)) if _hour_of(p) == hour]
    return hour, files


def _hour_of(path: Path) -> int:
    from datetime import UTC, datetime

    date = path.parent.parent.name.removeprefix("date=")
    hour = path.parent.name.removeprefix("hour=")
    moment = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def timed(job: Any, *args: Any) -> tuple[float, int]:
    started = time.perf_counter()
    rows = job(*args)
    return time.perf_counter() - started, rows


def measure(quick: bool, profile: bool = False) -> list[Figure]:
    events = 1_000_000 if quick else 10_000_000
    repeats = 1 if quick else 3
    archive = ensure_archive(events)
    catalog = load_catalog(Settings().metrics_file)
    files = list_files(archive.root)
    full: dict[str, list[float]] = {"stratum": [], "polars": [], "chdb": []}
    incremental: dict[str, list[float]] = {"stratum": [], "polars": [], "chdb": []}
    incremental_seconds: list[float] = []
    rows_full = rows_hour = 0
    with tempfile.TemporaryDirectory(prefix="stratum-bench-batch-") as tmp:
        workdir = Path(tmp)
        clickhouse = f"chdb://{workdir / 'clickhouse'}"
        direct = open_storage(
            Settings(
                data_dir=workdir, clickhouse={"url": clickhouse, "database": "bench_direct_db"}
            )
        )
        for run in range(repeats):
            data_dir = mirror(archive, workdir / f"run{run}")
            settings = Settings(
                data_dir=data_dir, clickhouse={"url": clickhouse, "database": f"bench_batch_{run}"}
            )
            storage = open_storage(settings)
            with Instrumented("batch-full", enabled=profile and run == 0):
                seconds, rows_full, _ = stratum_run(settings, catalog, storage, "full")
            full["stratum"].append(rows_full / seconds)
            polars_s, polars_rows = timed(polars_job, files, catalog)
            full["polars"].append(polars_rows / polars_s)
            chdb_s, chdb_rows = timed(
                chdb_job, direct, f"{archive.root.resolve()}/date=*/hour=*/*.parquet", catalog
            )
            full["chdb"].append(chdb_rows / chdb_s)
            print(
                f"  full: stratum {seconds:.2f} s ({rows_full:,} rows), polars "
                f"{polars_s:.2f} s ({polars_rows:,}), chdb file() {chdb_s:.2f} s "
                f"({chdb_rows:,})",
                flush=True,
            )
            if has_incremental():
                _, hour_files = add_late_hour(data_dir, archive)
                hour_glob = f"{hour_files[0].parent}/*.parquet"
                with Instrumented("batch-incremental", enabled=profile and run == 0):
                    seconds, rows_hour, _ = stratum_run(settings, catalog, storage, "incremental")
                incremental["stratum"].append(rows_hour / seconds)
                incremental_seconds.append(seconds)
                polars_s, polars_rows = timed(polars_job, hour_files, catalog)
                incremental["polars"].append(polars_rows / polars_s)
                chdb_s, chdb_rows = timed(chdb_job, direct, hour_glob, catalog)
                incremental["chdb"].append(chdb_rows / chdb_s)
                print(
                    f"  incremental (1 dirty hour): stratum {seconds:.2f} s "
                    f"({rows_hour:,} rows), polars {polars_s:.2f} s, chdb file() "
                    f"{chdb_s:.2f} s",
                    flush=True,
                )
            storage.command(f"DROP DATABASE IF EXISTS bench_batch_{run}")
            shutil.rmtree(data_dir, ignore_errors=True)
    size = f"{events / 1e6:.0f} M events, {len(files)} files, 24 h"
    full_s, full_p = median_pair(full["stratum"], full["polars"])
    out = [
        Figure(
            "batch",
            "full recompute, rows/s",
            "rows/s",
            full_s,
            full_p,
            "Polars, same aggregations",
            target=">= 0.8x baseline",
            met=full_s >= 0.8 * full_p,
            note=size + "; median of paired runs",
        ),
        Figure(
            "batch",
            "full recompute vs chDB file(), rows/s",
            "rows/s",
            *median_pair(full["stratum"], full["chdb"]),
            "chDB file(), same aggregations",
        ),
    ]
    if incremental_seconds:
        inc_s, inc_p = median_pair(incremental["stratum"], incremental["polars"])
        out.append(
            Figure(
                "batch",
                "incremental recompute of 1 dirty hour, rows/s",
                "rows/s",
                inc_s,
                inc_p,
                "Polars on that hour's files",
                target=">= 0.8x baseline",
                met=inc_s >= 0.8 * inc_p,
                note=f"{median(incremental_seconds):.2f} s for {rows_hour:,} rows on top of {size}",
            )
        )
        out.append(
            Figure(
                "batch",
                "incremental recompute vs chDB file(), rows/s",
                "rows/s",
                *median_pair(incremental["stratum"], incremental["chdb"]),
                "chDB file() on that hour's files",
            )
        )
    else:
        out.append(
            Figure(
                "batch",
                "incremental recompute of 1 dirty hour",
                "rows/s",
                None,
                note="n/a (not implemented)",
            )
        )
    return out


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument Stratum's first runs into benchmarks/profiles/",
    )
    args = parser.parse_args()
    emit(measure(args.quick, args.profile), args.emit)


if __name__ == "__main__":
    main()


def _as_list(expected: Any) -> list[Any]:
    """A ``where`` value: one value or a list of them."""
    return expected if isinstance(expected, list) else [expected]
