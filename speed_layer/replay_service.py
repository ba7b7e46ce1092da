"""Runs queued replay jobs next to the live worker, one at a time, recording progress,
cancellation and outcome in the jobs table."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from speed_layer.replay import ReplayCancelledError, ReplayProgress, ReplayRunner
from stratum.definitions_apply import batch_floor, submit_batch
from stratum.metrics import MetricCatalog
from stratum.replay_range import range_params
from stratum.settings import Settings
from stratum.storage import Storage, generations
from stratum.storage.definitions import Binding, DefinitionStore
from stratum.storage.jobs import Job, JobRun, JobStore, cancel_requested
from stratum.storage.leases import Lease

log = logging.getLogger(__name__)
POLL_S = 1.0
SAVE_EVERY_S = 0.5
STANDBY_POLL_S = 5.0  # how often a worker without the replay lease tries to take it


class ReplayService:
    def __init__(
        self,
        settings: Settings,
        catalog: MetricCatalog,
        storage: Storage,
        bootstrap: str,
        log_epoch: str,
    ) -> None:
        self.jobs = JobStore(storage)
        self.storage = storage
        self.runner = ReplayRunner(settings, catalog, storage, bootstrap, log_epoch)
        # Every worker may run this service; the lease makes exactly one of them the
        # replay runner, and another takes over within its TTL if that one dies.
        self.lease = Lease(
            storage, "replay-runner", f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._recovered = False

    async def run_forever(self) -> None:
        while True:
            if not await asyncio.to_thread(self.lease.hold):
                self._recovered = False
                await asyncio.sleep(STANDBY_POLL_S)
                continue
            if not self._recovered:  # new holder: what the last one left running is stale
                log.info("this worker runs Kappa replays (lease %s)", self.lease.owner)
                await asyncio.to_thread(self._recover)
                self._recovered = True
            job = await asyncio.to_thread(self.jobs.next_queued, "replay")
            if job is None:
                await asyncio.sleep(POLL_S)
                continue
            await self.run_job(job)

    def _definitions_for(self, job: Job) -> bool:
        """Point the runner at the definitions the replay builds with (a definitions
        change names its version; any other replay rebuilds the live one) and at what
        the switch binds; whether a batch run follows the switch."""
        store = DefinitionStore(self.storage)
        _, binding, catalog = store.live()
        wanted = job.params.get("definitions_version")
        version = int(wanted) if isinstance(wanted, int) else binding.version
        rebuild = [str(n) for n in job.params.get("rebuild") or []]
        if version != binding.version:
            catalog = store.catalog(version)
        self.runner.catalog = catalog

        def bind(generation: int) -> None:
            floors = {k: v for k, v in binding.floors.items() if catalog.get(k) is not None}
            if rebuild:
                floor = batch_floor(self.storage)
                floors.update(dict.fromkeys(rebuild, floor))
            store.bind(generation, Binding(version, floors))

        self.runner.on_switch = bind
        return bool(job.params.get("then_batch"))

    def _recover(self) -> None:
        """A replay left running by a stopped process: fail it, drop its generation, and
        release live workers it may have paused."""
        for job in self.jobs.fail_stale_running("replay"):
            generation = job.params.get("generation")
            if isinstance(generation, int):
                generations.drop_generation(self.storage, generation)
        if generations.read_state(self.storage).handoff is not None:
            generations.request_handoff(self.storage, None)

    async def run_job(self, job: Job) -> None:
        run = JobRun(self.jobs, job)
        if not await asyncio.to_thread(run.begin):
            log.info("replay job %s cancelled before it ran", job.job_id)
            return
        from_ms = job.params.get("from_ms")
        last_save = 0.0
        last_check = 0.0
        cancel_seen = False
        log.info("replay job %s started (from %s)", job.job_id, from_ms or "the beginning")

        def on_progress(step: ReplayProgress) -> None:
            nonlocal last_save
            now = time.monotonic()
            if now - last_save < SAVE_EVERY_S and step.units_done != step.units_total:
                return
            last_save = now
            run.update(
                units_done=step.units_done,
                units_total=step.units_total,
                rows_in=step.events,
                params={
                    **run.job.params,
                    **range_params(step.rebuild_from_ms, step.carried_rows),
                    "generation": step.generation,
                    "phase": step.phase,
                },
            )

        def cancelled() -> bool:
            nonlocal last_check, cancel_seen
            now = time.monotonic()
            if not cancel_seen and now - last_check >= POLL_S:
                last_check = now
                cancel_seen = cancel_requested(self.storage, job.job_id)
                if not self.lease.hold():  # renews it; lost only after a long stall
                    raise RuntimeError("another worker took over the replay lease")
            return cancel_seen

        try:
            then_batch = await asyncio.to_thread(self._definitions_for, job)
            # The callbacks touch ClickHouse at most twice a second: a few ms each.
            generation = await self.runner.run(
                from_ms if isinstance(from_ms, int) else None, on_progress, cancelled
            )
        except ReplayCancelledError:
            await asyncio.to_thread(
                run.cancelled, "cancelled: the live generation was left untouched"
            )
            log.info("replay job %s cancelled", job.job_id)
            return
        except Exception as exc:
            await asyncio.to_thread(run.failed, exc)
            log.exception("replay job %s failed", job.job_id)  # the traceback is the log's
            return
        params = {**run.job.params, "generation": generation, "phase": "switched"}
        if then_batch:  # a changed definition: batch recomputes it now that it is served
            batch = await asyncio.to_thread(
                submit_batch, self.jobs, job.trigger, int(job.params["definitions_version"])
            )
            params["batch_job"] = batch.job_id
        await asyncio.to_thread(run.succeeded, params=params)
        log.info("replay job %s succeeded: generation %d is live", job.job_id, generation)
