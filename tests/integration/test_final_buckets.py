"""The final- and tail-bucket caches against real chDB: a cached reader answers exactly
as a reader without caches while the watermark moves, the speed layer writes into open
windows, and a batch run corrects windows the speed layer had closed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_layer.jobs.recompute import recompute
from serving.final_buckets import FinalBucketCache
from serving.queries import MetricReader, Series, SeriesRequest
from serving.tail_buckets import TailBucketCache
from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum.archive import archive_root, write_partition_range
from stratum.metrics import parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from tests.integration.batch_support import VIEW_TABLES, own_database, reset_batch_state

pytestmark = pytest.mark.integration
MINUTE = 60_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
CATALOG = parse_catalog(
    {
        "metric": [
            {"name": "events", "aggregation": "count", "dimensions": ["country"]},
            {
                "name": "p90",
                "aggregation": "quantile",
                "quantile": 0.9,
                "field": "amount",
                "dimensions": ["country"],
            },
        ]
    }
)


@pytest.fixture(scope="module")
def cached(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Settings, Storage]]:
    with own_database(session_dir, clickhouse_url, "cache") as pair:
        yield pair


def _events(rng: random.Random, start: int, minutes: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}{i}",
            "ts": start + i * 4_000,
            "type": "view",
            "country": rng.choice(["DE", "FR"]),
            "amount": float(rng.randrange(100)),
        }
        for i in range(minutes * 15)
    ]


def _view(series: list[Series]) -> dict[tuple[str, int], tuple[float | None, str]]:
    return {
        (s.group.get("country", ""), p.t_ms): (p.value, p.source) for s in series for p in s.points
    }


def _readers(storage: Storage) -> tuple[MetricReader, MetricReader]:
    """A reader with both caches, and one without."""
    return MetricReader(storage), MetricReader(
        storage, cache=FinalBucketCache(capacity=0), tail_cache=TailBucketCache(capacity=0)
    )


class _Speed:
    """The speed layer's own aggregation and upserts, for one source partition."""

    def __init__(self, storage: Storage, lateness_ms: int) -> None:
        self.agg = PartitionAggregator(list(CATALOG.metrics), lateness_ms=lateness_ms)
        self.store = SpeedStore(storage, generation=0)
        self.offset = 0

    def write(self, events: list[dict[str, Any]], per_message: int = 20) -> None:
        """``events`` as log messages of ``per_message``, then one flush."""
        for i in range(0, len(events), per_message):
            self.agg.add(self.offset, events[i : i + per_message], now_ms=2**50)
            self.offset += 1
        self.store.write("t:0", self.agg.drain(), self.agg.checkpoint())
        self.agg.evict_final()


def test_cached_reads_equal_uncached_reads_through_watermarks_and_batch_runs(
    cached: tuple[Settings, Storage],
) -> None:
    settings, storage = cached
    reset_batch_state(settings, storage, VIEW_TABLES)
    rng = random.Random(3)
    speed = _Speed(storage, lateness_ms=2 * MINUTE).write
    reader, plain = _readers(storage)

    def check(start: int, end: int, step: int = MINUTE) -> None:
        for metric in CATALOG.metrics:
            for group_by in [(), ("country",)]:
                req = SeriesRequest(metric, start, end, step, group_by)
                expected = _view(plain.series(req)[0])
                assert expected
                assert _view(reader.series(req)[0]) == expected, (metric.name, group_by)

    all_events = _events(rng, T0, 30, "a")
    speed(all_events)
    start, end = T0 + 25_000, T0 + 40 * MINUTE  # a start inside a bucket
    check(start, end)
    assert (reader.cache.hits, reader.cache.misses) == (0, 4)  # 2 metrics x 2 groupings
    check(start, end)
    assert reader.cache.hits == 4
    check(start, end, 5 * MINUTE)

    more = _events(rng, T0 + 30 * MINUTE, 10, "b")  # the watermark moves 10 minutes on
    speed(more)
    all_events += more
    check(start, end)
    check(start + 3 * MINUTE, end + 5 * MINUTE)  # the dashboard's range slides

    # Late events for minute 2, which the speed layer had closed: archived, and a batch
    # run corrects the window that the cache held.
    late = [
        {
            "event_id": f"late{i}",
            "ts": T0 + 2 * MINUTE + i,
            "type": "view",
            "country": "DE",
            "amount": 1_000.0,
        }
        for i in range(7)
    ]
    before = _view(reader.series(SeriesRequest(CATALOG.metrics[0], start, end, MINUTE))[0])
    write_partition_range(
        archive_root(settings.data_dir), "t", 0, list(enumerate([*all_events, *late]))
    )
    assert recompute(settings, CATALOG, storage).horizon is not None
    after = _view(reader.series(SeriesRequest(CATALOG.metrics[0], start, end, MINUTE))[0])
    assert after[("", T0 + 2 * MINUTE)] == (before[("", T0 + 2 * MINUTE)][0] + 7, "batch")
    check(start, end)
    check(start, end, 5 * MINUTE)


def test_tail_buckets_are_read_again_only_when_the_speed_layer_changed_them(
    cached: tuple[Settings, Storage],
) -> None:
    settings, storage = cached
    reset_batch_state(settings, storage, VIEW_TABLES)
    rng = random.Random(5)
    writer = _Speed(storage, lateness_ms=5 * MINUTE)
    speed = writer.write
    reader, plain = _readers(storage)

    def late_in(minute: int, n: int) -> list[dict[str, Any]]:  # out of order, not late
        return [
            {
                "event_id": f"m{minute}-{writer.offset}-{i}",
                "ts": T0 + minute * MINUTE + i,
                "type": "view",
                "country": rng.choice(["DE", "FR"]),
                "amount": float(rng.randrange(100)),
            }
            for i in range(n)
        ]

    speed(_events(rng, T0, 30, "a"))  # to 29:56; the watermark 24:56 (5 minutes' lateness)
    requests = [
        SeriesRequest(metric, T0, T0 + 40 * MINUTE, MINUTE, group_by)
        for metric in CATALOG.metrics
        for group_by in [(), ("country",)]
    ]

    def check() -> None:
        for req in requests:
            assert _view(reader.series(req)[0]) == _view(plain.series(req)[0]), req

    check()
    tail = reader.tail_cache
    assert tail.reused == 0 and tail.reread == 4 * 16  # minutes 24..39 of 4 shapes
    check()
    assert tail.reused == 4 * 16  # nothing changed: no tail bucket read again

    speed(late_in(27, 5))  # an upsert into one open window
    reused, reread = tail.reused, tail.reread
    check()
    assert (tail.reused - reused, tail.reread - reread) == (4 * 15, 4)
    speed(late_in(26, 3) + late_in(29, 2))
    check()
    speed(late_in(34, 4))  # a first row in an empty bucket of the tail
    check()
    speed(
        late_in(28, 1)
        + [
            {
                "event_id": "new",
                "ts": T0 + 33 * MINUTE,
                "type": "view",
                "country": "DE",
                "amount": 1.0,
            }
        ]
    )
    check()
