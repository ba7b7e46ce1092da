"""``/v1/admin/definitions`` and ``/v1/admin/metrics/{name}``: metric definitions as data,
changed while everything runs (:mod:`stratum.definitions_apply`). Admin token only."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import AdminOnly, CatalogDep, ReaderDep, SettingsDep
from serving.errors import error_responses
from serving.models import PointOut, SeriesOut, SeriesResponse
from serving.queries import MAX_POINTS, default_step_ms, step_problem
from serving.routes.common import bad_parameter, iso, time_param
from stratum.definitions import (
    catalog_document,
    delete_metric,
    document_toml,
    parse_document,
    parse_toml,
    problems_of,
    put_metric,
)
from stratum.definitions_apply import apply_catalog
from stratum.errors import cite, error_detail
from stratum.metrics import MetricCatalog, MetricDefinitionError
from stratum.storage.definitions import DefinitionStore
from stratum.windows import format_duration, parse_duration_ms

router = APIRouter(
    prefix="/v1/admin",
    tags=["definitions"],
    dependencies=[AdminOnly],
    responses=error_responses(400, 401, 422, 500, 503),
)
MAX_PREVIEW_MS = 7 * 86_400_000


class VersionOut(BaseModel):
    version: int
    author: str
    reason: str
    change: str = Field(description="what the version changed: added, changed, deleted")
    created_at: str
    created_at_ms: int


class CurrentOut(VersionOut):
    generation: int = Field(description="the live speed generation computing it")
    document: dict[str, Any] = Field(
        description='the whole definitions document, as the file\'s tables: {"metric": [...]}'
    )
    toml: str = Field(description="the same as the definitions file")


class DefinitionsOut(BaseModel):
    current: CurrentOut
    history: list[VersionOut] = Field(description="versions, newest first")


class Draft(BaseModel):
    """A whole document (``toml`` text or ``document``), or one ``metric`` (its fields with
    the file's names, ``name`` included) applied to the current definitions."""

    toml: str | None = None
    document: dict[str, Any] | None = None
    metric: dict[str, Any] | None = None


class ValidationOut(BaseModel):
    valid: bool
    problems: list[str] = Field(description="one message per mistake, as the file reports")
    toml: str | None = Field(None, description="the valid draft as the definitions file")


class ImportBody(BaseModel):
    toml: str | None = None
    document: dict[str, Any] | None = None
    author: str = "admin"
    reason: str = ""


class StartedJob(BaseModel):
    job_id: str
    kind: str
    state: str


class AppliedOut(BaseModel):
    version: int
    change: str
    added: list[str]
    changed: list[str]
    deleted: list[str]
    rebuilds: list[str] = Field(
        description="metrics a Kappa replay rebuilds before the "
        "switch (changed ones); the rest took effect at once"
    )
    jobs: list[StartedJob] = Field(
        description="the change's own job (kind definitions), "
        "then the replay and/or batch jobs it started"
    )
    restart_needed: list[str] = Field(
        default_factory=list,
        description="sources no worker reads until the workers restart (a source added, "
        "or changed, while they run: a worker subscribes its topics at start); nothing "
        "of such a source is computed until then",
    )


class PreviewBody(BaseModel):
    metric: dict[str, Any] = Field(description="the draft metric's fields, name included")
    start: str | None = Field(None, description="default: end - 3h")
    end: str | None = Field(None, description="default: now")
    step: str | None = Field(None, description="default: the finest window")


def _draft_catalog(draft: Draft | ImportBody, current: MetricCatalog) -> MetricCatalog:
    if draft.toml is not None:
        return parse_toml(draft.toml, "draft")
    if draft.document is not None:
        return parse_document(draft.document, "draft")
    metric = getattr(draft, "metric", None)
    if metric is not None:
        name = metric.get("name")
        if not isinstance(name, str):
            raise MetricDefinitionError("draft has 1 problem(s):\n  metric: name: Field required")
        return put_metric(current, name, metric)
    raise MetricDefinitionError("draft: send toml, document or metric")


def _version_out(v: Any) -> dict[str, Any]:
    ms = int(v.created_at.timestamp() * 1000)
    return {
        "version": v.version,
        "author": v.author,
        "reason": v.reason,
        "change": v.change,
        "created_at": iso(ms),
        "created_at_ms": ms,
    }


def _applied(result: Any) -> AppliedOut:
    return AppliedOut(
        version=result.version,
        change=result.change.summary(),
        added=result.change.added,
        changed=result.change.changed,
        deleted=result.change.deleted,
        rebuilds=result.rebuilds,
        restart_needed=result.restart_needed,
        jobs=[StartedJob(job_id=j.job_id, kind=j.kind, state=j.state) for j in result.jobs],
    )


@router.get(
    "/definitions",
    response_model=DefinitionsOut,
    summary="The current definitions version and the history of versions",
)
def get_definitions(
    reader: ReaderDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DefinitionsOut:
    store = DefinitionStore(reader.storage)
    generation, binding, catalog = store.live()
    current = store.get(binding.version)
    assert current is not None
    document = catalog_document(catalog)
    return DefinitionsOut(
        current=CurrentOut(
            **_version_out(current),
            generation=generation,
            document=document,
            toml=document_toml(document),
        ),
        history=[VersionOut(**_version_out(v)) for v in store.history(limit)],
    )


@router.put(
    "/definitions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AppliedOut,
    summary="Apply a whole definitions document (what `stratum definitions import` sends)",
    responses=error_responses(409),
)
def import_definitions(
    body: ImportBody, request: Request, catalog: CatalogDep, reader: ReaderDep
) -> AppliedOut:
    new = _draft_catalog(body, catalog)
    return _apply(request, reader, lambda _: new, body.author, body.reason)


@router.post(
    "/definitions/validate",
    response_model=ValidationOut,
    summary="Check a draft: every mistake, with the file's messages",
)
def validate_definitions(draft: Draft, catalog: CatalogDep) -> ValidationOut:
    try:
        checked = _draft_catalog(draft, catalog)
    except MetricDefinitionError as exc:
        return ValidationOut(valid=False, problems=problems_of(exc))
    return ValidationOut(valid=True, problems=[], toml=document_toml(catalog_document(checked)))


@router.post(
    "/definitions/preview",
    response_model=SeriesResponse,
    summary="A draft metric computed by the batch code over the archive",
    description="Nothing is stored. One series (all groups together); points say "
    "`batch`. Duplicate event ids are not dropped (a batch run does).",
)
async def preview_definition(
    body: PreviewBody, catalog: CatalogDep, settings: SettingsDep, request: Request
) -> SeriesResponse:
    name = body.metric.get("name")
    if not isinstance(name, str):
        raise bad_parameter("invalid_definition", "metric: name: Field required")
    metric = put_metric(catalog, name, body.metric).get(name)
    assert metric is not None
    if metric.session_gap is not None:
        raise bad_parameter(
            "invalid_definition",
            "a preview of session windows is not supported; apply it and read /v1/metrics/{name}",
        )
    now_ms = int(time.time() * 1000)
    end_ms = time_param(body.end, now_ms, now_ms, "end")
    start_ms = time_param(body.start, end_ms - 3 * 3_600_000, now_ms, "start")
    try:
        step_ms = parse_duration_ms(body.step) if body.step else default_step_ms(metric)
    except ValueError as exc:
        raise bad_parameter("invalid_parameter", f"step: {exc}", parameter="step") from exc
    problem = step_problem(metric, step_ms)
    if problem:
        raise bad_parameter("invalid_step", problem, windows=list(metric.windows))
    start_ms -= start_ms % step_ms
    if (
        not start_ms < end_ms <= start_ms + MAX_PREVIEW_MS
        or (end_ms - start_ms) // step_ms > MAX_POINTS
    ):
        raise bad_parameter(
            "invalid_range", f"end must be after start, at most 7 days and {MAX_POINTS} steps later"
        )
    # The batch layer's code, handed in by the wiring (serving does not import a layer).
    preview: Callable[..., list[Any]] | None = getattr(request.app.state, "previewer", None)
    if preview is None:
        raise HTTPException(
            503,
            detail=error_detail(
                "preview_unavailable",
                "this process was started without the batch layer's "
                "preview; use the API of `stratum up` or `stratum api`",
            ),
        )
    points = await run_in_threadpool(preview, settings, metric, start_ms, end_ms, step_ms)
    return SeriesResponse(
        metric=name,
        aggregation=metric.aggregation.value,
        unit=metric.unit,
        step=format_duration(step_ms),
        start=iso(start_ms),
        start_ms=start_ms,
        end=iso(end_ms),
        end_ms=end_ms,
        horizon=None,
        horizon_ms=None,
        series=[
            SeriesOut(
                group={},
                points=[
                    PointOut(
                        t=iso(p.t_ms), t_ms=p.t_ms, value=p.value, source="batch", count=p.count
                    )
                    for p in points
                ],
            )
        ]
        if points
        else [],
    )


@router.put(
    "/metrics/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AppliedOut,
    summary="Add or change one metric, without a restart",
    description="Body: the metric's fields with the file's names, e.g. "
    '`{"aggregation": "count", "dimensions": ["country"], '
    '"windows": ["1m", "1h"]}`. A new metric is computed by the '
    "speed layer within seconds and backfilled by a batch job; a "
    "changed one is rebuilt by a Kappa replay into a new generation "
    "(the old one serves until the switch), then recomputed by batch.",
    responses=error_responses(409),
)
def put_metric_route(
    name: str,
    request: Request,
    catalog: CatalogDep,
    reader: ReaderDep,
    fields: Annotated[dict[str, Any], Body()],
    reason: Annotated[str, Query(max_length=2000)] = "",
    author: Annotated[str, Query(max_length=200)] = "admin",
) -> AppliedOut:
    del catalog
    return _apply(
        request,
        reader,
        lambda live: put_metric(live, name, fields, source=f"metric {name}"),
        author,
        reason,
    )


@router.delete(
    "/metrics/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AppliedOut,
    summary="Delete one metric, without a restart",
    description="Computing and serving stop at once; its stored windows are "
    "dropped after STRATUM_DEFINITIONS__DELETED_RETENTION_S.",
    responses=error_responses(404, 409),
)
def delete_metric_route(
    name: str,
    request: Request,
    catalog: CatalogDep,
    reader: ReaderDep,
    reason: Annotated[str, Query(max_length=2000)] = "",
    author: Annotated[str, Query(max_length=200)] = "admin",
) -> AppliedOut:
    if catalog.get(name) is None:
        raise HTTPException(
            404,
            detail={
                "code": "unknown_metric",
                "message": f"no metric named {cite(name)}",
                "details": {"metrics": catalog.names},
            },
        )
    return _apply(request, reader, lambda live: delete_metric(live, name), author, reason)


def _apply(
    request: Request,
    reader: ReaderDep,
    edit: Callable[[MetricCatalog], MetricCatalog],
    author: str,
    reason: str,
) -> AppliedOut:
    result = apply_catalog(reader.storage, edit, author=author, reason=reason)
    request.app.state.definitions.refresh()  # this process serves it at once
    return _applied(result)
