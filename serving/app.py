"""The FastAPI app: merged metric reads, health, admin. Ingest (``POST /v1/events``) and
the Dash dashboard under /dashboard/ are added by whoever composes the process
(:mod:`stratum.app.platform`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline

from serving.errors import install_error_handlers
from serving.live_definitions import LiveDefinitions
from serving.pipeline import CounterRates, PipelineReader
from serving.queries import MetricReader
from serving.routes import (
    admin,
    definitions,
    drift,
    health,
    metrics,
    pipeline,
    replay,
    side_events,
    status,
)
from stratum import __version__
from stratum.health import ComponentHealth, HealthRegistry
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage import Storage
from stratum.storage.client import redact_url

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings, catalog: MetricCatalog, storage: Storage, lifespan: Lifespan | None = None
) -> FastAPI:
    # Swagger UI and ReDoc from the fastapi-offline package's own copies of their assets
    # (under /static-offline-docs): FastAPI's defaults load them from a CDN, so /docs was
    # blank without internet.
    app = FastAPIOffline(
        title="Stratum",
        version=__version__,
        summary="Event-time analytics: batch-authoritative, speed-fresh, one definition.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.definitions = LiveDefinitions(storage, catalog, settings.definitions.poll_s)
    app.state.reader = MetricReader(storage, definitions=app.state.definitions)
    app.state.health = HealthRegistry()
    app.state.producer = None
    app.state.pipeline = PipelineReader(storage)
    app.state.rates = CounterRates()
    app.state.health.register("clickhouse", lambda: _clickhouse_probe(storage))
    install_error_handlers(app)
    if settings.api.cors_origins:  # off unless configured: no other origin may call
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST"],
            allow_credentials=False,
            allow_headers=["Authorization", "Content-Type", "X-Stratum-Token"],
        )
    app.include_router(metrics.router)
    app.include_router(drift.router)
    app.include_router(side_events.router)
    app.include_router(status.router)
    app.include_router(pipeline.router)
    app.include_router(admin.router)
    app.include_router(definitions.router)
    app.include_router(replay.router)
    app.include_router(health.router)
    metrics.document_catalog(app, catalog)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return app


def _clickhouse_probe(storage: Storage) -> ComponentHealth:
    if storage.ping():
        return ComponentHealth(status="ok", detail=redact_url(storage.url))
    return ComponentHealth(status="down", detail=f"no answer from {redact_url(storage.url)}")
