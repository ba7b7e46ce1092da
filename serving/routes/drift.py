"""``/v1/drift``: per window both layers hold, how far speed was from batch, and why."""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import CatalogDep, ReadAccess, ReaderDep
from serving.drift import DriftReader
from serving.errors import error_responses
from serving.routes.common import READ_ERRORS, iso
from serving.timeparse import parse_time_ms

router = APIRouter(prefix="/v1/drift", tags=["metrics"], dependencies=[ReadAccess],
                   responses=READ_ERRORS)


class DriftPointOut(BaseModel):
    t: str
    t_ms: int
    speed: float | None = Field(description="the speed layer's value (live generation)")
    batch: float | None = Field(description="the batch layer's final value")
    difference: float | None = Field(description="speed − batch")
    relative: float | None = Field(description="difference / |batch|")
    speed_count: int
    batch_count: int
    reason: str = Field(description="none, late events, duplicates, sketch error, rounding")


class DriftSummary(BaseModel):
    windows_compared: int
    windows_off: int
    max_abs_difference: float
    max_abs_relative: float
    by_reason: dict[str, int]


class DriftResponse(BaseModel):
    metric: str
    start: str
    end: str
    summary: DriftSummary
    points: list[DriftPointOut]


@router.get("", response_model=DriftResponse, summary="Speed vs batch, per window",
            responses=error_responses(404))
async def get_drift(
    catalog: CatalogDep, reader: ReaderDep,
    metric: Annotated[str, Query(description="metric name")],
    start: Annotated[str | None, Query(description="ISO-8601, epoch ms or now-1h")] = None,
    end: Annotated[str | None, Query(description="ISO-8601, epoch ms or now")] = None,
) -> DriftResponse:
    definition = catalog.get(metric)
    if definition is None:
        raise HTTPException(404, detail={"code": "unknown_metric",
                                         "message": f"no metric named {metric!r}",
                                         "details": {"metrics": catalog.names}})
    now_ms = int(time.time() * 1000)
    try:
        end_ms = parse_time_ms(end, now_ms=now_ms) if end else now_ms
        start_ms = parse_time_ms(start, now_ms=now_ms) if start else end_ms - 6 * 3_600_000
    except ValueError as exc:
        raise HTTPException(422, detail={"code": "invalid_parameter", "message": str(exc),
                                         "details": {}}) from exc
    if end_ms <= start_ms:
        raise HTTPException(422, detail={"code": "invalid_range",
                                         "message": "end must be after start", "details": {}})
    drift = DriftReader(reader.storage)
    generation = await run_in_threadpool(reader.live_generation)
    points = await run_in_threadpool(drift.drift, definition, start_ms, end_ms, generation)
    reasons = Counter(p.reason.split(":")[0] for p in points)
    off = [p for p in points if p.reason != "none"]
    return DriftResponse(
        metric=metric, start=iso(start_ms), end=iso(end_ms),
        summary=DriftSummary(
            windows_compared=len(points), windows_off=len(off),
            max_abs_difference=max((abs(p.difference or 0) for p in points), default=0.0),
            max_abs_relative=max((abs(p.relative or 0) for p in points), default=0.0),
            by_reason=dict(reasons)),
        points=[DriftPointOut(t=iso(p.t_ms), t_ms=p.t_ms, speed=p.speed, batch=p.batch,
                              difference=p.difference, relative=p.relative,
                              speed_count=p.speed_count, batch_count=p.batch_count,
                              reason=p.reason) for p in points],
    )
