"""One start-up path per role, shared by ``stratum up`` (:mod:`stratum.app.platform`) and
the separate processes (:mod:`stratum.app.processes`): each ``start_*`` starts its part,
registers its stop on the caller's exit stack and returns its health probe, which the
caller serves on ``/v1/health`` (one process) or writes as a heartbeat (its own process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from batch_layer.scheduler import BatchScheduler
from speed_layer.app import SpeedLayer, create_speed_layer
from speed_layer.recovery import retire_dead_epochs as retire
from speed_layer.replay_service import ReplayService
from stratum.broker import EmbeddedBroker
from stratum.health import ComponentHealth, Probe, Status
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.sources import BUILTIN
from stratum.storage import open_storage
from stratum.storage.jobs import JobConflictError
from stratum.topics import ensure_topics, missing_source_topics

if TYPE_CHECKING:
    from speed_layer.workers import SpeedWorker

log = logging.getLogger(__name__)
STALL_AFTER_S = 60.0  # no stored flush for this long, with messages waiting: stalled


class LogConnection:
    """Where the log is: the embedded broker's address, or the configured bootstrap."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: EmbeddedBroker | None = None
        url = settings.kafka.url
        self.bootstrap = "" if url == "embedded" else url.removeprefix("kafka://")
        self.epoch = "0"

    async def start(self) -> None:
        if self.settings.kafka.embedded:
            self.broker = EmbeddedBroker(self.settings.data_dir)
            await asyncio.to_thread(self.broker.start)
            self.bootstrap, self.epoch = self.broker.bootstrap, self.broker.epoch
        await ensure_topics(self.settings.kafka, self.bootstrap)

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()


async def start_speed(
    settings: Settings,
    catalog: MetricCatalog,
    log_conn: LogConnection,
    stack: AsyncExitStack,
    definitions_version: int | None = None,
) -> SpeedLayer:
    """The speed layer and archiver on a started log, after the ended epochs' speed rows
    are retired; the Kappa replay runner beside it when ``settings.speed.run_replays``.
    ``definitions_version``: the stored version ``catalog`` is (live definitions)."""
    await retire_dead_epochs(settings, catalog, log_conn)
    # A source whose topic is missing is left unread and reported (the worker's health),
    # not fatal: definitions change at run time, and the built-in topic and the other
    # sources have nothing to do with it.
    missing = await missing_source_topics(settings.kafka, log_conn.bootstrap, catalog)
    for problem in missing.values():
        log.error("%s", problem)
    speed = create_speed_layer(
        settings,
        catalog,
        open_storage(settings),
        log_conn.bootstrap,
        log_conn.epoch,
        unavailable=missing,
    )
    for worker in speed.sources.values():  # the built-in one and each source's
        worker.definitions_version = definitions_version
    task = asyncio.create_task(speed.start(), name="speed-layer")  # returns after join
    stack.push_async_callback(_stop_speed, speed, task)
    if settings.speed.run_replays:
        replays = ReplayService(
            settings, catalog, open_storage(settings), log_conn.bootstrap, log_conn.epoch
        )
        replay_task = asyncio.create_task(replays.run_forever(), name="replays")
        stack.callback(replay_task.cancel)
    return speed


def speed_probe(speed: SpeedLayer) -> Probe:
    return lambda: speed_health(speed)


def speed_health(speed: SpeedLayer) -> ComponentHealth:
    unread = dict(speed.unavailable)
    for name, topic in speed.speed.defined_sources.items():
        if name not in speed.sources and name not in unread:  # added while running
            unread[name] = (
                f"source {name!r} (topic {topic!r}) defined but not read: restart the workers"
            )
    return with_unread_sources(workers_health(speed.sources), unread)


def workers_health(workers: Mapping[str, SpeedWorker]) -> ComponentHealth:
    """The built-in worker's health and each source worker's: the worst status; the
    problems first, each source's named (``source 'orders': flush failing: ...``), then
    the built-in worker's detail (its partitions and lag when all is well)."""
    builtin = workers.get(BUILTIN)
    own = worker_health(builtin) if builtin is not None else ComponentHealth(status="ok")
    problems = []
    for name, worker in workers.items():
        if name == BUILTIN:
            continue
        found = worker_health(worker)
        if found.status != "ok":
            problems.append(
                ComponentHealth(status=found.status, detail=f"source {name!r}: {found.detail}")
            )
    if not problems:
        return own
    statuses = {own.status, *(p.status for p in problems)}
    status: Status = "down" if "down" in statuses else "degraded"
    details = [p.detail for p in problems]
    if own.detail:
        details.append(own.detail)
    return ComponentHealth(status=status, detail="; ".join(details))


