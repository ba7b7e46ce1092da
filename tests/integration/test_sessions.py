"""Session windows end to end: the speed layer's and the batch layer's windows chained
into sessions by serving's SQL, against sessions computed event by event in Python.

Events of one user are spread over two log partitions and arrive out of order, sessions
cross the batch horizon and midnight: the served value of every session-start bucket
must equal the reference, whichever layer (or both) holds its windows.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_layer.jobs.recompute import recompute
from serving.queries import MetricReader, SeriesRequest
from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum.archive import archive_root, write_partition_range
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition, parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from tests.integration.batch_support import VIEW_TABLES, own_database, reset_batch_state

pytestmark = pytest.mark.integration
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
MIDNIGHT = 1_793_491_200_000  # 2026-11-01T00:00:00Z
GAP = 10 * MINUTE

CATALOG = parse_catalog(
    {
        "metric": [
            {
                "name": "session_events",
                "aggregation": "count",
                "dimensions": ["user", "country"],
                "session_gap": "10m",
            },
            {
                "name": "session_spend",
                "aggregation": "avg",
                "field": "amount",
                "dimensions": ["user", "country"],
                "session_gap": "10m",
                "windows": ["5m"],
            },
        ]
    }
)


@pytest.fixture(scope="module")
def sessions(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Settings, Storage]]:
    with own_database(session_dir, clickhouse_url, "sessions") as pair:
        yield pair


@pytest.fixture()
def clean(sessions: tuple[Settings, Storage]) -> tuple[Settings, Storage]:
    reset_batch_state(*sessions, VIEW_TABLES)
    return sessions


def _stream(rng: random.Random) -> list[dict[str, Any]]:
    """Six users around midnight: bursts of activity with gaps below and above GAP."""
    events = []
    for u in range(6):
        ts = MIDNIGHT - 2 * HOUR + rng.randrange(30 * MINUTE)
        while ts < MIDNIGHT + 2 * HOUR:
            events.append(
                {
                    "event_id": f"s{len(events)}",
                    "ts": ts,
                    "type": "view",
                    "user": f"u{u}",
                    "country": "DE" if u % 2 else "FR",
                    "amount": float(rng.randrange(1, 100)),
                }
            )
            ts += rng.choice([5_000, 40_000, 3 * MINUTE, 9 * MINUTE, GAP, 12 * MINUTE, 40 * MINUTE])
    return events


def reference(
    metric: MetricDefinition, events: list[dict[str, Any]], step_ms: int, group_by: tuple[str, ...]
) -> dict[tuple[tuple[str, ...], int], tuple[float, int]]:
    """(group, bucket of session start) -> (value, sessions), sessionising event by
    event."""
    by_group: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_group[tuple(event[d] for d in metric.dimensions)].append(event)
    buckets: dict[tuple[tuple[str, ...], int], list[dict[str, Any]]] = defaultdict(list)
    starts: dict[tuple[tuple[str, ...], int], set[tuple[Any, ...]]] = defaultdict(set)
    for group, group_events in by_group.items():
        group_events.sort(key=lambda e: e["ts"])
        start = previous = None
        for event in group_events:
            ts = event["ts"]
            if previous is None or ts - previous >= GAP or ts // DAY != previous // DAY:
                start = ts
            previous = ts
            assert start is not None
            key = (tuple(event[d] for d in group_by), start // step_ms * step_ms)
            buckets[key].append(event)
            starts[key].add((group, start))
    if metric.aggregation == Aggregation.COUNT:
        return {k: (float(len(v)), len(starts[k])) for k, v in buckets.items()}
    return {k: (sum(e["amount"] for e in v) / len(v), len(starts[k])) for k, v in buckets.items()}


def _run_speed(
    storage: Storage, catalog: MetricCatalog, events: list[dict[str, Any]], rng: random.Random
) -> None:
    """Two source partitions, each out of order within the (day-long) lateness."""
    parts: list[list[dict[str, Any]]] = [[], []]
    for event in events:
        parts[rng.randrange(2)].append(event)
    store = SpeedStore(storage, generation=0)
    for partition, part in enumerate(parts):
        rng.shuffle(part)
        agg = PartitionAggregator(list(catalog.metrics), lateness_ms=DAY)
        for offset in range(0, len(part), 7):
            agg.add(offset, part[offset : offset + 7], now_ms=2**50)
            if rng.random() < 0.2:
                store.write(f"t:{partition}", agg.drain(), agg.checkpoint())
        store.write(f"t:{partition}", agg.drain(), agg.checkpoint())


def _served(
    storage: Storage, metric: MetricDefinition, step_ms: int, group_by: tuple[str, ...]
) -> tuple[dict[tuple[tuple[str, ...], int], tuple[float | None, int | None]], set[str]]:
    """(group, bucket) -> (value, sessions) as served, and the sources seen."""
    series, _ = MetricReader(storage).series(
        SeriesRequest(metric, MIDNIGHT - DAY, MIDNIGHT + DAY, step_ms, group_by)
    )
    values = {
        (tuple(s.group[d] for d in group_by), p.t_ms): (p.value, p.sessions)
        for s in series
        for p in s.points
    }
    return values, {p.source for s in series for p in s.points}


def _check(storage: Storage, events: list[dict[str, Any]]) -> set[str]:
    sources: set[str] = set()
    for metric in CATALOG.metrics:
        for step_ms, group_by in [(HOUR, ()), (HOUR, ("country",)), (5 * MINUTE, ("user",))]:
            served, seen = _served(storage, metric, step_ms, group_by)
            expected = reference(metric, events, step_ms, group_by)
            assert served.keys() == expected.keys(), (metric.name, step_ms, group_by)
            for key, (value, sessions) in expected.items():
                assert served[key][0] == pytest.approx(value), (metric.name, key)
                assert served[key][1] == sessions, (metric.name, key)
            sources |= seen
    return sources


def test_sessions_from_either_layer_equal_sessions_computed_event_by_event(
    clean: tuple[Settings, Storage],
) -> None:
    settings, storage = clean
    rng = random.Random(5)
    events = _stream(rng)
    assert len(events) > 100
    _run_speed(storage, CATALOG, events, rng)
    assert _check(storage, events) == {"speed"}

    # Batch takes over the first part: sessions that cross its horizon merge windows
    # of both layers, neither missing nor counted twice.
    cut = MIDNIGHT + 20 * MINUTE
    # The archive here is written by hand, not behind the speed layer's checkpoints
    # (which would cap the horizon at what the archive holds of each partition).
    storage.command(f"TRUNCATE TABLE {storage.database}.speed_checkpoints")
    early = sorted((e for e in events if e["ts"] < cut), key=lambda e: e["ts"])
    write_partition_range(archive_root(settings.data_dir), "t", 0, list(enumerate(early)))
    result = recompute(settings, CATALOG, storage)
    assert result.horizon is not None
    assert _check(storage, events) >= {"batch", "mixed"}

    # All of it from batch (the clock event, a day later, only moves the horizon).
    clock = {
        "event_id": "clock",
        "ts": MIDNIGHT + DAY + HOUR,
        "type": "view",
        "user": "clock",
        "country": "XX",
        "amount": 1.0,
    }
    rest = sorted((e for e in events if e["ts"] >= cut), key=lambda e: e["ts"])
    write_partition_range(archive_root(settings.data_dir), "t", 1, list(enumerate([*rest, clock])))
    recompute(settings, CATALOG, storage)
    assert _check(storage, events) == {"batch"}


def test_a_late_event_within_the_lateness_joins_two_sessions(
    clean: tuple[Settings, Storage],
) -> None:
    _, storage = clean
    metric = CATALOG.metrics[0]
    agg = PartitionAggregator([metric], lateness_ms=HOUR)
    store = SpeedStore(storage, generation=0)
    t = MIDNIGHT + HOUR

    def send(offset: int, ts: int) -> None:
        agg.add(
            offset,
            [{"event_id": f"j{offset}", "ts": ts, "type": "view", "user": "u", "country": "DE"}],
            now_ms=2**50,
        )
        store.write("t:0", agg.drain(), agg.checkpoint())

    send(0, t)
    send(1, t + 15 * MINUTE)  # 15 minutes later: a second session
    assert _served(storage, metric, MINUTE, ())[0] == {
        ((), t): (1.0, 1),
        ((), t + 15 * MINUTE): (1.0, 1),
    }
    send(2, t + 8 * MINUTE)  # out of order, within the lateness: it bridges the gap
    assert _served(storage, metric, MINUTE, ())[0] == {((), t): (3.0, 1)}
    send(3, t + 3 * HOUR)  # the watermark passes: an event at t + 30 m is too late
    late = agg.add(
        4,
        [{"event_id": "j4", "ts": t + 30 * MINUTE, "type": "view", "user": "u", "country": "DE"}],
        now_ms=2**50,
    )
    assert len(late.late) == 1  # to the late-events topic; batch will correct it
    store.write("t:0", agg.drain(), agg.checkpoint())
    assert _served(storage, metric, MINUTE, ())[0] == {
        ((), t): (3.0, 1),
        ((), t + 3 * HOUR): (1.0, 1),
    }
