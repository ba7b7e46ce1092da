"""``/v1/metrics``: the definitions, and merged series of one metric."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import CatalogDep, ReadAccess, ReaderDep
from serving.queries import MAX_POINTS, SeriesRequest
from serving.timeparse import iso, parse_time_ms
from stratum.metrics import MetricDefinition
from stratum.windows import format_duration, parse_duration_ms

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], dependencies=[ReadAccess])
RESERVED_QUERY = {"start", "end", "step", "group_by"}


class MetricInfo(BaseModel):
    name: str
    description: str
    aggregation: str
    field: str | None
    quantile: float | None
    where: dict[str, str | list[str]]
    dimensions: list[str]
    windows: list[str]
    unit: str


class MetricList(BaseModel):
    metrics: list[MetricInfo]


class PointOut(BaseModel):
    t: str = Field(description="window (or step) start, ISO-8601 UTC")
    t_ms: int = Field(description="the same, epoch milliseconds")
    value: float | None
    source: str = Field(description="batch, speed, or mixed (a step spanning the horizon)")
    count: int = Field(description="events behind the value")


class SeriesOut(BaseModel):
    group: dict[str, str]
    points: list[PointOut]


class SeriesResponse(BaseModel):
    metric: str
    aggregation: str
    unit: str
    step: str
    start: str
    end: str
    horizon: str | None = Field(description="batch values are authoritative up to here")
    series: list[SeriesOut]

    model_config = {"json_schema_extra": {"examples": [{
        "metric": "revenue", "aggregation": "sum", "unit": "EUR", "step": "1m",
        "start": "2026-11-21T10:00:00Z", "end": "2026-11-21T10:02:00Z",
        "horizon": "2026-11-21T10:01:00Z",
        "series": [{"group": {"country": "DE"}, "points": [
            {"t": "2026-11-21T10:00:00Z", "t_ms": 1795255200000, "value": 120.5,
             "source": "batch", "count": 9},
            {"t": "2026-11-21T10:01:00Z", "t_ms": 1795255260000, "value": 80.0,
             "source": "speed", "count": 6}]}]}]}}


def info(metric: MetricDefinition) -> MetricInfo:
    return MetricInfo(name=metric.name, description=metric.description,
                      aggregation=metric.aggregation.value, field=metric.field,
                      quantile=metric.quantile, where=dict(metric.where),
                      dimensions=list(metric.dimensions), windows=list(metric.windows),
                      unit=metric.unit)


@router.get("", response_model=MetricList, summary="Metric definitions")
def list_metrics(catalog: CatalogDep) -> MetricList:
    return MetricList(metrics=[info(m) for m in catalog.metrics])


def _bad(code: str, message: str, **details: Any) -> HTTPException:
    return HTTPException(422, detail={"code": code, "message": message, "details": details})


@router.get("/{name}", response_model=SeriesResponse, summary="Merged batch + speed series",
            description="Windows ending at or before the batch horizon come from batch, the "
                        "rest from speed. Filter with `dim=value` query parameters (repeat "
                        "for several values).")
async def get_series(
    name: str, request: Request, catalog: CatalogDep, reader: ReaderDep,
    start: Annotated[str | None, Query(description="ISO-8601, epoch ms or now-1h")] = None,
    end: Annotated[str | None, Query(description="ISO-8601, epoch ms or now")] = None,
    step: Annotated[str | None, Query(description="multiple of the finest window")] = None,
    group_by: Annotated[str | None, Query(description="comma-separated dimensions")] = None,
) -> SeriesResponse:
    metric = catalog.get(name)
    if metric is None:
        raise HTTPException(404, detail={"code": "unknown_metric",
                                         "message": f"no metric named {name!r}",
                                         "details": {"metrics": catalog.names}})
    now_ms = int(time.time() * 1000)
    try:
        end_ms = parse_time_ms(end, now_ms=now_ms) if end else now_ms
        start_ms = parse_time_ms(start, now_ms=now_ms) if start else end_ms - 3_600_000
        step_ms = parse_duration_ms(step) if step else metric.window_ms
    except ValueError as exc:
        raise _bad("invalid_parameter", str(exc)) from exc
    if step_ms % metric.window_ms:
        raise _bad("invalid_step", f"step must be a multiple of {metric.windows[0]}",
                   windows=list(metric.windows))
    start_ms -= start_ms % step_ms
    if end_ms <= start_ms:
        raise _bad("invalid_range", "end must be after start")
    if (end_ms - start_ms) // step_ms > MAX_POINTS:
        raise _bad("too_many_points", f"the range holds more than {MAX_POINTS} steps; "
                                      "use a coarser step")
    groups = tuple(g for g in (group_by or "").split(",") if g)
    filters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in RESERVED_QUERY:
            filters.setdefault(key, []).append(value)
    unknown = [d for d in (*groups, *filters) if d not in metric.dimensions]
    if unknown:
        raise _bad("unknown_dimension",
                   f"{', '.join(sorted(set(unknown)))} is not a dimension of {name}",
                   dimensions=list(metric.dimensions))
    req = SeriesRequest(metric, start_ms, end_ms, step_ms, groups, filters)
    series, horizon = await run_in_threadpool(reader.series, req)
    return SeriesResponse(
        metric=name, aggregation=metric.aggregation.value, unit=metric.unit,
        step=format_duration(step_ms), start=iso(start_ms), end=iso(end_ms),
        horizon=iso(horizon) if horizon is not None else None,
        series=[SeriesOut(group=s.group, points=[
            PointOut(t=iso(p.t_ms), t_ms=p.t_ms, value=p.value, source=p.source, count=p.count)
            for p in s.points]) for s in series],
    )
