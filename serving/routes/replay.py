"""``/v1/admin/replay`` and friends: start a Kappa replay, cancel a job, see generations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import AdminOnly, CatalogDep, JobsDep, ReaderDep
from serving.errors import error_responses
from serving.routes.common import job_time_error
from stratum.errors import error_detail
from stratum.replay_range import describe, range_params
from stratum.storage import generations
from stratum.storage.jobs import request_cancel, utc_now
from stratum.timeparse import JobTimeError, replay_from_ms

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminOnly],
    responses=error_responses(401, 422, 500, 503),
)


class ReplayRequest(BaseModel):
    from_time: str | None = Field(
        None,
        alias="from",
        description="rebuild windows from this "
        "time (ISO-8601 or epoch ms); default: all of history",
    )
    trigger: Literal["api", "admin", "cli"] = "api"

    model_config = {"populate_by_name": True}


class ReplayAccepted(BaseModel):
    job_id: str
    state: str
    rebuilds: str | None = Field(
        None,
        description="what a started replay rebuilds and "
        "what it keeps served (also in the job's params)",
    )


class GenerationOut(BaseModel):
    live: int = Field(description="the generation readers use")
    handoff: int | None = Field(description="a replay's generation being handed off, if any")


@router.post(
    "/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayAccepted,
    summary="Rebuild the speed views from the log (Kappa replay)",
    responses=error_responses(409),
)
async def start_replay(
    jobs: JobsDep, catalog: CatalogDep, body: Annotated[ReplayRequest | None, Body()] = None
) -> ReplayAccepted:
    request = body or ReplayRequest()
    params: dict[str, object] = {}
    start_ms = None
    try:  # refused before anything is queued: an unreadable or future time
        from_ms = replay_from_ms(request.from_time)
    except JobTimeError as exc:
        raise job_time_error(exc) from exc
    if from_ms is not None:
        params["from_ms"] = from_ms
        start_ms = catalog.replay_start_ms(from_ms)
    params.update(range_params(start_ms))
    job = await run_in_threadpool(jobs.submit, "replay", request.trigger, params)
    return ReplayAccepted(job_id=job.job_id, state=job.state, rebuilds=describe(params))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=ReplayAccepted,
    summary="Cancel a queued or running job",
    responses=error_responses(404, 409),
)
async def cancel_job(job_id: str, jobs: JobsDep, reader: ReaderDep) -> ReplayAccepted:
    job = await run_in_threadpool(jobs.get, job_id)
    if job is None:
        raise HTTPException(404, detail=error_detail("unknown_job", f"no job {job_id!r}"))
    if not job.active:
        raise HTTPException(
            409,
            detail=error_detail(
                "job_finished", f"job {job_id} is already {job.state}", state=job.state
            ),
        )
    if job.state == "queued":
        # Flag first: a runner picking the job up right now sees the flag (JobStore.start).
        await run_in_threadpool(request_cancel, reader.storage, job_id)
        saved = await run_in_threadpool(
            jobs.save,
            job.model_copy(
                update={
                    "state": "cancelled",
                    "finished_at": utc_now(),
                    "error": "cancelled before it ran",
                }
            ),
        )
        return ReplayAccepted(job_id=saved.job_id, state=saved.state)
    if job.kind != "replay":
        raise HTTPException(
            409,
            detail=error_detail(
                "not_cancellable",
                "a running batch recompute cannot be cancelled; whatever "
                "happens to it, served values change only when it completes",
                state=job.state,
            ),
        )
    await run_in_threadpool(request_cancel, reader.storage, job_id)
    return ReplayAccepted(job_id=job_id, state="cancelling")


@router.get(
    "/generation", response_model=GenerationOut, summary="The speed-view generation readers use"
)
async def get_generation(reader: ReaderDep) -> GenerationOut:
    state = await run_in_threadpool(generations.read_state, reader.storage)
    return GenerationOut(live=state.live, handoff=state.handoff)
