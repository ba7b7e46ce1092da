"""Query: p50/p99 of merged metric reads (24 h at 1-minute steps, grouped by one
dimension) through ``serving.queries.MetricReader`` while the speed layer keeps writing,
against the same question asked of chDB straight over the raw events.

Set-up, in one chDB engine: the cached archive (1 M events with ``--quick``, else 10 M,
over 24 h) recomputed by the batch layer into ``batch_windows``; the last two hours also
aggregated by the speed layer's own code into ``speed_windows`` (flushed every 5,000
events, as a live worker would); the raw events in a MergeTree table ordered by time.
The merged reads repeat the same 24 h question, as a refreshing dashboard does, so after
the first one they take their final buckets from the reader's cache
(:mod:`serving.final_buckets`); each is also timed without the cache. While the queries
run, a thread plays the live speed layer: every second it decodes new log messages (500
JSON events each, for the last minutes) as the worker does, aggregates them and upserts
the changed windows. Start-up objects are frozen out of the garbage collector's scans,
as in a Stratum process (:mod:`stratum.long_lived`). Stratum and the direct query
alternate. Then six more days of batch history are added and the merged reads are
timed again: they should not notice.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import orjson

from benchmarks.archive_cache import Archive, ensure_archive, mirror
from benchmarks.common import (
    Figure,
    Instrumented,
    bench_parser,
    emit,
    percentile,
    synthetic_events,
)
from serving.final_buckets import FinalBucketCache
from serving.queries import MetricReader, SeriesRequest
from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum.archive import HOUR_MS
from stratum.event_frames import decode_messages
from stratum.long_lived import freeze_startup_objects, unfreeze
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition, load_catalog
from stratum.settings import Settings
from stratum.storage import Storage, open_storage

DAY_MS = 24 * HOUR_MS
PARTITIONS = 4
GROUP_BY = "country"


def load(settings: Settings, storage: Storage, catalog: MetricCatalog, archive: Archive) -> None:
    """Batch windows from a full recompute, speed windows for the last two hours, and the
    raw events table for the direct query."""
    from batch_layer.jobs.recompute import recompute

    started = time.perf_counter()
    kwargs = {}
    try:
        from batch_layer.planning import RecomputeMode

        kwargs["mode"] = RecomputeMode.FULL
    except ImportError:
        pass
    recompute(settings, catalog, storage, **kwargs)  # type: ignore[arg-type]
    db = storage.database
    storage.command(f"""CREATE TABLE {db}.raw_events (
        event_id String, ts DateTime64(3, 'UTC'), type LowCardinality(String),
        user_id String, country LowCardinality(String), device LowCardinality(String),
        page LowCardinality(String), latency_ms Float64, amount Nullable(Float64)
    ) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY ts""")
    storage.command(f"INSERT INTO {db}.raw_events SELECT event_id, ts, type, user_id, country, "
                    f"device, page, latency_ms, amount FROM file("
                    f"'{archive.root.resolve()}/date=*/hour=*/*.parquet', Parquet)")
    storage.command(f"OPTIMIZE TABLE {db}.raw_events FINAL")
    recent = storage.query_dicts(
        f"SELECT event_id, toUnixTimestamp64Milli(ts) AS ts_ms, type, user_id, country, device, "
        f"page, latency_ms, amount FROM {db}.raw_events "
        f"WHERE ts >= fromUnixTimestamp64Milli({{lo:Int64}}) ORDER BY ts",
        {"lo": archive.end_ms - 2 * HOUR_MS})
    store = SpeedStore(storage, generation=0)
    aggs = {p: PartitionAggregator(catalog.metrics, 300_000) for p in range(PARTITIONS)}
    for start in range(0, len(recent), 5_000):
        chunk = [{"ts": e.pop("ts_ms"), **{k: v for k, v in e.items() if v is not None}}
                 for e in recent[start:start + 5_000]]
        for p, agg in aggs.items():
            agg.add(start // 5_000, chunk[p::PARTITIONS], archive.end_ms)
            store.write(f"bench:{p}", agg.drain(), agg.checkpoint())
            agg.evict_final()
    print(f"  loaded: batch windows, {len(recent):,} events through the speed path, raw "
          f"events; {time.perf_counter() - started:.0f} s", flush=True)


class LiveSpeedLayer(threading.Thread):
    """Upserts changed windows every second, as the running speed layer does."""

    def __init__(self, settings: Settings, catalog: MetricCatalog, end_ms: int,
                 events_per_s: int) -> None:
        super().__init__(name="live-speed", daemon=True)
        self.storage = open_storage(settings, migrate=False)
        self.store = SpeedStore(self.storage, generation=0)
        self.catalog = catalog
        self.end_ms = end_ms
        self.events_per_s = events_per_s
        self.stop = threading.Event()
        self.flushes = 0

    def run(self) -> None:
        aggs = {p: PartitionAggregator(self.catalog.metrics, 300_000) for p in range(PARTITIONS)}
        offset = 10_000
        seed = 0
        while not self.stop.is_set():
            tick = time.monotonic()
            seed += 1
            events = synthetic_events(self.events_per_s, self.end_ms - 240_000, self.end_ms,
                                      seed=seed, id_prefix=f"live{seed}-")
            for p, agg in aggs.items():
                # As the worker does: log messages of 500 JSON events, decoded as a batch
                # (building frames from Python dicts instead held the GIL for up to 50 ms).
                mine = [orjson.dumps(e) for e in events[p::PARTITIONS]]
                messages = [(offset, b"\n".join(mine[i:i + 500]))
                            for i in range(0, len(mine), 500)]
                agg.add_frame(decode_messages(messages, now_ms=self.end_ms).frame, offset,
                              self.end_ms)
            self.store.write_many([(f"bench:{p}", agg.drain(), agg.checkpoint())
                                   for p, agg in aggs.items()])  # as a worker flushes
            offset += 1
            self.flushes += 1
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))


def direct_sql(metric: MetricDefinition, db: str) -> str:
    value = {
        Aggregation.COUNT: "toFloat64(count())",
        Aggregation.SUM: f"sum({metric.field})",
        Aggregation.MIN: f"min({metric.field})",
        Aggregation.MAX: f"max({metric.field})",
        Aggregation.AVG: f"avg({metric.field})",
        Aggregation.QUANTILE: f"quantileExact({metric.quantile})({metric.field})",
        Aggregation.DISTINCT: f"toFloat64(uniqExact({metric.field}))",
    }[metric.aggregation]
    where = "".join(
        f" AND {key} IN ({', '.join(repr(v) for v in (exp if isinstance(exp, list) else [exp]))})"
        for key, exp in metric.where.items())
    if metric.field:
        where += f" AND {metric.field} IS NOT NULL"
    return (f"SELECT intDiv(toUnixTimestamp64Milli(ts), 60000) * 60000 AS bucket, "
            f"{GROUP_BY}, {value} AS value, count() AS n FROM {db}.raw_events "
            "WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}" + where +
            f" GROUP BY bucket, {GROUP_BY} ORDER BY {GROUP_BY}, bucket")


def time_queries(reader: MetricReader, storage: Storage, metric: MetricDefinition,
                 archive: Archive, iterations: int, *, direct: bool = True,
                 profile: Instrumented | None = None, cold: MetricReader | None = None
                 ) -> tuple[list[float], list[float], list[float]]:
    """Milliseconds of the merged read (``reader``, with its final-bucket cache), of the
    same read without a cache (``cold``, if given) and of the direct chDB query."""
    from datetime import UTC, datetime

    request = SeriesRequest(metric, archive.end_ms - DAY_MS, archive.end_ms, 60_000,
                            (GROUP_BY,))
    sql = direct_sql(metric, storage.database)
    params = {"start": datetime.fromtimestamp((archive.end_ms - DAY_MS) / 1000, tz=UTC),
              "end": datetime.fromtimestamp(archive.end_ms / 1000, tz=UTC)}
    merged: list[float] = []
    uncached: list[float] = []
    raw: list[float] = []
    for i in range(iterations + 2):
        if profile is not None and i == 2:
            profile.__enter__()
        started = time.perf_counter()
        series, _ = reader.series(request)
        elapsed = time.perf_counter() - started
        if i >= 2:  # two warm-up rounds
            merged.append(elapsed * 1000)
        if cold is not None:
            started = time.perf_counter()
            cold.series(request)
            if i >= 2:
                uncached.append((time.perf_counter() - started) * 1000)
        if direct:
            started = time.perf_counter()
            rows = storage.query(sql, params)
            elapsed = time.perf_counter() - started
            if i >= 2:
                raw.append(elapsed * 1000)
        if profile is not None and i == iterations + 1:
            profile.__exit__()
        if i == 0:
            points = sum(len(s.points) for s in series)
            print(f"  {metric.name}: {len(series)} series, {points:,} points"
                  + (f"; direct {len(rows):,} rows" if direct else ""), flush=True)
    return merged, uncached, raw


def grow_history(storage: Storage, archive: Archive, days: int) -> None:
    """Copies of the batch windows and their coverage, 1..``days`` days earlier."""
    db = storage.database
    for day in range(1, days + 1):
        shift = f"toIntervalDay({day})"
        columns = ("metric, window_ms, window_start, dims, group_key, count, sum, min, max, "
                   "q_values, q_weights, d_hashes, d_theta, first_ms, last_ms, version")
        storage.command(f"INSERT INTO {db}.batch_windows ({columns}) SELECT "
                        f"{columns.replace('window_start', f'window_start - {shift}')} "
                        f"FROM {db}.batch_windows "
                        f"WHERE window_start >= fromUnixTimestamp64Milli({archive.start_ms})")
        storage.command(f"INSERT INTO {db}.batch_coverage SELECT metric, hour_start - {shift}, "
                        f"version, horizon - {shift} FROM {db}.batch_coverage FINAL "
                        f"WHERE hour_start >= fromUnixTimestamp64Milli({archive.start_ms})")


def measure(quick: bool, profile: bool = False) -> list[Figure]:
    events = 1_000_000 if quick else 10_000_000
    iterations = 20 if quick else 60
    archive = ensure_archive(events)
    catalog = load_catalog(Settings().metrics_file)
    out: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="stratum-bench-query-") as tmp:
        settings = Settings(data_dir=mirror(archive, Path(tmp) / "data"), clickhouse={
            "url": f"chdb://{Path(tmp) / 'clickhouse'}", "database": "bench_query"})
        storage = open_storage(settings)
        load(settings, storage, catalog, archive)
        reader = MetricReader(open_storage(settings, migrate=False))
        cold = MetricReader(open_storage(settings, migrate=False),
                            cache=FinalBucketCache(capacity=0))
        freeze_startup_objects()  # as a Stratum process does once started
        live = LiveSpeedLayer(settings, catalog, archive.end_ms, 5_000 if quick else 20_000)
        live.start()
        try:
            for metric in catalog.metrics:
                spy = Instrumented(f"query-{metric.name}") if profile else None
                merged, uncached, raw = time_queries(reader, storage, metric, archive,
                                                     iterations, profile=spy, cold=cold)
                m50, m99 = percentile(merged, 50), percentile(merged, 99)
                r50, r99 = percentile(raw, 50), percentile(raw, 99)
                met = m99 is not None and r99 is not None and m99 <= 2 * r99 and m99 < 50
                note = f"{events / 1e6:.0f} M raw events; live upserts during the reads"
                out.append(Figure("query", f"{metric.name} by {GROUP_BY}, 24 h / 1 min, p50",
                                  "ms", m50, r50, "chDB over raw events", note=note))
                out.append(Figure("query", f"{metric.name} by {GROUP_BY}, 24 h / 1 min, p99",
                                  "ms", m99, r99, "chDB over raw events",
                                  target="<= 2x baseline and < 50 ms", met=met))
                out.append(Figure("query", f"{metric.name}, same read without the cache, p99",
                                  "ms", percentile(uncached, 99), r99, "chDB over raw events",
                                  note=f"p50 {percentile(uncached, 50) or 0:.0f} ms"))
            # History growth, measured back to back: the live writer's Python work grows as
            # its windows fill, so a figure from minutes earlier is not the same conditions.
            metric = catalog.metrics[0]
            before, _, _ = time_queries(cold, storage, metric, archive, iterations,
                                        direct=False)
            grow_history(storage, archive, days=6)
            after, _, _ = time_queries(cold, storage, metric, archive, iterations,
                                       direct=False)
            out.append(Figure("query", f"{metric.name} p50 with 7 days of batch history "
                              "(no cache)",
                              "ms", percentile(after, 50), percentile(before, 50),
                              "same query just before, 1 day of history",
                              note=f"p99 {percentile(after, 99) or 0:.0f} ms vs "
                                   f"{percentile(before, 99) or 0:.0f} ms"))
        finally:
            live.stop.set()
            live.join(timeout=30)
            unfreeze()
        parts = storage.query("SELECT count() FROM system.parts WHERE active AND "
                              "database = {db:String} AND table = 'speed_windows'",
                              {"db": storage.database})[0][0]
        print(f"  live speed layer: {live.flushes} flushes during the reads; speed_windows "
              f"has {parts} active parts", flush=True)
    return out


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--profile", action="store_true",
                        help="pyinstrument the merged reads into benchmarks/profiles/")
    args = parser.parse_args()
    emit(measure(args.quick, args.profile), args.emit)


if __name__ == "__main__":
    main()
