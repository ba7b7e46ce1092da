"""APScheduler wiring for batch runs: when to run, and recording each run as a job.

Two scheduler jobs on an ``AsyncIOScheduler``:

- every ``settings.batch.interval_s``: submit a batch job (trigger ``schedule``); skipped
  quietly while one is queued or running. ``settings.batch.enabled = false`` turns only
  this off: jobs submitted through the API, the admin page or the CLI still run.
- every second: pick the oldest queued batch job and run it in a worker thread
  (``asyncio.to_thread``), at most one at a time, recording running -> succeeded/failed.

The run itself (mark running, recompute, record the outcome) is one synchronous call in
the worker thread, so its outcome is recorded even if the awaiting task is cancelled.
Works inside an already running loop (``stratum up``, uvicorn lifespan: ``start()`` then
``await shutdown()``) and standalone (``stratum batch``: :func:`stratum.app.processes.run_batch`).
Run one BatchScheduler per deployment: two would both pick up the same queued job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from batch_layer.errors import BatchCancelledError, BatchInterruptedError
from batch_layer.jobs.recompute import RecomputeProgress, recompute
from batch_layer.planning import options_from_params
from stratum import telemetry
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage import Storage, open_storage
from stratum.storage.definitions import DefinitionStore, startup_catalog
from stratum.storage.jobs import (
    INTERRUPTED,
    Job,
    JobConflictError,
    JobRun,
    JobStore,
    cancel_requested,
    utc_now,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
PURGE_INTERVAL_S = 60.0  # how often deleted metrics past their retention are dropped


class BatchScheduler:
    """Schedules, picks up and runs batch jobs; owns its own Storage and JobStore."""

    def __init__(self, settings: Settings, catalog: MetricCatalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._storage: Storage | None = None
        self._jobs: JobStore | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._db_lock = asyncio.Lock()  # poll and submit share one client: one at a time
        self._stopping = threading.Event()

    @property
    def jobs(self) -> JobStore:
        if self._jobs is None:
            raise RuntimeError("BatchScheduler.start() has not been called")
        return self._jobs

    @property
    def busy(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    def start(self) -> None:
        """Open storage, close jobs a killed process left running, start the timers.
        Call from inside the running event loop."""
        self._storage = open_storage(self._settings)
        self._jobs = JobStore(self._storage)
        startup_catalog(self._storage, self._catalog, str(self._settings.metrics_file))
        for job in self._jobs.fail_stale_running("batch"):
            log.warning(
                "batch job %s was left running by a stopped process: marked failed", job.job_id
            )
        # APScheduler logs every execution at INFO; the 1 s poll would drown our lines.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        if self._settings.batch.enabled:
            self._scheduler.add_job(
                self._submit_scheduled,
                "interval",
                id="batch-schedule",
                seconds=self._settings.batch.interval_s,
                **common,
            )
        self._scheduler.add_job(
            self._poll, "interval", id="batch-poll", seconds=POLL_INTERVAL_S, **common
        )
        self._scheduler.add_job(
            self._purge_deleted,
            "interval",
            id="definitions-purge",
            seconds=PURGE_INTERVAL_S,
            **common,
        )
        self._scheduler.start()
        log.info(
            "batch scheduler started (every %.0f s%s)",
            self._settings.batch.interval_s,
            "" if self._settings.batch.enabled else ", scheduled runs disabled",
        )

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the timers; a run in progress stops at its next unit and is recorded as
        failed (interrupted). Waits for it up to ``timeout_s``."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._run_task is not None and not self._run_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._run_task), timeout_s)
            except TimeoutError:
                log.warning("batch run still busy after %.0f s; leaving it", timeout_s)
        if self._storage is not None:
            self._storage.close()

    async def _submit_scheduled(self) -> None:
        if self._stopping.is_set():
            return
        async with self._db_lock:
            if self.busy:  # checked under the lock: _poll starts a run while holding it
                return
            try:
                job = await asyncio.to_thread(self.jobs.submit, "batch", "schedule")
            except JobConflictError as exc:
                log.debug("scheduled batch skipped: job %s is active", exc.job_id)
                return
        log.debug("scheduled batch job %s submitted", job.job_id)

    async def _purge_deleted(self) -> None:
        """Drop the windows of metrics deleted longer ago than the retention setting."""
        if self._stopping.is_set():
            return
        async with self._db_lock:
            try:
                purged = await asyncio.to_thread(
                    DefinitionStore(self._storage_or_fail()).purge_deleted,
                    self._settings.definitions.deleted_retention_s,
                )
            except Exception:  # noqa: BLE001 - retried at the next tick
                log.exception("dropping deleted metrics' windows failed")
                return
        if purged:
            log.info("dropped the stored windows of deleted metric(s) %s", ", ".join(purged))

    async def _poll(self) -> None:
        if self.busy or self._stopping.is_set():
            return
        async with self._db_lock:
            job = await asyncio.to_thread(self.jobs.next_queued, "batch")
            if job is None or self._stopping.is_set():
                return
            self._run_task = asyncio.create_task(
                asyncio.to_thread(self._run_job, job), name=f"batch-{job.job_id}"
            )
            self._run_task.add_done_callback(_log_crash)

    def _run_job(self, job: Job) -> None:
        """Worker thread: one job from running to its outcome, recorded in its row."""
        run = JobRun(self.jobs, job)
        if not run.begin():
            log.info("batch job %s cancelled before it ran", job.job_id)
            return
        log.info("batch job %s started (trigger %s)", job.job_id, job.trigger)

        last_check = time.monotonic()

        def on_progress(step: RecomputeProgress) -> None:
            nonlocal last_check
            if step.phase != "coverage_written":
                if self._stopping.is_set():
                    raise BatchInterruptedError
                # Only a cancel that raced the pick-up (see JobStore.start) sets the flag
                # of a running batch job; honour it while nothing served has changed.
                if time.monotonic() - last_check >= 1.0:
                    last_check = time.monotonic()
                    if cancel_requested(self._storage_or_fail(), job.job_id):
                        raise BatchCancelledError
            run.update(
                units_done=step.units_done,
                units_total=step.units_total,
                rows_in=step.rows_in,
                rows_out=step.rows_out,
            )

        try:
            mode, start_ms, end_ms = options_from_params(job.params)
            # The definitions the live generation serves (they move without a restart).
            _, binding, catalog = DefinitionStore(self._storage_or_fail()).live()
            result = recompute(
                self._settings,
                catalog,
                self._storage_or_fail(),
                progress=on_progress,
                mode=mode,
                start_ms=start_ms,
                end_ms=end_ms,
                floors=binding.floors,
            )
        except BatchCancelledError:
            run.cancelled("cancelled before it completed")
            log.info("batch job %s cancelled", job.job_id)
            return
        except BatchInterruptedError:
            run.failed(INTERRUPTED)
            log.warning(
                "batch job %s stopped after %s: %s", job.job_id, _elapsed(run.job), INTERRUPTED
            )
            return
        except Exception as exc:
            telemetry.BATCH_RUNS.labels(state="failed").inc()
            error = run.failed(exc)
            log.exception("batch job %s failed after %s: %s", job.job_id, _elapsed(run.job), error)
            return
        telemetry.BATCH_RUNS.labels(state="succeeded").inc()
        telemetry.BATCH_DURATION.observe(result.duration_s)
        telemetry.BATCH_ROWS_IN.inc(result.rows_in)
        telemetry.BATCH_ROWS_OUT.inc(result.rows_out)
        run.succeeded(horizon=result.horizon, rows_in=result.rows_in, rows_out=result.rows_out)
        log.info(
            "batch job %s succeeded: %d events in, %d window rows out, horizon %s, "
            "version %s, %.2f s",
            job.job_id,
            result.rows_in,
            result.rows_out,
            result.horizon.isoformat() if result.horizon else "none (empty archive)",
            result.version,
            result.duration_s,
        )

    def _storage_or_fail(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("BatchScheduler.start() has not been called")
        return self._storage


def _log_crash(task: asyncio.Task[None]) -> None:
    """The run could not even record its outcome (e.g. ClickHouse unreachable); the job
    stays queued or running and is picked up again, or failed at the next start."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error(
            "batch runner %s could not record its job: %s", task.get_name(), exc, exc_info=exc
        )


def _elapsed(job: Job) -> str:
    if job.started_at is None:
        return "?"
    return f"{(utc_now() - job.started_at).total_seconds():.2f} s"
