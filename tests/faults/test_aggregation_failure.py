"""Fail-stop: if aggregating a batch fails (a bug), the worker stores and acknowledges
nothing more, stops taking messages and reports itself down, so a restart resumes from
the last consistent checkpoint instead of storing a half-applied batch."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from speed_layer.workers import SpeedWorker
from stratum.app.roles import worker_health
from stratum.metrics import load_catalog
from stratum.producer import EventProducer
from stratum.storage import generations, open_storage
from tests.stack import stack_settings

pytestmark = pytest.mark.integration


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None  # seconds, as Faust's message carries it


@dataclass
class _Event:
    message: _Message
    value: bytes


@dataclass
class _Stream:
    acked: list[int] = field(default_factory=list)

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


def test_a_failing_batch_stops_the_worker_before_it_stores_anything(
    tmp_path: Path, clickhouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own database and archive: checkpoints of a source with no archive would cap the
    # batch horizon of the tests sharing the session's.
    settings = stack_settings(tmp_path, "failstop", clickhouse_url, 0)
    storage = open_storage(settings)
    catalog = load_catalog(settings.metrics_file)
    stream = _Stream()

    def event(offset: int) -> _Event:
        line = {"event_id": f"f{offset}", "ts": 1_795_309_200_000, "type": "view"}
        return _Event(_Message(settings.kafka.topic, 0, offset), orjson.dumps(line))

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug in the fold")

    async def scenario() -> SpeedWorker:
        live = generations.live_generation(storage)
        worker = SpeedWorker(
            settings,
            catalog,
            SpeedStore(storage, generation=live),
            EventProducer(settings.kafka, "127.0.0.1:9"),
            "failstop",
        )
        worker.acks.stream = stream
        await worker.handle(event(0))
        await worker.flush()  # a healthy batch is stored (windows, then archive) and acked
        await worker.flush_archive()
        assert stream.acked == [0]
        monkeypatch.setattr(PartitionAggregator, "_apply_groups", explode)
        await worker.handle(event(1))
        with pytest.raises(RuntimeError, match="a bug in the fold"):
            await worker.flush()
        await worker.flush()
        await worker.flush_archive()
        blocked = asyncio.create_task(worker.handle(event(2)))
        await asyncio.sleep(0.2)
        assert not blocked.done()  # no more messages taken
        blocked.cancel()
        return worker

    worker = asyncio.run(scenario())
    assert stream.acked == [0]
    assert worker.broken is not None and "a bug in the fold" in worker.broken
    health = worker_health(worker)
    assert health.status == "down" and "restart the worker" in health.detail
    stored = storage.query(
        f"SELECT max(through_offset) FROM {storage.database}."
        "speed_checkpoints WHERE source_id = 'failstop:0'"
    )[0][0]
    assert stored == 0  # the checkpoint never claimed the failed batch
