"""``/v1/metrics``: the definitions, and merged series of one metric."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import CatalogDep, ReadAccess, ReaderDep, SettingsDep
from serving.errors import error_responses
from serving.models import PointOut, SeriesOut, SeriesResponse
from serving.queries import MAX_POINTS, SeriesRequest, default_step_ms, step_problem
from serving.routes.common import (
    READ_ERRORS,
    bad_parameter,
    iso,
    iso_or_none,
    split_list,
    time_param,
)
from stratum.aggregations import AggregationKind
from stratum.errors import cite, error_detail
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition
from stratum.numbers import api_number, filter_texts
from stratum.windows import format_duration, parse_duration_ms

router = APIRouter(
    prefix="/v1/metrics", tags=["metrics"], dependencies=[ReadAccess], responses=READ_ERRORS
)
RESERVED_QUERY = {"start", "end", "step", "group_by", "as_of"}
MAX_STEP_MS = 366 * 86_400_000
TIME_HELP = "ISO-8601 (2026-11-21T10:00:00Z; no zone means UTC), epoch milliseconds, or "


class KindInfo(BaseModel):
    """What a reader needs to know about an aggregation kind (stratum.aggregations)."""

    additive: bool = Field(description="values of separate windows or groups add up")
    whole: bool = Field(description="values are whole numbers")
    accumulates: bool = Field(
        description="a window's value grows as its events arrive: "
        "read it once the window is complete"
    )
    approximate: bool = Field(description="the speed layer keeps a sketch; batch is exact")
    field: str = Field(description="what `field` holds: none, number or value")


class MetricInfo(BaseModel):
    name: str
    description: str
    aggregation: str = Field(description=", ".join(a.value for a in Aggregation))
    kind: KindInfo
    field: str | None
    quantile: float | None
    where: dict[str, str | list[str]]
    dimensions: list[str]
    windows: list[str] = Field(
        description="window sizes, finest first; steps are multiples of the finest"
    )
    hop: str | None = Field(
        None, description="hopping windows: the step between window starts (the only step answered)"
    )
    session_gap: str | None = Field(
        None,
        description="session windows: points are "
        "sessions bucketed by their start; a group's session "
        "ends after this much time without its events, or at "
        "midnight UTC",
    )
    unit: str


class MetricList(BaseModel):
    metrics: list[MetricInfo]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "metrics": [
                        {
                            "name": "revenue",
                            "description": "Revenue: sum of purchase amounts by country",
                            "aggregation": "sum",
                            "field": "amount",
                            "quantile": None,
                            "where": {"type": "purchase"},
                            "dimensions": ["country"],
                            "windows": ["1m", "5m", "1h"],
                            "hop": None,
                            "session_gap": None,
                            "unit": "EUR",
                            "kind": {
                                "additive": True,
                                "whole": False,
                                "accumulates": True,
                                "approximate": False,
                                "field": "number",
                            },
                        }
                    ]
                }
            ]
        }
    }


def kind_info(kind: AggregationKind) -> KindInfo:
    return KindInfo(
        additive=kind.additive,
        whole=kind.whole,
        accumulates=kind.accumulates,
        approximate=kind.approximate,
        field=kind.field.value,
    )


def info(metric: MetricDefinition) -> MetricInfo:
    return MetricInfo(
        name=metric.name,
        description=metric.description,
        aggregation=metric.aggregation.value,
        kind=kind_info(metric.kind),
        field=metric.field,
        quantile=metric.quantile,
        where=dict(metric.where),
        dimensions=list(metric.dimensions),
        windows=list(metric.windows),
        hop=metric.hop,
        session_gap=metric.session_gap,
        unit=metric.unit,
    )


@router.get("", response_model=MetricList, summary="Metric definitions")
def list_metrics(catalog: CatalogDep) -> MetricList:
    return MetricList(metrics=[info(m) for m in catalog.metrics])


@router.get(
    "/{name}",
    response_model=SeriesResponse,
    summary="Merged batch + speed series",
    description="Windows ending at or before the batch horizon come from batch, the "
    "rest from speed; each point says which. Filter with `dim=value` query "
    "parameters (several values: `country=DE,FR` or repeat the parameter; "
    "a literal comma is `\\,`; a value that reads as a "
    "number also matches it: `tier=1.0` finds the group `1`), e.g. "
    "`/v1/metrics/revenue?start=now-1h&step=5m&group_by=country&country=DE`.",
    responses=error_responses(404),
)
async def get_series(
    name: str,
    request: Request,
    catalog: CatalogDep,
    reader: ReaderDep,
    settings: SettingsDep,
    start: Annotated[
        str | None, Query(description=TIME_HELP + "now-1h; default end - 1h", examples=["now-1h"])
    ] = None,
    end: Annotated[
        str | None, Query(description=TIME_HELP + "now; default now", examples=["now"])
    ] = None,
    step: Annotated[
        str | None,
        Query(
            description="a multiple of the finest window (default: the finest window)",
            examples=["5m"],
        ),
    ] = None,
    group_by: Annotated[
        str | None, Query(description="comma-separated dimensions", examples=["country"])
    ] = None,
    as_of: Annotated[
        str | None,
        Query(
            description=TIME_HELP + "now-1h: what was served "
            "then (batch versions as of then; speed windows as "
            "stored now; windows ending by then), within "
            "STRATUM_BATCH__KEEP_VERSIONS_S",
            examples=["now-1h"],
        ),
    ] = None,
) -> SeriesResponse:
    metric = catalog.get(name)
    if metric is None:
        raise HTTPException(
            404,
            detail=error_detail(
                "unknown_metric", f"no metric named {cite(name)}", metrics=catalog.names
            ),
        )
    now_ms = int(time.time() * 1000)
    as_of_ms = time_param(as_of, now_ms, now_ms, "as_of") if as_of else None
    if as_of_ms is not None:
        kept_ms = int(settings.batch.keep_versions_s * 1000)
        if kept_ms <= 0:
            raise bad_parameter(
                "invalid_parameter",
                "as-of reads are off here: superseded "
                "batch versions are not kept (set "
                "STRATUM_BATCH__KEEP_VERSIONS_S)",
                parameter="as_of",
            )
        if not now_ms - kept_ms <= as_of_ms <= now_ms:
            kept = format_duration(max(1000, kept_ms - kept_ms % 1000))
            raise bad_parameter(
                "invalid_parameter",
                "as_of must be in the past, at most "
                f"{kept} ago (batch versions are kept that long: "
                "STRATUM_BATCH__KEEP_VERSIONS_S)",
                parameter="as_of",
            )
    end_ms = time_param(end, as_of_ms or now_ms, now_ms, "end")
    if as_of_ms is not None:
        end_ms = min(end_ms, as_of_ms)
    start_ms = time_param(start, end_ms - 3_600_000, now_ms, "start")
    try:
        step_ms = parse_duration_ms(step) if step else default_step_ms(metric)
    except ValueError as exc:
        raise bad_parameter("invalid_parameter", f"step: {exc}", parameter="step") from exc
    problem = step_problem(metric, step_ms)
    if problem or step_ms > MAX_STEP_MS:
        raise bad_parameter(
            "invalid_step", problem or "step must be at most 366d", windows=list(metric.windows)
        )
    start_ms -= start_ms % step_ms
    if end_ms <= start_ms:
        raise bad_parameter("invalid_range", "end must be after start")
    steps = (end_ms - start_ms) // step_ms
    if steps > MAX_POINTS:
        fits = fitting_step(metric, end_ms - start_ms)
        raise bad_parameter(
            "too_many_points",
            f"{format_duration(end_ms - start_ms)} at step "
            f"{format_duration(step_ms)} is {steps} steps; the limit is {MAX_POINTS}: use "
            + (f"step={fits} or coarser" if fits else "a shorter range"),
            steps=steps,
            max_points=MAX_POINTS,
            step=format_duration(step_ms),
            fitting_step=fits,
        )
    groups = tuple(split_list(group_by or ""))
    filters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in RESERVED_QUERY:  # country=DE,FR is DE or FR, like country=DE&country=FR
            filters.setdefault(key, []).extend(split_list(value))
    unknown = [d for d in (*groups, *filters) if d not in metric.dimensions]
    if unknown:
        raise bad_parameter(
            "unknown_dimension",
            f"{', '.join(cite(u) for u in sorted(set(unknown))[:5])} is not a dimension of {name}",
            dimensions=list(metric.dimensions),
        )
    # A value that reads as a number also finds it: tier=1.0 is the group "1".
    filters = {key: filter_texts(values) for key, values in filters.items()}
    req = SeriesRequest(metric, start_ms, end_ms, step_ms, groups, filters, as_of_ms)
    series, horizon = await run_in_threadpool(reader.series, req)
    return SeriesResponse(
        metric=name,
        aggregation=metric.aggregation.value,
        unit=metric.unit,
        step=format_duration(step_ms),
        start=iso(start_ms),
        start_ms=start_ms,
        end=iso(end_ms),
        end_ms=end_ms,
        horizon=iso_or_none(horizon),
        horizon_ms=horizon,
        series=[
            SeriesOut(
                group=s.group,
                points=[
                    PointOut(
                        t=iso(p.t_ms),
                        t_ms=p.t_ms,
                        value=api_number(p.value),
                        source=p.source,
                        count=p.count,
                        sessions=p.sessions,
                        overflow=p.overflow,
                    )
                    for p in s.points
                ],
            )
            for s in series
        ],
    )


def fitting_step(metric: MetricDefinition, span_ms: int) -> str | None:
    """A step the metric answers that keeps ``span_ms`` within MAX_POINTS (even once
    the start is aligned down to it): the smallest multiple of the stored window, in whole
    minutes past a minute; None when none fits (hopping windows answer one step)."""
    if metric.hop is not None:
        return None
    need = -(-span_ms // (MAX_POINTS - 1))
    window = metric.window_ms
    step = -(-need // window) * window
    if step > 60_000 and 60_000 % window == 0:
        step = -(-step // 60_000) * 60_000
    return format_duration(step) if step <= MAX_STEP_MS else None


def document_catalog(app: FastAPI, catalog: MetricCatalog) -> None:
    """Name this deployment's metrics in the OpenAPI document (an enum for ``{name}``), so
    readers of /docs and generated clients see what exists, not just "a string"."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        operation = schema["paths"].get("/v1/metrics/{name}", {}).get("get", {})
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "name" and catalog.names:
                parameter["schema"] = {
                    "type": "string",
                    "enum": list(catalog.names),
                    "title": "Name",
                }
                parameter["example"] = catalog.names[0]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
