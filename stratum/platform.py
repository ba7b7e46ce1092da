"""Wiring: which parts run in this process. The one place that imports every layer.

- ``up``: everything in one process (chDB allows one engine per process), the embedded
  broker if the Kafka URL is ``embedded``, and the demo generator with ``--demo``.
- ``api``: ingest + serving + dashboard against Kafka and ClickHouse.
- ``worker``: the Faust speed layer and archiver.
- ``batch``: the scheduler (see :func:`batch_layer.scheduler.run_forever`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
import uvicorn
from a2wsgi import WSGIMiddleware
from fastapi import FastAPI

from stratum.broker import EmbeddedBroker
from stratum.long_lived import freeze_startup_objects, unfreeze
from stratum.metrics import MetricCatalog, load_catalog
from stratum.settings import Settings
from stratum.storage import open_storage
from stratum.storage.definitions import startup_catalog
from stratum.topics import ensure_topics

if TYPE_CHECKING:
    from batch_layer.scheduler import BatchScheduler
    from serving.health import ComponentHealth
    from speed_layer.app import SpeedLayer
    from speed_layer.workers import SpeedWorker

log = logging.getLogger("stratum")
DEMO_SOURCES = Path(__file__).with_name("demo_sources.toml")


@dataclass
class Roles:
    broker: bool = False
    ingest: bool = True
    speed: bool = False
    batch: bool = False
    demo: bool = False
    dashboard: bool = True
    demo_backfill_s: float = 1800.0
    demo_rate_per_s: float = 200.0
    first_batch_after_s: float | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


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


def create_platform_app(settings: Settings, roles: Roles,
                        catalog: MetricCatalog | None = None) -> FastAPI:
    """The ASGI app of an ``up`` or ``api`` process, starting its parts in the lifespan."""
    from dashboard.app import create_dash
    from serving.app import create_app
    from serving.health import ComponentHealth  # noqa: F811

    if catalog is None:  # the demo adds its orders source (stratum/demo_sources.toml)
        catalog = load_catalog(settings.metrics_file, *([DEMO_SOURCES] if roles.demo else []))
    storage = open_storage(settings)
    binding, catalog = startup_catalog(storage, catalog,
                                       str(settings.metrics_file))
    log_conn = LogConnection(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _start_parts(app, settings, roles, catalog, log_conn, stack,
                               binding.version)
            freeze_startup_objects()  # also where the speed layer does not run
            stack.callback(unfreeze)
            roles.started.set()
            yield
            app.state.shutting_down = True  # ingest answers 503 from here on
            log.info("stopping Stratum ...")

    app = create_app(settings, catalog, storage, lifespan=lifespan)

    def broker_probe() -> ComponentHealth:
        if log_conn.broker is not None:
            alive = log_conn.broker.running
            return ComponentHealth(status="ok" if alive else "down",
                                   detail=f"embedded tansu at {log_conn.bootstrap}")
        producer = app.state.producer
        if producer is not None and producer.last_error:
            return ComponentHealth(status="down", detail=f"{log_conn.bootstrap}: "
                                                          f"{producer.last_error}")
        return ComponentHealth(status="ok" if producer else "unknown",
                               detail=log_conn.bootstrap)

    app.state.health.register("broker", broker_probe)
    app.state.log_connection = log_conn
    if roles.dashboard:
        dash_app = create_dash(settings, requests_pathname_prefix="/dashboard/")
        app.mount("/dashboard", WSGIMiddleware(dash_app.server))  # type: ignore[arg-type]
    return app


async def _start_parts(app: FastAPI, settings: Settings, roles: Roles, catalog: MetricCatalog,
                       log_conn: LogConnection, stack: AsyncExitStack,
                       definitions_version: int | None = None) -> None:
    from ingest.producer import EventProducer
    from serving.health import ComponentHealth  # noqa: F811

    started = time.monotonic()
    await log_conn.start()
    stack.callback(log_conn.stop)
    orders_topic = None
    if roles.demo:  # the demo's "database" has its topic before Stratum reads it
        from ingest.demo_orders import create_topic, demo_topic

        orders_topic = demo_topic(catalog)
        if orders_topic is not None:
            await create_topic(settings.kafka, log_conn.bootstrap, orders_topic)
    if settings.kafka.embedded:  # first the journal completes the dead epochs' archive,
        from stratum.durable import recover_at_start

        await recover_at_start(settings, log_conn.epoch)
    if roles.speed:  # then their speed rows are made equal to it
        await retire_dead_epochs(settings, catalog, log_conn)
    producer = EventProducer(settings.kafka, log_conn.bootstrap,
                             timeout_s=settings.api.ingest_timeout_s)
    await producer.start()
    stack.push_async_callback(producer.stop)
    durable = None
    if settings.kafka.embedded:  # a log in memory: journal what it acknowledges
        from stratum.durable import DurableAcceptance

        if roles.speed:  # the journal is pruned by what the in-process speed layer stores
            durable = DurableAcceptance(settings, log_conn.epoch, producer)
            stack.push_async_callback(durable.close)  # after the speed layer stopped
    app.state.producer = producer

    if roles.speed:
        from speed_layer.app import create_speed_layer

        speed = create_speed_layer(settings, catalog, open_storage(settings),
                                   log_conn.bootstrap, log_conn.epoch)
        for worker in speed.sources.values():  # the built-in one and each source's
            worker.definitions_version = definitions_version
        task = asyncio.create_task(speed.start(), name="speed-layer")  # returns after join
        stack.push_async_callback(_stop_speed, speed, task)
        from speed_layer.replay_service import ReplayService

        replays = ReplayService(settings, catalog, open_storage(settings), log_conn.bootstrap,
                                log_conn.epoch)
        replay_task = asyncio.create_task(replays.run_forever(), name="replays")
        stack.callback(replay_task.cancel)
        app.state.health.register("worker", lambda: worker_health(speed.speed))
        if durable is not None:
            durable.start(speed.speed)
    if roles.batch:
        from batch_layer.scheduler import BatchScheduler

        scheduler = BatchScheduler(settings, catalog)
        scheduler.start()
        stack.push_async_callback(scheduler.shutdown)
        app.state.health.register("scheduler", lambda: ComponentHealth(
            status="ok", detail="running a batch job" if scheduler.busy else "idle"))
        if roles.first_batch_after_s is not None:
            delayed = asyncio.create_task(_first_batch(scheduler, roles.first_batch_after_s))
            stack.callback(delayed.cancel)
    if durable is not None:  # at stop, before the parts below stop: drain the log
        stack.push_async_callback(durable.drain)
    if roles.demo:
        from ingest.generator import DEMO_BURSTS_S, GeneratorConfig, run_generator

        stop = asyncio.Event()
        config = GeneratorConfig(rate_per_s=roles.demo_rate_per_s, burst_every_s=DEMO_BURSTS_S,
                                 backfill_s=_backfill_s(settings, roles.demo_backfill_s))
        generator = asyncio.create_task(
            run_generator(settings.api_url, config, stop=stop,
                          token=settings.api.ingest_token), name="demo-generator")
        stack.push_async_callback(_stop_task, generator, stop)
        if orders_topic is not None:
            from ingest.demo_orders import run_orders

            orders = asyncio.create_task(run_orders(
                settings.kafka, log_conn.bootstrap, orders_topic,
                backfill_s=config.backfill_s, stop=stop), name="demo-orders")
            stack.push_async_callback(_stop_task, orders, stop)
    log.info("Stratum parts started in %.1f s (log %s)", time.monotonic() - started,
             log_conn.bootstrap)


async def retire_dead_epochs(settings: Settings, catalog: MetricCatalog,
                             log_conn: LogConnection) -> None:
    """Before the speed layer consumes a new embedded log: reconcile the ended epochs'
    speed rows with their archive and retire them (:mod:`speed_layer.recovery`)."""
    if not settings.kafka.embedded:
        return
    from speed_layer.recovery import retire_dead_epochs as retire

    storage = open_storage(settings)
    try:
        await asyncio.to_thread(retire, settings, catalog, storage, log_conn.epoch)
    finally:
        storage.close()


def _backfill_s(settings: Settings, wanted_s: float) -> float:
    """Demo history only into a fresh data dir: a restart must not invent a second past."""
    from stratum.archive import archive_root, list_files

    if list_files(archive_root(settings.data_dir)):
        log.info("demo: the archive already holds history; no backfill")
        return 0.0
    return wanted_s


async def _first_batch(scheduler: BatchScheduler, delay_s: float) -> None:
    from stratum.storage.jobs import JobConflictError

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


async def _stop_task(task: asyncio.Task[int], stop: asyncio.Event) -> None:
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=5)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()


def worker_health(worker: SpeedWorker) -> ComponentHealth:
    from serving.health import ComponentHealth

    if worker.broken:
        return ComponentHealth(status="down", detail="aggregation failed, restart the worker: "
                               f"{worker.broken}")
    if worker.last_flush_error:
        return ComponentHealth(status="down", detail=f"flush failing: {worker.last_flush_error}")
    if worker.archiver.last_flush_error:
        return ComponentHealth(status="down", detail="archive writes failing: "
                               f"{worker.archiver.last_flush_error}")
    partitions = worker.partitions
    if not partitions:
        return ComponentHealth(status="ok", detail="waiting for events")
    lag_s = max((time.time() * 1000 - p.max_event_ms) / 1000 for p in partitions.values())
    return ComponentHealth(status="ok",
                           detail=f"{len(partitions)} partition(s), event-time lag {lag_s:.1f} s")


def uvicorn_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(app, host=settings.api.host, port=settings.api.port,
                            log_level="warning", lifespan="on", access_log=False)
    return uvicorn.Server(config)


HEARTBEAT_INTERVAL_S = 5.0


def heartbeat_path(role: str) -> Path:
    """Per container (a temp dir), never a shared volume: replicas must not share it."""
    return Path(tempfile.gettempdir()) / f"stratum-{role}.health.json"


async def heartbeat(role: str, probe: Callable[[], ComponentHealth],
                    interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
    """Write the probe's verdict every ``interval_s``: ``stratum worker`` and ``stratum
    batch`` serve no HTTP, so their container healthcheck reads this file instead. A
    stuck event loop stops the writes, which the check sees as a stale file."""
    from serving.health import ComponentHealth  # noqa: F811

    path = heartbeat_path(role)
    while True:
        try:
            health = probe()
        except Exception as exc:  # noqa: BLE001 - a failing probe is a finding
            health = ComponentHealth(status="down", detail=f"probe failed: {exc}")
        record = {"status": health.status, "detail": health.detail, "at": time.time()}
        partial = path.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(record))
        partial.replace(path)
        await asyncio.sleep(interval_s)


def check_health(role: str, api_url: str, *, max_age_s: float = 30.0) -> tuple[bool, str]:
    """The container healthcheck: ``(healthy, why)``. The API is asked over HTTP at
    ``api_url``; a worker or the scheduler by its heartbeat file."""
    if role == "api":
        target = f"{api_url.rstrip('/')}/v1/health"
        try:
            response = httpx.get(target, timeout=5.0)
        except httpx.HTTPError as exc:
            return False, f"{target}: {exc}"
        if response.status_code != 200:
            return False, f"{target}: HTTP {response.status_code}"
        status = str(response.json().get("status"))
        return status == "ok", f"{target}: {status}"  # "degraded" is not healthy
    path = heartbeat_path(role)
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return False, f"no heartbeat from the {role} at {path}: {exc}"
    age_s = time.time() - float(record["at"])
    if age_s > max_age_s:
        return False, f"the {role}'s last heartbeat is {age_s:.0f} s old"
    return record["status"] != "down", f"{record['status']}: {record['detail']}"
