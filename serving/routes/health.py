"""``/v1/health`` (component states) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from serving.health import ComponentHealth, HealthRegistry

router = APIRouter(tags=["health"])


class HealthResponse(BaseModel):
    status: str
    components: dict[str, ComponentHealth]


@router.get("/v1/health", response_model=HealthResponse, summary="Component states")
async def health(request: Request) -> HealthResponse:
    registry: HealthRegistry = request.app.state.health
    components = await run_in_threadpool(registry.check)
    worst = {c.status for c in components.values()}
    status = "ok" if worst <= {"ok"} else ("down" if "down" in worst else "degraded")
    return HealthResponse(status=status, components=components)


@router.get("/metrics", summary="Stratum's own pipeline metrics (Prometheus text format)",
            response_class=Response)
def prometheus() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
