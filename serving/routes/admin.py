"""``/v1/admin``: trigger a batch recompute, follow jobs. Always token-protected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import AdminOnly, JobsDep
from serving.errors import error_responses
from serving.models import JobList, JobOut, job_out
from serving.routes.common import job_time_error
from stratum.errors import error_detail
from stratum.storage.jobs import JobKind
from stratum.timeparse import JobTimeError, batch_range_ms

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminOnly],
    responses=error_responses(401, 422, 500, 503),
)


class BatchRequest(BaseModel):
    trigger: Literal["api", "admin", "cli"] = "api"
    mode: Literal["incremental", "full"] = Field(
        "incremental",
        description="incremental: only event hours changed since the last "
        "run (new or late events, new metrics); full: every hour",
    )
    start: str | None = Field(None, description="only hours from here (ISO-8601 or epoch ms)")
    end: str | None = Field(None, description="only hours before here")


class JobAccepted(BaseModel):
    job_id: str
    state: str

    model_config = {
        "json_schema_extra": {
            "examples": [{"job_id": "5f0c2d8e9b2a4e51a3c7d1e0f4b6a912", "state": "queued"}]
        }
    }


@router.post(
    "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Queue a batch recompute",
    description="Rejected with 409 (and the active job's id in `details.job_id`) "
    "while a batch job is queued or running, and with 422 before "
    "anything is queued when a time is unreadable or `start` is not "
    "before `end` (default now).",
    responses=error_responses(409),
)
async def trigger_batch(
    jobs: JobsDep, body: Annotated[BatchRequest | None, Body()] = None
) -> JobAccepted:
    request = body or BatchRequest()
    params: dict[str, Any] = {"mode": request.mode}
    try:  # refused here, before anything is queued, not failed later by the runner
        start_ms, end_ms = batch_range_ms(request.start, request.end)
    except JobTimeError as exc:
        raise job_time_error(exc) from exc
    for name, ms in (("start_ms", start_ms), ("end_ms", end_ms)):
        if ms is not None:
            params[name] = ms
    job = await run_in_threadpool(jobs.submit, "batch", request.trigger, params)
    return JobAccepted(job_id=job.job_id, state=job.state)


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first (paginated)")
async def list_jobs(
    jobs: JobsDep,
    kind: Annotated[JobKind | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JobList:
    page, total = await run_in_threadpool(jobs.list, kind, limit, offset)
    return JobList(jobs=[job_out(j) for j in page], total=total, limit=limit, offset=offset)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="One job and its progress",
    responses=error_responses(404),
)
async def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    job = await run_in_threadpool(jobs.get, job_id)
    if job is None:
        raise HTTPException(404, detail=error_detail("unknown_job", f"no job {job_id!r}"))
    return job_out(job)
