"""Wiring: which parts run in this process.

- ``up``: everything in one process (chDB allows one engine per process), the embedded
  broker if the Kafka URL is ``embedded``, and the demo generator with ``--demo``.
- ``api``: ingest + serving + dashboard against Kafka and ClickHouse.
- ``worker`` and ``batch`` run in their own processes (:mod:`stratum.app.processes`);
  all start each role the same way (:mod:`stratum.app.roles`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn
from a2wsgi import WSGIMiddleware
from fastapi import FastAPI

from batch_layer.preview import preview
from dashboard.app import create_dash
from ingest.demo_orders import create_topic, demo_topic, run_orders
from ingest.generator import DEMO_BURSTS_S, GeneratorConfig, run_generator
from ingest.routes import router as ingest_router
from serving.app import create_app
from serving.errors import error_responses
from stratum.app.durable import DurableAcceptance, recover_at_start
from stratum.app.roles import LogConnection, speed_probe, start_batch, start_speed
from stratum.archive import archive_root, list_files
from stratum.health import ComponentHealth
from stratum.long_lived import freeze_startup_objects, unfreeze
from stratum.metrics import MetricCatalog, load_catalog
from stratum.producer import EventProducer
from stratum.settings import Settings
from stratum.storage import open_storage
from stratum.storage.definitions import startup_catalog

log = logging.getLogger("stratum")
DEMO_SOURCES = Path(__file__).parent.parent / "demo_sources.toml"


@dataclass
class Roles:
    speed: bool = False
    batch: bool = False
    demo: bool = False
    dashboard: bool = True
    demo_backfill_s: float = 1800.0
    demo_rate_per_s: float = 200.0
    first_batch_after_s: float | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a stop begins (a signal to the server), before the server closes its
    # sockets and well before the lifespan's shutdown: the demo's feeds stop posting.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def create_platform_app(
    settings: Settings, roles: Roles, catalog: MetricCatalog | None = None
) -> FastAPI:
    """The ASGI app of an ``up`` or ``api`` process, starting its parts in the lifespan."""
    if catalog is None:  # the demo adds its orders source (stratum/demo_sources.toml)
        catalog = load_catalog(settings.metrics_file, *([DEMO_SOURCES] if roles.demo else []))
    storage = open_storage(settings)
    # The stored definitions win over the file once seeded (stratum.storage.definitions).
    binding, catalog = startup_catalog(storage, catalog, str(settings.metrics_file))
    log_conn = LogConnection(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _start_parts(app, settings, roles, catalog, log_conn, stack, binding.version)
            freeze_startup_objects()  # also where the speed layer does not run
            stack.callback(unfreeze)
            roles.started.set()
            yield
            app.state.shutting_down = True  # ingest answers 503 from here on
            log.info("stopping Stratum ...")

    app = create_app(settings, catalog, storage, lifespan=lifespan)
    app.state.previewer = preview  # POST /v1/admin/definitions/preview: the batch code
    app.include_router(ingest_router, responses=error_responses(400, 401, 413, 415, 422, 429, 503))

    def broker_probe() -> ComponentHealth:
        if log_conn.broker is not None:
            alive = log_conn.broker.running
            return ComponentHealth(
                status="ok" if alive else "down", detail=f"embedded tansu at {log_conn.bootstrap}"
            )
        producer = app.state.producer
        if producer is not None and producer.last_error:
            return ComponentHealth(
                status="down", detail=f"{log_conn.bootstrap}: {producer.last_error}"
            )
        return ComponentHealth(status="ok" if producer else "unknown", detail=log_conn.bootstrap)

    app.state.health.register("broker", broker_probe)
    app.state.log_connection = log_conn
    if roles.dashboard:
        dash_app = create_dash(settings, requests_pathname_prefix="/dashboard/")
        app.mount("/dashboard", WSGIMiddleware(dash_app.server))  # type: ignore[arg-type]
    return app


async def _start_parts(
    app: FastAPI,
    settings: Settings,
    roles: Roles,
    catalog: MetricCatalog,
    log_conn: LogConnection,
    stack: AsyncExitStack,
    definitions_version: int | None = None,
) -> None:
    started = time.monotonic()
    await log_conn.start()
    stack.callback(log_conn.stop)
    orders_topic = None
    if roles.demo:  # the demo's "database" has its topic before Stratum reads it
        orders_topic = demo_topic(catalog)
        if orders_topic is not None:
            await create_topic(settings.kafka, log_conn.bootstrap, orders_topic)
    if settings.kafka.embedded:  # first the journal completes the dead epochs' archive
        await recover_at_start(settings, log_conn.epoch)  # (start_speed then retires them)
    producer = EventProducer(
        settings.kafka, log_conn.bootstrap, timeout_s=settings.api.ingest_timeout_s
    )
    await producer.start()
    stack.push_async_callback(producer.stop)
    durable = None
    # A log in memory: journal what it acknowledges, pruned by what the in-process speed
    # layer stores.
    if settings.kafka.embedded and roles.speed:
        durable = DurableAcceptance(settings, log_conn.epoch, producer)
        stack.push_async_callback(durable.close)  # after the speed layer stopped
    app.state.producer = producer

    if roles.speed:
        speed = await start_speed(settings, catalog, log_conn, stack, definitions_version)
        app.state.health.register("worker", speed_probe(speed))
        if durable is not None:
            durable.start(speed.speed)
    if roles.batch:
        _, probe = start_batch(settings, catalog, stack, roles.first_batch_after_s)
        app.state.health.register("scheduler", probe)
    if durable is not None:  # at stop, before the parts below stop: drain the log
        stack.push_async_callback(durable.drain)
    if roles.demo:
        stop = roles.stopping  # else a post after the sockets close: "ingest unreachable"
        config = GeneratorConfig(
            rate_per_s=roles.demo_rate_per_s,
            burst_every_s=DEMO_BURSTS_S,
            backfill_s=_backfill_s(settings, roles.demo_backfill_s),
        )
        generator = asyncio.create_task(
            run_generator(settings.api_url, config, stop=stop, token=settings.api.ingest_token),
            name="demo-generator",
        )
        stack.push_async_callback(_stop_task, generator, stop)
        if orders_topic is not None:
            orders = asyncio.create_task(
                run_orders(
                    settings.kafka,
                    log_conn.bootstrap,
                    orders_topic,
                    backfill_s=config.backfill_s,
                    stop=stop,
                ),
                name="demo-orders",
            )
            stack.push_async_callback(_stop_task, orders, stop)
    log.info(
        "Stratum parts started in %.1f s (log %s)", time.monotonic() - started, log_conn.bootstrap
    )


def _backfill_s(settings: Settings, wanted_s: float) -> float:
    """Demo history only into a fresh data dir: a restart must not invent a second past."""
    if list_files(archive_root(settings.data_dir)):
        log.info("demo: the archive already holds history; no backfill")
        return 0.0
    return wanted_s


async def _stop_task(task: asyncio.Task[int], stop: asyncio.Event) -> None:
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=5)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()


class _Server(uvicorn.Server):
    """uvicorn's server, which also says when a stop begins (``stopping``)."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event | None) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.stopping is not None:  # a signal handler: hand the set to the loop
            asyncio.get_running_loop().call_soon_threadsafe(self.stopping.set)


def uvicorn_server(
    app: FastAPI, settings: Settings, stopping: asyncio.Event | None = None
) -> uvicorn.Server:
    """``stopping``: set as soon as a signal asks the server to stop."""
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_keep_alive=settings.api.keep_alive_s,
    )
    return _Server(config, stopping)
