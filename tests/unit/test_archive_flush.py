"""A failed archive write keeps its events, whatever the error: nothing is marked stored
(so acknowledged) that is not in a file, and the next successful flush writes it all.
Real Parquet in a temp dir; only the failure is injected."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import polars as pl
import pytest

from speed_layer import workers
from speed_layer.workers import ArchiveWorker
from stratum import archive
from stratum.event_frames import events_frame
from stratum.settings import Settings

FAILURES = [
    OSError(28, "No space left on device"),
    pl.exceptions.ComputeError("cannot write the frame"),
    MemoryError(),
    RuntimeError("a bug in the writer"),
]


def _frame(offsets: range) -> pl.DataFrame:
    return events_frame(
        [
            (
                o,
                {
                    "event_id": f"a{o}",
                    "ts": 1_795_309_200_000 + o,
                    "type": "view",
                    "amount": float(o),
                },
            )
            for o in offsets
        ]
    )


def _archived_ids(root: Path) -> list[str]:
    files = archive.list_files(root)
    return (
        sorted(pl.concat([pl.read_parquet(f) for f in files])["event_id"].to_list())
        if files
        else []
    )


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_a_failed_write_keeps_its_events_for_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    worker = ArchiveWorker(Settings(data_dir=tmp_path), "ep")
    write = archive.write_frame
    calls = {"n": 0}

    def failing_once(*args: object, **kwargs: object) -> list[Path]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise failure
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "write_frame", failing_once)
    worker.add(0, _frame(range(0, 3)), 2)
    assert asyncio.run(worker.flush()) is False
    assert worker.stored == {}  # nothing acknowledged for the lost write
    assert worker.buffered == 3
    assert worker.last_flush_error and type(failure).__name__ in worker.last_flush_error
    assert _archived_ids(worker.root) == []

    monkeypatch.setattr(workers, "retry_delay_s", lambda failures: 0.0)
    worker._retry_at = 0.0  # noqa: SLF001 - the back-off is tested below
    worker.add(0, _frame(range(3, 5)), 4)
    assert asyncio.run(worker.flush()) is True
    assert worker.stored == {0: 4}
    assert worker.last_flush_error is None and worker.buffered == 0
    assert _archived_ids(worker.root) == [f"a{o}" for o in range(5)]


def test_failed_writes_back_off_instead_of_retrying_every_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = ArchiveWorker(Settings(data_dir=tmp_path), "ep")
    calls = {"n": 0}

    def failing(*_: object, **__: object) -> list[Path]:
        calls["n"] += 1
        raise RuntimeError("still broken")

    monkeypatch.setattr(archive, "write_frame", failing)
    worker.add(0, _frame(range(0, 2)), 1)
    assert asyncio.run(worker.flush()) is False
    assert asyncio.run(worker.flush()) is False  # within the back-off: not tried
    assert calls["n"] == 1
    assert worker.stored == {} and worker.buffered == 2


def test_a_flush_counts_as_stored_only_after_the_flushes_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes run outside the worker's lock now, so two can overlap: the second waits for
    the first, or its later offsets would be marked stored (and acknowledged) while the
    first's file is still being written."""
    worker = ArchiveWorker(Settings(data_dir=tmp_path), "ep")
    release = threading.Event()
    write = archive.write_frame

    def first_one_slow(*args: object, **kwargs: object) -> list[Path]:
        if not release.is_set():
            assert release.wait(10)
        return write(*args, **kwargs)  # type: ignore[arg-type]

    async def scenario() -> None:
        monkeypatch.setattr(archive, "write_frame", first_one_slow)
        worker.add(0, _frame(range(0, 3)), 2)
        first = asyncio.create_task(worker.flush())
        await asyncio.sleep(0.1)
        worker.add(0, _frame(range(3, 5)), 4)
        second = asyncio.create_task(worker.flush())
        await asyncio.sleep(0.2)
        assert worker.stored == {}, "the second flush claimed offsets before the first's file"
        release.set()
        assert await first and await second

    asyncio.run(scenario())
    assert worker.stored == {0: 4}
    assert _archived_ids(worker.root) == [f"a{o}" for o in range(5)]


def test_a_partition_revoked_while_its_file_is_written_is_not_marked_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = ArchiveWorker(Settings(data_dir=tmp_path), "ep")
    release = threading.Event()
    write = archive.write_frame

    def slow(*args: object, **kwargs: object) -> list[Path]:
        assert release.wait(10)
        return write(*args, **kwargs)  # type: ignore[arg-type]

    async def scenario() -> bool:
        monkeypatch.setattr(archive, "write_frame", slow)
        worker.add(0, _frame(range(0, 3)), 2)
        worker.add(1, _frame(range(0, 2)), 1)
        flushing = asyncio.create_task(worker.flush())
        await asyncio.sleep(0.1)
        worker.forget({1})
        release.set()
        return await flushing

    assert asyncio.run(scenario()) is True
    assert worker.stored == {0: 2}
