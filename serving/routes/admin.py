"""``/v1/admin``: trigger a batch recompute, follow jobs. Always token-protected."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from serving.deps import AdminOnly, JobsDep
from stratum.storage.jobs import Job

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminOnly])


class BatchRequest(BaseModel):
    trigger: Literal["api", "admin", "cli"] = "api"


class JobAccepted(BaseModel):
    job_id: str
    state: str


class JobOut(BaseModel):
    job_id: str
    kind: str
    trigger: str
    params: dict[str, Any]
    state: str
    units_done: int
    units_total: int
    rows_in: int
    rows_out: int
    horizon: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job.model_dump())


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted,
             summary="Queue a batch recompute",
             responses={409: {"description": "a batch job is already queued or running"}})
async def trigger_batch(jobs: JobsDep,
                        body: Annotated[BatchRequest | None, Body()] = None) -> JobAccepted:
    trigger = body.trigger if body else "api"
    job = await run_in_threadpool(jobs.submit, "batch", trigger, {"mode": "full"})
    return JobAccepted(job_id=job.job_id, state=job.state)


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first")
async def list_jobs(jobs: JobsDep,
                    kind: Annotated[Literal["batch", "replay"] | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0) -> JobList:
    page, total = await run_in_threadpool(jobs.list, kind, limit, offset)
    return JobList(jobs=[job_out(j) for j in page], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job and its progress")
async def get_job(job_id: str, jobs: JobsDep) -> JobOut:
    job = await run_in_threadpool(jobs.get, job_id)
    if job is None:
        raise HTTPException(404, detail={"code": "unknown_job",
                                         "message": f"no job {job_id!r}", "details": {}})
    return job_out(job)
