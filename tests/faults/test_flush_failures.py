"""A failed speed flush keeps its data, whatever the error: the drained window rows go
back to be written again, the stored offsets do not move, nothing is acknowledged, the
worker reports the error; the next successful flush writes the rows and only then
acknowledges. Real chDB; only the failure is injected."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from speed_layer import workers
from speed_layer.store import SpeedStore
from speed_layer.workers import SpeedWorker
from stratum import archive
from stratum.app.roles import worker_health
from stratum.metrics import load_catalog
from stratum.producer import EventProducer
from stratum.settings import Settings
from stratum.storage import Storage, StorageError, generations, open_storage
from tests.stack import stack_settings

pytestmark = pytest.mark.integration
TS_MS = 1_795_309_200_000


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


def _event(settings: Settings, offset: int) -> _Event:
    line = {"event_id": f"f{offset}", "ts": TS_MS + offset, "type": "view"}
    return _Event(_Message(settings.kafka.topic, 0, offset), orjson.dumps(line))


def _worker(settings: Settings, storage: Storage, name: str, stream: _Stream) -> SpeedWorker:
    worker = SpeedWorker(
        settings,
        load_catalog(settings.metrics_file),
        SpeedStore(storage, generation=generations.live_generation(storage)),
        EventProducer(settings.kafka, "127.0.0.1:9"),
        name,
    )
    worker.acks.stream = stream
    return worker


@pytest.mark.parametrize(
    "failure",
    [StorageError("ClickHouse is unreachable"), RuntimeError("a bug in the writer"), MemoryError()],
    ids=lambda e: type(e).__name__,
)
def test_a_failed_flush_acknowledges_nothing_and_the_next_one_stores_it_all(
    tmp_path: Path, clickhouse_url: str, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    name = f"flushfail{type(failure).__name__.lower()}"
    settings = stack_settings(tmp_path, name, clickhouse_url, 0)
    storage = open_storage(settings)
    stream = _Stream()
    write_many = SpeedStore.write_many
    calls = {"n": 0}

    def failing_once(self: SpeedStore, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise failure
        write_many(self, *args, **kwargs)

    def event(offset: int) -> _Event:
        return _event(settings, offset)

    def stored_events() -> int:
        rows = storage.query(
            f"SELECT sum(count) FROM {storage.database}.speed_windows FINAL WHERE metric = 'events'"
        )
        return int(rows[0][0] or 0)

    async def scenario() -> SpeedWorker:
        worker = _worker(settings, storage, name, stream)
        monkeypatch.setattr(SpeedStore, "write_many", failing_once)
        await worker.handle(event(0))
        await worker.handle(event(1))
        await worker.flush()
        await worker.flush_archive()  # the archive is written: only the rows are missing
        assert stream.acked == []
        assert dict(worker.stored_offsets) == {}
        assert worker.last_flush_error and type(failure).__name__ in worker.last_flush_error
        assert worker_health(worker).status == "down"
        await worker.flush()  # within the back-off: nothing is tried
        assert calls["n"] == 1 and stored_events() == 0

        monkeypatch.setattr(workers, "retry_delay_s", lambda failures: 0.0)
        worker._backoff_until = 0.0  # noqa: SLF001 - the back-off itself was checked above
        await worker.handle(event(2))
        await worker.flush()
        await worker.flush_archive()
        return worker

    worker = asyncio.run(scenario())
    assert worker.last_flush_error is None
    assert dict(worker.stored_offsets) == {0: 2}
    assert stored_events() == 3  # the rows of the failed flush were written after all
    assert sorted(stream.acked) == [0, 1, 2]


def test_windows_are_flushed_while_an_archive_write_is_in_flight(
    tmp_path: Path, clickhouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive write held the worker's lock: for its ~0.1 s (200 K events) the agent
    could not aggregate and no window was flushed. It holds the archiver's own lock now;
    what both sinks hold is acknowledged once the file is written, not before."""
    settings = stack_settings(tmp_path, "flushwhilearchiving", clickhouse_url, 0)
    storage = open_storage(settings)
    stream = _Stream()
    release = threading.Event()
    write_frame = archive.write_frame

    def slow_write(*args: Any, **kwargs: Any) -> list[Path]:
        assert release.wait(30), "the test never released the archive write"
        return write_frame(*args, **kwargs)

    async def scenario() -> SpeedWorker:
        worker = _worker(settings, storage, "flushwhilearchiving", stream)
        monkeypatch.setattr(archive, "write_frame", slow_write)
        await worker.handle(_event(settings, 0))
        writing = asyncio.create_task(worker.flush_archive())
        await asyncio.sleep(0.1)  # the write is in its thread, waiting for the release
        assert not writing.done()
        await worker.handle(_event(settings, 1))
        await asyncio.wait_for(worker.flush(), 10)  # timed out while the lock was held
        assert dict(worker.stored_offsets) == {0: 1}  # both events' windows stored...
        assert stream.acked == []  # ... but no archive file yet: nothing acknowledged
        release.set()
        await writing
        assert stream.acked == [0]  # the file holds offset 0; offset 1 is still buffered
        await worker.flush_archive()
        return worker

    worker = asyncio.run(scenario())
    assert worker.archiver.stored == {0: 1}
    assert sorted(stream.acked) == [0, 1]