def with_unread_sources(health: ComponentHealth, unread: Mapping[str, str]) -> ComponentHealth:
    """The worker's ``health``, degraded (down stays down) while sources are left unread
    (``unread``: name -> why, e.g. a missing topic); why comes first."""
    if not unread:
        return health
    return ComponentHealth(
        status="down" if health.status == "down" else "degraded",
        detail="; ".join([*unread.values(), health.detail]),
    )


def start_batch(
    settings: Settings,
    catalog: MetricCatalog,
    stack: AsyncExitStack,
    first_batch_after_s: float | None = None,
) -> tuple[BatchScheduler, Probe]:
    """The batch scheduler (scheduled and requested recomputes), and optionally a first
    run ``first_batch_after_s`` after start (the demo)."""
    scheduler = BatchScheduler(settings, catalog)
    scheduler.start()
    stack.push_async_callback(scheduler.shutdown)
    if first_batch_after_s is not None:
        delayed = asyncio.create_task(_first_batch(scheduler, first_batch_after_s))
        stack.callback(delayed.cancel)
    return scheduler, lambda: ComponentHealth(
        status="ok", detail="running a batch job" if scheduler.busy else "idle"
    )


async def retire_dead_epochs(
    settings: Settings, catalog: MetricCatalog, log_conn: LogConnection
) -> None:
    """Before the speed layer consumes a new embedded log: reconcile the ended epochs'
    speed rows with their archive and retire them (:mod:`speed_layer.recovery`)."""
    if not settings.kafka.embedded:
        return
    storage = open_storage(settings)
    try:
        await asyncio.to_thread(retire, settings, catalog, storage, log_conn.epoch)
    finally:
        storage.close()


async def _first_batch(scheduler: BatchScheduler, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    try:
        await asyncio.to_thread(scheduler.jobs.submit, "batch", "schedule")
    except JobConflictError:
        pass


async def _stop_speed(speed: SpeedLayer, task: asyncio.Task[None]) -> None:
    try:
        await speed.stop()
    finally:
        task.cancel()


def worker_health(worker: SpeedWorker) -> ComponentHealth:
    if worker.broken:
        return ComponentHealth(
            status="down", detail=f"aggregation failed, restart the worker: {worker.broken}"
        )
    if worker.last_flush_error:
        return ComponentHealth(status="down", detail=f"flush failing: {worker.last_flush_error}")
    if worker.archiver.last_flush_error:
        return ComponentHealth(
            status="down", detail=f"archive writes failing: {worker.archiver.last_flush_error}"
        )
    stalled = stalled_for_s(worker)
    if stalled is not None:
        return ComponentHealth(
            status="degraded",
            detail=f"stalled: no flush stored for {stalled:.0f} s while "
            f"{len(worker.acks.pending)} message(s) wait",
        )
    partitions = worker.partitions
    if not partitions:
        return ComponentHealth(status="ok", detail="waiting for events")
    lag_s = max((time.time() * 1000 - p.max_event_ms) / 1000 for p in partitions.values())
    return ComponentHealth(
        status="ok", detail=f"{len(partitions)} partition(s), event-time lag {lag_s:.1f} s"
    )


def stalled_for_s(worker: SpeedWorker, now: float | None = None) -> float | None:
    """Seconds since the worker's last stored flush, when it holds messages it has not
    acknowledged for far longer than its flush interval (a hung write, a stopped timer,
    a hand-off pause that never ended); None otherwise. A failing flush says so itself."""
    if not worker.acks.pending or not worker.last_flush_wall:
        return None
    age = (time.time() if now is None else now) - worker.last_flush_wall
    limit = max(STALL_AFTER_S, 20 * worker.settings.speed.flush_interval_s)
    return age if age > limit else None
