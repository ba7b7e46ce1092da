"""Query: p50/p99 of merged metric reads (24 h at 1-minute steps, grouped by one
dimension) through ``serving.queries.MetricReader`` while the speed layer keeps writing,
against the same question asked of chDB straight over the raw events.

Set-up, in one chDB engine: the cached archive (1 M events with ``--quick``, else 10 M,
over 24 h) recomputed by the batch layer into ``batch_windows``; the last two hours also
aggregated by the speed layer's own code into ``speed_windows`` (flushed every 5,000
events, as a live worker would); the raw events in a MergeTree table ordered by time.

Then a thread plays the live speed layer: every second it decodes the log messages (500
JSON events each) a producer process made for that second, aggregates them and upserts
the changed windows. Event time runs on from the archive's end at wall-clock pace, with
event times as the demo generator sends them (3 % a few seconds out of order, 0.5 % late
beyond the allowed lateness). Each round of reads starts after a new flush, at a random
moment of the second, and asks for the 24 h up to the present, as a refreshing dashboard
does: after the first, a merged read takes its final buckets from the reader's cache
(:mod:`serving.final_buckets`) and the open ones it finds unchanged from
:mod:`serving.tail_buckets`; every second read is also timed without caches, and the direct
query alternates with them. A shorter pass spreads the events over the last four minutes
instead (every open window changes every second: the tail cache's worst case). Start-up
objects are frozen out of the garbage collector's scans, as in a Stratum process
(:mod:`stratum.long_lived`). Last, six more days of batch history are added and the
reads without caches are timed again: they should not notice.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
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
from ingest.generator import GeneratorConfig
from serving.final_buckets import FinalBucketCache
from serving.queries import MetricReader, SeriesRequest
from serving.tail_buckets import TailBucketCache
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
    storage.command(
        f"INSERT INTO {db}.raw_events SELECT event_id, ts, type, user_id, country, "
        f"device, page, latency_ms, amount FROM file("
        f"'{archive.root.resolve()}/date=*/hour=*/*.parquet', Parquet)"
    )
    storage.command(f"OPTIMIZE TABLE {db}.raw_events FINAL")
    recent = storage.query_dicts(
        f"SELECT event_id, toUnixTimestamp64Milli(ts) AS ts_ms, type, user_id, country, device, "
        f"page, latency_ms, amount FROM {db}.raw_events "
        f"WHERE ts >= fromUnixTimestamp64Milli({{lo:Int64}}) ORDER BY ts",
        {"lo": archive.end_ms - 2 * HOUR_MS},
    )
    store = SpeedStore(storage, generation=0)
    aggs = {p: PartitionAggregator(catalog.metrics, 300_000) for p in range(PARTITIONS)}
    for start in range(0, len(recent), 5_000):
        chunk = [
            {"ts": e.pop("ts_ms"), **{k: v for k, v in e.items() if v is not None}}
            for e in recent[start : start + 5_000]
        ]
        for p, agg in aggs.items():
            agg.add(start // 5_000, chunk[p::PARTITIONS], archive.end_ms)
            store.write(f"bench:{p}", agg.drain(), agg.checkpoint())
            agg.evict_final()
    print(
        f"  loaded: batch windows, {len(recent):,} events through the speed path, raw "
        f"events; {time.perf_counter() - started:.0f} s",
        flush=True,
    )


def timed_events(profile: str, n: int, now_ms: int, seed: int) -> list[dict[str, Any]]:
    """One second's events. ``demo``: event times as the demo generator sends them (the
    last second; 3 % out of order by 2-45 s, 0.5 % late by 6-20 minutes). ``spread``:
    evenly over the last four minutes, so every open window changes every second."""
    if profile == "spread":
        return synthetic_events(n, now_ms - 240_000, now_ms, seed=seed, id_prefix=f"l{seed}-")
    events = synthetic_events(n, now_ms - 1_000, now_ms, seed=seed, id_prefix=f"l{seed}-")
    demo = GeneratorConfig()  # the shares; the spans are the generator's EventFactory.batch
    rng = np.random.default_rng(seed)
    roll = rng.random(n)
    late = demo.out_of_order + (1 - demo.out_of_order) * demo.late
    shift = np.where(
        roll < demo.out_of_order,
        rng.integers(2_000, 45_000, n),
        np.where(roll < late, rng.integers(6 * 60_000, 20 * 60_000, n), 0),
    )
    for event, back in zip(events, shift.tolist(), strict=True):
        event["ts"] -= back
    return events


PROFILES = ("demo", "spread")


def clock_ms(clock: tuple[int, float]) -> int:
    """Event time now, on a clock that started at ``clock[0]`` (ms) at wall time
    ``clock[1]`` (s) and runs at wall-clock pace."""
    return clock[0] + int((time.time() - clock[1]) * 1000)


def produce(out: Any, stop: Any, profile: Any, clock: tuple[int, float], events_per_s: int) -> None:
    """In a process of its own, as producers are: every second, that second's events as
    log messages of 500 JSON events per partition (``profile.value``: which
    :data:`PROFILES`)."""
    seed = 0
    while not stop.is_set():
        tick = time.monotonic()
        seed += 1
        now_ms = clock_ms(clock)
        events = timed_events(PROFILES[profile.value], events_per_s, now_ms, seed)
        messages = []
        for p in range(PARTITIONS):
            mine = [orjson.dumps(e) for e in events[p::PARTITIONS]]
            messages.append([b"\n".join(mine[i : i + 500]) for i in range(0, len(mine), 500)])
        out.put((now_ms, messages))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))


class LiveSpeedLayer(threading.Thread):
    """The running speed layer: every second it decodes the log messages a producer
    process made, aggregates them and upserts the changed windows. Event time runs on from
    the archive's end at wall-clock pace (:meth:`now_ms`), and windows the watermark
    passed are evicted, as in a worker."""

    def __init__(
        self, settings: Settings, catalog: MetricCatalog, end_ms: int, events_per_s: int
    ) -> None:
        super().__init__(name="live-speed", daemon=True)
        self.storage = open_storage(settings, migrate=False)
        self.store = SpeedStore(self.storage, generation=0)
        self.catalog = catalog
        self.clock = (end_ms, time.time())
        self.stop = threading.Event()
        self.flushes = 0
        context = multiprocessing.get_context("spawn")  # the engine's threads do not fork
        self._messages = context.Queue(maxsize=4)
        self._stop_producer = context.Event()
        self._profile = context.Value("b", 0)
        self._producer = context.Process(
            target=produce,
            name="live-producer",
            daemon=True,
            args=(self._messages, self._stop_producer, self._profile, self.clock, events_per_s),
        )

    def use_profile(self, profile: str) -> None:
        """Event times from now on: one of :data:`PROFILES` (see :func:`timed_events`)."""
        self._profile.value = PROFILES.index(profile)

    def now_ms(self) -> int:
        return clock_ms(self.clock)

    def next_read(self, seen: int, rng: random.Random) -> int:
        """Wait until a flush after the ``seen``-th, then on to a random moment of the
        second (a dashboard's refresh does not wait for the speed layer); the flushes
        done by then."""
        if self.flushes <= seen:
            deadline = time.monotonic() + 10
            while self.flushes <= seen and time.monotonic() < deadline and self.is_alive():
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 1.0))
        return self.flushes

    def run(self) -> None:
        aggs = {p: PartitionAggregator(self.catalog.metrics, 300_000) for p in range(PARTITIONS)}
        offset = 10_000
        self._producer.start()
        try:
            while not self.stop.is_set():
                try:
                    now_ms, messages = self._messages.get(timeout=0.5)
                except queue.Empty:
                    continue
                for p, agg in aggs.items():
                    # As the worker does: a fetch's messages decoded as one batch.
                    frame = decode_messages([(offset, m) for m in messages[p]], now_ms=now_ms).frame
                    agg.add_frame(frame, offset, now_ms)
                self.store.write_many(
                    [(f"bench:{p}", agg.drain(), agg.checkpoint()) for p, agg in aggs.items()]
                )  # as a worker flushes
                for agg in aggs.values():
                    agg.evict_final()
                offset += 1
                self.flushes += 1
        finally:
            self._stop_producer.set()
            self._producer.join(timeout=10)
            if self._producer.is_alive():
                self._producer.kill()


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
        for key, exp in metric.where.items()
    )
    if metric.field:
        where += f" AND {metric.field} IS NOT NULL"
    return (
        f"SELECT intDiv(toUnixTimestamp64Milli(ts), 60000) * 60000 AS bucket, "
        f"{GROUP_BY}, {value} AS value, count() AS n FROM {db}.raw_events "
        "WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}"
        + where
        + f" GROUP BY bucket, {GROUP_BY} ORDER BY {GROUP_BY}, bucket"
    )


def time_queries(
    reader: MetricReader,
    storage: Storage,
    metric: MetricDefinition,
    live: LiveSpeedLayer,
    iterations: int,
    *,
    direct: bool = True,
    profile: Instrumented | None = None,
    cold: MetricReader | None = None,
    every: int = 1,
) -> tuple[list[float], list[float], list[float]]:
    """Milliseconds of the merged read of the last 24 h (``reader``, with its caches), of
    the same read without caches (``cold``, if given) and of the direct chDB query (those
    two every ``every``-th round: they are slow, and a p99 wants many merged reads). Each
    round starts after a new flush of the live speed layer, so every merged read has
    fresh upserts to take in, at a random moment between flushes, and asks up to the
    speed layer's present, as a dashboard does."""
    from datetime import UTC, datetime

    sql = direct_sql(metric, storage.database)
    merged: list[float] = []
    uncached: list[float] = []
    raw: list[float] = []
    rng, seen = random.Random(len(metric.name)), 0
    for i in range(iterations + 2):
        seen = live.next_read(seen, rng)
        end_ms = live.now_ms()
        request = SeriesRequest(metric, end_ms - DAY_MS, end_ms, 60_000, (GROUP_BY,))
        if profile is not None and i >= 2:  # the merged reads alone
            profile.resume()
        started = time.perf_counter()
        series, _ = reader.series(request)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.pause()
        if i >= 2:  # two warm-up rounds
            merged.append(elapsed * 1000)
        if i % every:
            continue
        if cold is not None:
            started = time.perf_counter()
            cold.series(request)
            if i >= 2:
                uncached.append((time.perf_counter() - started) * 1000)
        if direct:
            params = {
                "start": datetime.fromtimestamp((end_ms - DAY_MS) / 1000, tz=UTC),
                "end": datetime.fromtimestamp(end_ms / 1000, tz=UTC),
            }
            started = time.perf_counter()
            rows = storage.query(sql, params)
            elapsed = time.perf_counter() - started
            if i >= 2:
                raw.append(elapsed * 1000)
        if i == 0:
            points = sum(len(s.points) for s in series)
            print(
                f"  {metric.name}: {len(series)} series, {points:,} points"
                + (f"; direct {len(rows):,} rows" if direct else ""),
                flush=True,
            )
    if profile is not None:
        profile.__exit__()
    return merged, uncached, raw


def grow_history(storage: Storage, archive: Archive, days: int) -> None:
    """Copies of the batch windows and their coverage, 1..``days`` days earlier."""
    db = storage.database
    for day in range(1, days + 1):
        shift = f"toIntervalDay({day})"
        columns = (
            "metric, window_ms, window_start, dims, group_key, count, sum, min, max, "
            "q_values, q_weights, d_hashes, d_theta, first_ms, last_ms, version"
        )
        storage.command(
            f"INSERT INTO {db}.batch_windows ({columns}) SELECT "
            f"{columns.replace('window_start', f'window_start - {shift}')} "
            f"FROM {db}.batch_windows "
            f"WHERE window_start >= fromUnixTimestamp64Milli({archive.start_ms})"
        )
        storage.command(
            f"INSERT INTO {db}.batch_coverage SELECT metric, hour_start - {shift}, "
            f"version, horizon - {shift} FROM {db}.batch_coverage FINAL "
            f"WHERE hour_start >= fromUnixTimestamp64Milli({archive.start_ms})"
        )


def measure(quick: bool, profile: bool = False) -> list[Figure]:
    events = 1_000_000 if quick else 10_000_000
    iterations = 20 if quick else 60  # reads without caches, and direct queries
    archive = ensure_archive(events)
    catalog = load_catalog(Settings().metrics_file)
    out: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="stratum-bench-query-") as tmp:
        settings = Settings(
            data_dir=mirror(archive, Path(tmp) / "data"),
            clickhouse={"url": f"chdb://{Path(tmp) / 'clickhouse'}", "database": "bench_query"},
        )
        storage = open_storage(settings)
        load(settings, storage, catalog, archive)
        reader = MetricReader(open_storage(settings, migrate=False))
        cold = MetricReader(
            open_storage(settings, migrate=False),
            cache=FinalBucketCache(capacity=0),
            tail_cache=TailBucketCache(capacity=0),
        )
        freeze_startup_objects()  # as a Stratum process does once started
        live = LiveSpeedLayer(settings, catalog, archive.end_ms, 5_000 if quick else 20_000)
        live.start()
        try:
            for metric in catalog.metrics:
                spy = Instrumented(f"query-{metric.name}") if profile else None
                merged, uncached, raw = time_queries(
                    reader, storage, metric, live, 2 * iterations, profile=spy, cold=cold, every=2
                )
                m50, m99 = percentile(merged, 50), percentile(merged, 99)
                r50, r99 = percentile(raw, 50), percentile(raw, 99)
                met = m99 is not None and r99 is not None and m99 <= 2 * r99 and m99 < 50
                note = (
                    f"{events / 1e6:.0f} M raw events; live upserts during the reads "
                    f"(demo generator's event times)"
                )
                out.append(
                    Figure(
                        "query",
                        f"{metric.name} by {GROUP_BY}, 24 h / 1 min, p50",
                        "ms",
                        m50,
                        r50,
                        "chDB over raw events",
                        note=note,
                    )
                )
                out.append(
                    Figure(
                        "query",
                        f"{metric.name} by {GROUP_BY}, 24 h / 1 min, p99",
                        "ms",
                        m99,
                        r99,
                        "chDB over raw events",
                        target="<= 2x baseline and < 50 ms",
                        met=met,
                    )
                )
                out.append(
                    Figure(
                        "query",
                        f"{metric.name}, same read without the cache, p99",
                        "ms",
                        percentile(uncached, 99),
                        r99,
                        "chDB over raw events",
                        note=f"p50 {percentile(uncached, 50) or 0:.0f} ms",
                    )
                )
            # The worst case for the tail cache: every open window changes every second.
            live.use_profile("spread")
            for metric in catalog.metrics:
                spread, _, _ = time_queries(
                    reader, storage, metric, live, max(10, iterations // 3), direct=False
                )
                out.append(
                    Figure(
                        "query",
                        f"{metric.name}, events spread over the last 4 minutes, p99",
                        "ms",
                        percentile(spread, 99),
                        None,
                        "",
                        note=f"p50 {percentile(spread, 50) or 0:.0f} ms; every open window "
                        "upserted every second",
                    )
                )
            live.use_profile("demo")
            # History growth, measured back to back, in the same conditions.
            metric = catalog.metrics[0]
            before, _, _ = time_queries(cold, storage, metric, live, iterations, direct=False)
            grow_history(storage, archive, days=6)
            after, _, _ = time_queries(cold, storage, metric, live, iterations, direct=False)
            out.append(
                Figure(
                    "query",
                    f"{metric.name} p50 with 7 days of batch history (no cache)",
                    "ms",
                    percentile(after, 50),
                    percentile(before, 50),
                    "same query just before, 1 day of history",
                    note=f"p99 {percentile(after, 99) or 0:.0f} ms vs "
                    f"{percentile(before, 99) or 0:.0f} ms",
                )
            )
        finally:
            live.stop.set()
            live.join(timeout=30)
            unfreeze()
        parts = storage.query(
            "SELECT count() FROM system.parts WHERE active AND "
            "database = {db:String} AND table = 'speed_windows'",
            {"db": storage.database},
        )[0][0]
        print(
            f"  live speed layer: {live.flushes} flushes during the reads; speed_windows "
            f"has {parts} active parts",
            flush=True,
        )
    return out


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument the merged reads into benchmarks/profiles/",
    )
    args = parser.parse_args()
    emit(measure(args.quick, args.profile), args.emit)


if __name__ == "__main__":
    main()
