"""Retiring a dead log epoch against real chDB and real archive files: a SIGKILLed
epoch's speed rows (counted from events that never reached the archive, missing events
the archive got after the last speed flush) become equal to the archive, and its frozen
checkpoints stop capping the batch horizon, bounding the final-bucket cache and showing
as lag."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from batch_layer.jobs.recompute import recompute
from serving.app import create_app
from serving.final_buckets import FinalBucketCache
from serving.queries import MetricReader, SeriesRequest
from serving.tail_buckets import TailBucketCache
from speed_layer.aggregator import PartitionAggregator
from speed_layer.recovery import retire_dead_epochs
from speed_layer.store import SpeedStore
from stratum.archive import archive_root, write_partition_range
from stratum.metrics import parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from tests.integration.batch_support import VIEW_TABLES, own_database, reset_batch_state

pytestmark = pytest.mark.integration
MINUTE = 60_000
LATENESS = MINUTE
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
DEAD, CURRENT = "1793491000000", "1793492000000"
PER_MESSAGE = 10  # events per log message, 2 s apart: a message covers 20 s
CATALOG = parse_catalog(
    {
        "metric": [
            {"name": "events", "aggregation": "count", "dimensions": ["country"]},
            {
                "name": "cheapest",
                "aggregation": "min",
                "field": "amount",
                "dimensions": ["country"],
            },
        ]
    }
)
Message = list[dict[str, Any]]


@pytest.fixture(scope="module")
def own(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Settings, Storage]]:
    with own_database(session_dir, clickhouse_url, "retire") as (settings, storage):
        speed = settings.speed.model_copy(update={"allowed_lateness_ms": LATENESS})
        yield settings.model_copy(update={"speed": speed}), storage


def _messages(prefix: str, start_ms: int, count: int) -> list[Message]:
    return [
        [
            {
                "event_id": f"{prefix}-{m}-{i}",
                "ts": start_ms + (m * PER_MESSAGE + i) * 2_000,
                "type": "view",
                "country": ("DE", "FR")[i % 2],
                "amount": float((m * 7 + i) % 50 + 1),
            }
            for i in range(PER_MESSAGE)
        ]
        for m in range(count)
    ]


def _speed(storage: Storage, source: str, messages: list[Message], flush_every: int) -> None:
    """The speed layer's own aggregation and upserts, flushing every few messages."""
    agg = PartitionAggregator(list(CATALOG.metrics), LATENESS)
    store = SpeedStore(storage, generation=0)
    for offset, events in enumerate(messages):
        agg.add(offset, events, now_ms=2**50)
        if offset % flush_every == flush_every - 1 or offset == len(messages) - 1:
            store.write(source, agg.drain(), agg.checkpoint())
            agg.evict_final()


def _archive(
    settings: Settings,
    epoch: str,
    partition: int,
    messages: list[Message],
    ranges: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    """Archive files of the given message ranges, as the archiver writes them."""
    root, archived = archive_root(settings.data_dir), []
    for first, last in ranges:
        pairs = [(o, e) for o in range(first, last + 1) for e in messages[o]]
        write_partition_range(root, epoch, partition, pairs)
        archived += [e for _, e in pairs]
    return archived


def _get(app: FastAPI, path: str) -> Any:
    """One request to the serving app, in process (the routes' own code, no server)."""

    async def get() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stratum") as client:
            response = await client.get(path)
            response.raise_for_status()
            return response.json()

    return asyncio.run(get())


def _served(storage: Storage, start: int, end: int) -> dict[tuple[str, str, int], Any]:
    reader = MetricReader(
        storage, cache=FinalBucketCache(capacity=0), tail_cache=TailBucketCache(capacity=0)
    )
    return {
        (m.name, s.group["country"], p.t_ms): p.value
        for m in CATALOG.metrics
        for s in reader.series(SeriesRequest(m, start, end, MINUTE, ("country",)))[0]
        for p in s.points
    }


def _expected(events: list[dict[str, Any]]) -> dict[tuple[str, str, int], Any]:
    counts: dict[tuple[str, str, int], Any] = defaultdict(int)
    lows: dict[tuple[str, str, int], Any] = {}
    for e in events:
        minute = e["ts"] // MINUTE * MINUTE
        counts[("events", e["country"], minute)] += 1
        key = ("cheapest", e["country"], minute)
        lows[key] = min(lows.get(key, e["amount"]), e["amount"])
    return {**{k: float(v) for k, v in counts.items()}, **lows}


def test_a_dead_epoch_is_reconciled_with_its_archive_and_stops_counting_as_progress(
    own: tuple[Settings, Storage],
) -> None:
    settings, storage = own
    reset_batch_state(settings, storage, (*VIEW_TABLES, "retired_epochs", "kv"))
    # Partition 0 was SIGKILLed with its last 7 messages counted but not archived: minute 5
    # is final with an orphan message, minutes 6 and 7 hold nothing archived at all.
    # Partition 1's archive got 8 messages past its last speed flush: minutes 4 to 7 were
    # still open at death and lack them.
    p0, p1 = _messages("a", T0, 24), _messages("b", T0, 24)
    _speed(storage, f"{DEAD}:0", p0, flush_every=4)
    _speed(storage, f"{DEAD}:1", p1[:16], flush_every=4)
    archived = _archive(settings, DEAD, 0, p0, [(0, 9), (10, 16)])
    archived += _archive(settings, DEAD, 1, p1, [(0, 9), (10, 23)])
    span = (T0, T0 + 10 * MINUTE)
    expected = _expected(archived)
    before = _served(storage, *span)
    assert before != expected  # what a SIGKILL leaves: orphans served, archived events not
    api = create_app(settings, CATALOG, storage)
    assert {p["source_id"] for p in _get(api, "/v1/pipeline")["partitions"]} == {
        f"{DEAD}:0",
        f"{DEAD}:1",
    }

    done = retire_dead_epochs(settings, CATALOG, storage, CURRENT)

    assert [(r.epoch, r.sources) for r in done] == [(DEAD, 2)]
    assert done[0].removed == 8  # partition 0: 2 metrics x minutes 6, 7 x 2 countries
    assert _served(storage, *span) == expected
    assert _get(api, "/v1/pipeline")["partitions"] == []  # no lag for a dead epoch
    assert _get(api, "/v1/status")["speed"]["partitions"] == 0
    assert retire_dead_epochs(settings, CATALOG, storage, CURRENT) == []  # idempotent
    storage.command(f"TRUNCATE TABLE {storage.database}.retired_epochs")  # died before
    assert [r.epoch for r in retire_dead_epochs(settings, CATALOG, storage, CURRENT)] == [DEAD]
    assert _served(storage, *span) == expected  # ... its record: the redo changes nothing

    # The new epoch runs on: its progress alone bounds the horizon and the cache.
    fresh = _messages("c", T0 + 10 * MINUTE, 9)
    _speed(storage, f"{CURRENT}:2", fresh, flush_every=3)
    archived += _archive(settings, CURRENT, 2, fresh, [(0, 8)])
    newest = max(e["ts"] for e in archived)
    result = recompute(settings, CATALOG, storage)
    assert result.horizon is not None
    assert int(result.horizon.timestamp() * 1000) == (newest - LATENESS) // MINUTE * MINUTE
    assert _served(storage, T0, T0 + 15 * MINUTE) == _expected(archived)
    freeze = MetricReader(storage).snapshot(CATALOG.metrics[0]).freeze
    assert freeze.until_ms == newest - LATENESS  # not the dead epoch's stopped watermark
    assert [p["source_id"] for p in _get(api, "/v1/pipeline")["partitions"]] == [f"{CURRENT}:2"]
