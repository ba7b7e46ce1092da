"""The BatchScheduler inside a real event loop: submitted jobs run to a recorded outcome."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from batch_layer.scheduler import BatchScheduler
from stratum.app.processes import run_batch
from stratum.archive import archive_root
from stratum.metrics import load_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from stratum.storage.jobs import (
    INTERRUPTED,
    Job,
    JobConflictError,
    JobRun,
    JobStore,
    request_cancel,
)
from tests.integration.batch_support import reset_batch_state, write_file

pytestmark = pytest.mark.integration

MINUTE = 60_000
H0 = int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1000)
WAIT_S = 30.0


@pytest.fixture
def clean_batch(settings: Settings, storage: Storage) -> Iterator[None]:
    reset_batch_state(settings, storage)
    yield
    reset_batch_state(settings, storage)


async def _wait_done(store: JobStore, job_id: str) -> Job:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = await asyncio.to_thread(store.get, job_id)
        if job is not None and not job.active:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} still active after {WAIT_S} s: {job}")


def test_a_submitted_job_runs_and_records_its_outcome(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    write_file(
        settings,
        "e1",
        0,
        [
            (
                i,
                {
                    "event_id": f"e{i}",
                    "ts": H0 + i * 10_000,
                    "type": "view",
                    "country": "DE",
                    "latency_ms": float(i % 7),
                },
            )
            for i in range(120)
        ],
    )
    store = JobStore(storage)
    stale = store.save(
        Job(kind="batch", trigger="cli", state="running", started_at=datetime.now(UTC))
    )

    async def scenario() -> tuple[Job, Job, JobConflictError]:
        scheduler = BatchScheduler(settings, load_catalog(settings.metrics_file))
        scheduler.start()
        try:
            job = await asyncio.to_thread(store.submit, "batch", "api", {"why": "test"})
            with pytest.raises(JobConflictError) as conflict:
                await asyncio.to_thread(store.submit, "batch", "admin")
            done = await _wait_done(store, job.job_id)
        finally:
            await scheduler.shutdown()
        stale_now = await asyncio.to_thread(store.get, stale.job_id)
        assert stale_now is not None
        return done, stale_now, conflict.value

    done, stale_now, conflict = asyncio.run(scenario())

    assert conflict.job_id == done.job_id
    assert (stale_now.state, stale_now.error) == ("failed", INTERRUPTED)
    assert done.state == "succeeded", done.error
    assert (done.kind, done.trigger, done.params, done.error) == (
        "batch",
        "api",
        {"why": "test"},
        "",
    )
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    assert done.created_at.tzinfo is UTC
    last_ts = H0 + 119 * 10_000
    expected_horizon = (last_ts - settings.speed.allowed_lateness_ms) // MINUTE * MINUTE
    assert done.horizon == datetime.fromtimestamp(expected_horizon / 1000, tz=UTC)
    assert done.rows_in == 120
    assert done.rows_out == storage.query("SELECT count() FROM stratum.batch_windows")[0][0] > 0
    assert done.units_done == done.units_total > 0
    assert store.latest_horizon() == done.horizon
    jobs, total = store.list(kind="batch")
    assert total == 2 and [j.job_id for j in jobs] == [done.job_id, stale.job_id]
    assert store.active("batch") is None


def test_a_failing_run_is_recorded_with_its_error(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    broken = archive_root(settings.data_dir) / "date=2026-11-20" / "hour=10"
    broken.mkdir(parents=True)
    (broken / "events-e1-p0-0-9.parquet").write_bytes(b"not parquet at all")
    store = JobStore(storage)

    async def scenario() -> Job:
        scheduler = BatchScheduler(settings, load_catalog(settings.metrics_file))
        scheduler.start()
        try:
            job = await asyncio.to_thread(store.submit, "batch", "cli")
            return await _wait_done(store, job.job_id)
        finally:
            await scheduler.shutdown()

    failed = asyncio.run(scenario())

    assert failed.state == "failed"
    assert failed.finished_at is not None
    assert "Error" in failed.error and " (at " in failed.error and "recompute.py" in failed.error
    assert store.latest_horizon() is None
    assert store.submit("batch", "cli").state == "queued"  # a failed job does not block


def test_scheduled_runs_submit_one_job_at_a_time(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    write_file(
        settings,
        "e1",
        0,
        [(i, {"event_id": f"s{i}", "ts": H0 + i * 30_000, "type": "click"}) for i in range(50)],
    )
    fast = settings.model_copy(
        update={"batch": settings.batch.model_copy(update={"interval_s": 0.2})}
    )
    store = JobStore(storage)

    async def scenario() -> list[Job]:
        scheduler = BatchScheduler(fast, load_catalog(settings.metrics_file))
        scheduler.start()
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                jobs, _ = await asyncio.to_thread(store.list, "batch")
                if sum(j.state == "succeeded" for j in jobs) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await scheduler.shutdown()
        jobs, _ = await asyncio.to_thread(store.list, "batch")
        return jobs

    jobs = asyncio.run(scenario())

    assert sum(j.state == "succeeded" for j in jobs) >= 2
    assert {j.trigger for j in jobs} == {"schedule"}
    assert {j.state for j in jobs} <= {"succeeded", "queued", "failed"}
    assert sum(j.active for j in jobs) <= 1  # never a second one queued beside the first
    assert all(j.error in ("", INTERRUPTED) for j in jobs)


def test_run_batch_stops_on_sigterm(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    write_file(settings, "e1", 0, [(0, {"event_id": "x", "ts": H0, "type": "view"})])
    store = JobStore(storage)

    async def scenario() -> Job:
        runner = asyncio.create_task(run_batch(settings))
        job = await asyncio.to_thread(store.submit, "batch", "cli")
        done = await _wait_done(store, job.job_id)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(runner, WAIT_S)
        return done

    done = asyncio.run(scenario())
    assert done.state == "succeeded"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_cancel_that_races_the_pick_up_is_honoured(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    """The admin API flags a queued job and then marks it cancelled; a runner that picked
    the job up in between must not run it (its progress rows would hide the cancel)."""
    write_file(
        settings,
        "e1",
        0,
        [(i, {"event_id": f"r{i}", "ts": H0 + i * 10_000, "type": "view"}) for i in range(10)],
    )
    store = JobStore(storage)
    job = store.submit("batch", "api")
    request_cancel(storage, job.job_id)  # the flag lands; the cancelled row not yet

    async def scenario() -> Job:
        scheduler = BatchScheduler(settings, load_catalog(settings.metrics_file))
        scheduler.start()
        try:
            return await _wait_done(store, job.job_id)
        finally:
            await scheduler.shutdown()

    done = asyncio.run(scenario())
    assert done.state == "cancelled" and done.error == "cancelled before it ran"
    assert store.latest_horizon() is None  # nothing ran, nothing served changed


def test_start_marks_a_job_running_unless_it_was_flagged(
    storage: Storage, clean_batch: None
) -> None:
    store = JobStore(storage)
    plain = store.create("replay", "api")
    started = store.start(plain)
    assert started is not None and started.state == "running"
    assert store.get(plain.job_id).state == "running"  # type: ignore[union-attr]
    store.save(started.model_copy(update={"state": "failed"}))
    flagged = store.create("replay", "api")
    request_cancel(storage, flagged.job_id)
    assert store.start(flagged) is None
    assert store.get(flagged.job_id).state == "cancelled"  # type: ignore[union-attr]


def test_a_job_run_keeps_its_progress_and_ends_each_way(
    storage: Storage, clean_batch: None
) -> None:
    """JobRun, which the batch, replay and definitions runners share: progress rows
    accumulate, and each ending writes its state, a finish time and its error."""
    store = JobStore(storage)
    outcomes: dict[str, Job] = {}
    for ending in ("succeeded", "cancelled", "failed"):
        run = JobRun(store, store.create("replay", "api", {"from_ms": 5}))
        assert run.begin()
        run.update(units_done=1, units_total=3, params={**run.job.params, "phase": "log"})
        try:
            raise ValueError("bad\nrange")
        except ValueError as exc:
            if ending == "succeeded":
                run.succeeded(units_done=3)
            elif ending == "cancelled":
                run.cancelled("cancelled: nothing changed")
            else:
                assert run.failed(exc).startswith("ValueError: bad range (at ")
        outcomes[ending] = store.get(run.job.job_id)  # type: ignore[assignment]
    for ending, job in outcomes.items():
        assert job.state == ending and job.finished_at is not None
        assert job.params == {"from_ms": 5, "phase": "log"} and job.units_total == 3
    assert outcomes["succeeded"].units_done == 3 and outcomes["succeeded"].error == ""
    assert outcomes["cancelled"].error == "cancelled: nothing changed"
    assert "test_batch_scheduler.py" in outcomes["failed"].error
    flagged = store.create("replay", "api")
    request_cancel(storage, flagged.job_id)
    assert not JobRun(store, flagged).begin()
