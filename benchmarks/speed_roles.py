"""The consumers the speed benchmark times, each run in its own process on a topic that
:mod:`benchmarks.speed` pre-loaded: Stratum's speed layer (the worker: speed agent and
archiver), a plain aiokafka consumer, and a plain Faust agent.

Every role times from its first consumed event to completion, so the consumer-group join
(reported separately) does not dilute the rate, and counts the CPU seconds of its process
over the same span. Completion is never read from the broker's end offsets (tansu
misreports them): Stratum's from the worker's record of what its ClickHouse writes hold
(then checked against its checkpoints and rows there), the baselines' by counting the
events they aggregated.

Usage: ``python -m benchmarks.speed_roles ROLE --bootstrap H:P --topic T --events N
--expect '{"0": 123, ...}' --workdir DIR``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import cpu_seconds, peak_rss_mib, thread_cpu_seconds

MINUTE_MS = 60_000


class Clock:
    """Start, first-event and done marks with this process's CPU seconds at each."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.first_cpu = 0.0
        self.first_wall = 0.0
        self.first_threads: dict[str, float] = {}

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.first_cpu = cpu_seconds()
            self.first_wall = time.time()
            self.first_threads = thread_cpu_seconds()

    def result(self, events: int, **extra: Any) -> dict[str, Any]:
        done, done_cpu = time.perf_counter(), cpu_seconds()
        first = self.first if self.first is not None else done
        seconds = max(done - first, 1e-9)
        cpu = max(done_cpu - self.first_cpu, 1e-9)
        threads = {
            name: round(spent - self.first_threads.get(name, 0.0), 2)
            for name, spent in thread_cpu_seconds().items()
        }
        return {
            "events": events,
            "seconds": seconds,
            "join_s": first - self.start,
            "cpu_s": cpu,
            "rate": events / seconds,
            "rate_per_cpu_s": events / cpu,
            "first_wall": self.first_wall,
            "peak_rss_mib": peak_rss_mib(),
            "thread_cpu_s": dict(
                sorted(((n, s) for n, s in threads.items() if s > 0), key=lambda item: -item[1])
            ),
            **extra,
        }


def aggregate_line(line: bytes, agg: dict[tuple[int, str, str], list[float]]) -> None:
    """The baseline's job: count and sum latency per minute, type and country."""
    event = orjson.loads(line)
    ts = event["ts"]
    key = (ts - ts % MINUTE_MS, event["type"], event["country"])
    slot = agg.get(key)
    if slot is None:
        agg[key] = [1, event.get("latency_ms", 0.0)]
    else:
        slot[0] += 1
        slot[1] += event.get("latency_ms", 0.0)


AGGREGATE_FILE = "aggregate.json"
SAME_JOB_SQL = (
    "SELECT toUnixTimestamp64Milli(window_start), dims['type'], dims['country'], metric, "
    "sum(count), sum(sum) FROM bench.speed_windows FINAL "
    "WHERE metric IN ('events', 'latency_total') GROUP BY 1, 2, 3, 4"
)


def dump_aggregate(workdir: str, agg: dict[tuple[int, str, str], list[float]]) -> None:
    """The job's result, ``minute|type|country -> [count, latency sum]``, for
    :mod:`benchmarks.speed` to compare across roles."""
    out = {f"{m}|{t}|{c}": values for (m, t, c), values in agg.items()}
    (Path(workdir) / AGGREGATE_FILE).write_bytes(orjson.dumps(out))


def stored_aggregate(rows: list[tuple[Any, ...]]) -> dict[tuple[int, str, str], list[float]]:
    """Stratum's same-job metrics as the baselines hold them: every partition's rows
    added up, the count from ``events``, the latency sum from ``latency_total``."""
    agg: dict[tuple[int, str, str], list[float]] = {}
    for minute, type_, country, metric, count, total in rows:
        slot = agg.setdefault((int(minute), type_, country), [0, 0.0])
        if metric == "events":
            slot[0] += int(count)
        else:
            slot[1] += float(total)
    return agg


