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
from serving.queries import MAX_POINTS
from serving.routes.common import READ_ERRORS, bad_parameter, iso, time_param
from stratum.errors import cite, error_detail
from stratum.windows import format_duration

router = APIRouter(
    prefix="/v1/drift", tags=["metrics"], dependencies=[ReadAccess], responses=READ_ERRORS
)


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


@router.get(
    "",
    response_model=DriftResponse,
    summary="Speed vs batch, per window",
    responses=error_responses(404),
)
async def get_drift(
    catalog: CatalogDep,
    reader: ReaderDep,
    metric: Annotated[str, Query(description="metric name")],
    start: Annotated[str | None, Query(description="ISO-8601, epoch ms or now-1h")] = None,
    end: Annotated[str | None, Query(description="ISO-8601, epoch ms or now")] = None,
) -> DriftResponse:
    definition = catalog.get(metric)
    if definition is None:
        raise HTTPException(
            404,
            detail=error_detail(
                "unknown_metric", f"no metric named {cite(metric)}", metrics=catalog.names
            ),
        )
    now_ms = int(time.time() * 1000)
    end_ms = time_param(end, now_ms, now_ms, "end")
    start_ms = time_param(start, end_ms - 6 * 3_600_000, now_ms, "start")
    if end_ms <= start_ms:
        raise bad_parameter("invalid_range", "end must be after start")
    if (end_ms - start_ms) // definition.window_ms > MAX_POINTS:
        raise bad_parameter(
            "too_many_points",
            f"the range holds more than {MAX_POINTS} "
            f"{format_duration(definition.window_ms)} windows; narrow it",
        )
    drift = DriftReader(reader.storage)
    generation = await run_in_threadpool(reader.live_generation)
    points = await run_in_threadpool(drift.drift, definition, start_ms, end_ms, generation)
    reasons = Counter(p.reason.split(":")[0] for p in points)
    off = [p for p in points if p.reason != "none"]
    return DriftResponse(
        metric=metric,
        start=iso(start_ms),
        end=iso(end_ms),
        summary=DriftSummary(
            windows_compared=len(points),
            windows_off=len(off),
            max_abs_difference=max((abs(p.difference or 0) for p in points), default=0.0),
            max_abs_relative=max((abs(p.relative or 0) for p in points), default=0.0),
            by_reason=dict(reasons),
        ),
        points=[
            DriftPointOut(
                t=iso(p.t_ms),
                t_ms=p.t_ms,
                speed=p.speed,
                batch=p.batch,
                difference=p.difference,
                relative=p.relative,
                speed_count=p.speed_count,
                batch_count=p.batch_count,
                reason=p.reason,
            )
            for p in points
        ],
    )
