"""``/v1/health`` (component states) and ``/metrics`` (Prometheus text).

``/metrics`` is this process's counters (``stratum.telemetry``) plus gauges read from
ClickHouse at scrape time, which any process can answer: per-partition event-time lag
and offset, the batch horizon's age, jobs by state. If ClickHouse does not answer, the
counters are still served and ``stratum_pipeline_state_up`` says 0. It needs the read
token when one is set (Prometheus sends it as ``bearer_token``).

``/v1/health`` stays open for probes; with a read token set, a caller without it gets the
states only, not the details (addresses, error texts).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from pydantic import BaseModel

from serving.deps import (
    PipelineDep,
    RatesDep,
    ReadAccess,
    ReaderDep,
    SettingsDep,
    may_read,
)
from serving.routes.common import READ_ERRORS
from stratum.health import ComponentHealth, HealthRegistry
from stratum.storage import StorageError
from stratum.tokens import TokenDep

router = APIRouter(tags=["health"])


class HealthResponse(BaseModel):
    status: str
    components: dict[str, ComponentHealth]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "ok",
                    "components": {
                        "broker": {"status": "ok", "detail": "embedded tansu at 127.0.0.1:40123"},
                        "clickhouse": {
                            "status": "ok",
                            "detail": "chdb:///var/lib/stratum/clickhouse",
                        },
                        "worker": {
                            "status": "ok",
                            "detail": "4 partition(s), event-time lag 0.8 s",
                        },
                    },
                }
            ]
        }
    }


@router.get(
    "/v1/health",
    response_model=HealthResponse,
    summary="Component states",
    description="`ok` when every component is ok, `down` when one is down, "
    "`degraded` otherwise. Always 200: the body carries the verdict. "
    "With a read token set, the details need it.",
)
async def health(
    request: Request, rates: RatesDep, settings: SettingsDep, token: TokenDep
) -> HealthResponse:
    registry: HealthRegistry = request.app.state.health
    components = await run_in_threadpool(registry.check)
    rates.sample()
    worst = {c.status for c in components.values()}
    status = "ok" if worst <= {"ok"} else ("down" if "down" in worst else "degraded")
    if not may_read(token, settings):
        components = {
            name: ComponentHealth(status=c.status, detail="") for name, c in components.items()
        }
    return HealthResponse(status=status, components=components)


def _state_gauges(reader: ReaderDep, pipeline: PipelineDep) -> bytes:
    registry = CollectorRegistry()
    up = Gauge(
        "stratum_pipeline_state_up", "1 if ClickHouse answered the state reads", registry=registry
    )
    lag = Gauge(
        "stratum_speed_event_time_lag_seconds",
        "Now minus the newest event time, per source partition",
        ["partition"],
        registry=registry,
    )
    offset = Gauge(
        "stratum_speed_through_offset",
        "Log offset the stored windows are complete through",
        ["partition"],
        registry=registry,
    )
    horizon_age = Gauge(
        "stratum_batch_horizon_age_seconds", "Now minus the batch horizon", registry=registry
    )
    jobs = Gauge(
        "stratum_jobs",
        "Jobs by kind and state (whole history)",
        ["kind", "state"],
        registry=registry,
    )
    try:
        now_ms = time.time() * 1000
        for part in pipeline.partitions(reader.live_generation()):
            label = str(part.partition if part.partition is not None else part.source_id)
            offset.labels(partition=label).set(part.through_offset)
            if part.max_event_ms is not None:
                lag.labels(partition=label).set(max(0.0, now_ms - part.max_event_ms) / 1000)
        horizon = reader.horizon_ms()
        if horizon is not None:
            horizon_age.set(max(0.0, now_ms - horizon) / 1000)
        for kind, states in pipeline.job_counts().items():
            for state, n in states.items():
                jobs.labels(kind=kind, state=state).set(n)
        up.set(1)
    except StorageError:
        up.set(0)
    return generate_latest(registry)


@router.get(
    "/metrics",
    summary="Stratum's own pipeline metrics (Prometheus text format)",
    response_class=Response,
    dependencies=[ReadAccess],
    responses={
        200: {
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": (
                        "# TYPE stratum_ingest_events_accepted_total counter\n"
                        "stratum_ingest_events_accepted_total 360000.0\n"
                    ),
                }
            },
            "description": "Prometheus text exposition format 0.0.4",
        },
        **READ_ERRORS,
    },
)
async def prometheus(reader: ReaderDep, pipeline: PipelineDep, rates: RatesDep) -> Response:
    rates.sample()
    state = await run_in_threadpool(_state_gauges, reader, pipeline)
    return Response(generate_latest(REGISTRY) + state, media_type=CONTENT_TYPE_LATEST)