async def plain_consumer(args: argparse.Namespace) -> dict[str, Any]:
    """aiokafka + orjson + a dict: the practical Python ceiling for this job."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    clock = Clock()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    agg: dict[tuple[int, str, str], list[float]] = {}
    count = 0
    try:
        consumer.assign([TopicPartition(args.topic, int(p)) for p in args.expect])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + args.timeout
        while count < args.events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batches.values():
                clock.mark_first()
                for record in records:
                    for line in record.value.split(b"\n"):
                        aggregate_line(line, agg)
                        count += 1
    finally:
        await consumer.stop()
    result = clock.result(count, groups=len(agg), complete=count >= args.events)
    dump_aggregate(args.workdir, agg)
    return result


async def plain_faust(args: argparse.Namespace) -> dict[str, Any]:
    """One Faust agent doing the baseline's job, with Stratum's Faust settings."""
    import faust

    clock = Clock()
    app = faust.App(
        f"bench-faust-{os.getpid()}",
        broker=f"kafka://{args.bootstrap}",
        value_serializer="raw",
        datadir=str(Path(args.workdir) / "faust"),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=4.0,
        broker_heartbeat_interval=1.0,
        stream_wait_empty=False,
        autodiscover=False,
    )
    topic = app.topic(args.topic, value_serializer="raw", partitions=len(args.expect))
    agg: dict[tuple[int, str, str], list[float]] = {}
    state = {"count": 0}
    done = asyncio.Event()

    @app.agent(topic, name="plain")
    async def plain(stream: Any) -> None:
        async for value in stream:
            clock.mark_first()
            for line in value.split(b"\n"):
                aggregate_line(line, agg)
                state["count"] += 1
            if state["count"] >= args.events:
                done.set()

    task = asyncio.create_task(app.start())
    try:
        await asyncio.wait_for(done.wait(), timeout=args.timeout)
    except TimeoutError:
        pass
    result = clock.result(state["count"], groups=len(agg), complete=state["count"] >= args.events)
    dump_aggregate(args.workdir, agg)
    await app.stop()
    task.cancel()
    return result


async def stratum_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Stratum's worker as ``stratum worker`` runs it: the speed agent and the archiver."""
    from speed_layer.app import create_speed_layer
    from stratum.metrics import load_catalog
    from stratum.settings import Settings
    from stratum.storage import open_storage

    workdir = Path(args.workdir)
    settings = Settings(
        data_dir=workdir,
        clickhouse={"url": f"chdb://{workdir / 'clickhouse'}", "database": "bench"},
        kafka={"url": args.bootstrap, "topic": args.topic, "partitions": len(args.expect)},
        speed={"consumer_group": f"bench-speed-{os.getpid()}"},
        batch={"enabled": False},
        **({"metrics_file": Path(args.metrics)} if args.metrics else {}),
    )
    catalog = load_catalog(settings.metrics_file)
    storage = open_storage(settings)
    probe = open_storage(settings)
    clock = Clock()
    layer = create_speed_layer(settings, catalog, storage, args.bootstrap, "bench")
    task = asyncio.create_task(layer.start())
    expect = {int(p): int(o) for p, o in args.expect.items()}
    wanted = {f"bench:{p}": o for p, o in expect.items()}
    deadline = time.monotonic() + args.timeout
    checkpoint_sql = (
        "SELECT source_id, max(through_offset) FROM bench.speed_checkpoints GROUP BY source_id"
    )
    count_sql = "SELECT sum(count) FROM bench.speed_windows FINAL WHERE metric = 'events'"
    stored = layer.speed.stored_offsets
    while time.monotonic() < deadline:
        if layer.speed.last_event_wall:
            clock.mark_first()
            # The worker's own record of what its ClickHouse writes hold (free to read,
            # so waiting does not load the process being measured); verified below.
            if all(stored.get(p, -1) >= o for p, o in expect.items()):
                break
            await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0.005)
    done = clock.result(args.events)
    rows = dict(await asyncio.to_thread(probe.query, checkpoint_sql))
    found = await asyncio.to_thread(probe.query, count_sql)
    counted = int(found[0][0] or 0)
    complete = all(rows.get(s, -1) >= o for s, o in wanted.items()) and counted >= args.events
    result = {**done, "complete": complete, "counted": counted}
    if {m.name for m in catalog.metrics} == {"events", "latency_total"}:
        dump_aggregate(args.workdir, stored_aggregate(probe.query(SAME_JOB_SQL)))
    result["flushes"] = _flushes()
    await layer.stop()
    task.cancel()
    return result


def _flushes() -> dict[str, float]:
    from prometheus_client import REGISTRY

    count = REGISTRY.get_sample_value("stratum_speed_flush_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("stratum_speed_flush_seconds_sum") or 0.0
    return {"count": count, "seconds": total}


ROLES = {"plain": plain_consumer, "faust": plain_faust, "stratum": stratum_worker}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument(
        "--expect",
        type=json.loads,
        required=True,
        help="partition -> last offset, from the produce acknowledgements",
    )
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--metrics", help="Stratum's metrics file (default: the shipped one)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(ROLES[args.role](args))
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # Faust and chDB leave threads behind; the figures are out


if __name__ == "__main__":
    main()
