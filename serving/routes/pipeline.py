"""``/v1/pipeline``: throughput per stage, consumer progress per partition, the batch
horizon and recent jobs: what the pipeline health page draws, in one call."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import JobsDep, PipelineDep, RatesDep, ReadAccess, ReaderDep
from serving.models import JobOut, job_out
from serving.pipeline import COUNTERS, counter_totals, flush_seconds
from serving.routes.common import READ_ERRORS, age_s, iso, iso_or_none

router = APIRouter(tags=["status"], dependencies=[ReadAccess], responses=READ_ERRORS)

LABELS = {
    "ingest_accepted": "ingest: events accepted",
    "ingest_rejected": "ingest: events rejected",
    "speed_events": "speed: events aggregated",
    "speed_late": "speed: late events",
    "speed_skipped": "speed: re-delivered events skipped",
    "dead_letters": "speed: dead letters",
    "speed_rows": "speed: window rows upserted",
    "speed_flushes": "speed: flushes",
    "speed_flush_errors": "speed: failed flushes",
    "archive_events": "archive: events written",
    "archive_files": "archive: files written",
    "batch_runs": "batch: runs timed in this process",
}


class StageOut(BaseModel):
    stage: str = Field(description="stable key, e.g. ingest_accepted")
    label: str
    total: float = Field(description="since this process started")
    per_s: float | None = Field(
        description="rate over the last 30 s; null until the API has sampled twice"
    )


class ThroughputPoint(BaseModel):
    t: str
    t_ms: int
    per_s: dict[str, float | None] = Field(description="stage -> events per second")


class PartitionOut(BaseModel):
    source_id: str = Field(description="log epoch (or [[source]] name) and partition")
    partition: int | None
    source: str = Field(
        "events", description='the [[source]] it reads; "events": Stratum\'s own topic'
    )
    through_offset: int = Field(
        description="log offset the stored windows are complete through (committed after the write)"
    )
    watermark: str | None
    watermark_ms: int | None
    newest_event: str | None
    newest_event_ms: int | None
    lag_s: float | None = Field(description="now - newest event time (event-time lag)")
    updated_at: str
    updated_at_ms: int


class BatchPipeline(BaseModel):
    horizon: str | None
    horizon_ms: int | None
    horizon_age_s: float | None
    runs: dict[str, int] = Field(description="batch jobs by state, whole history")
    replays: dict[str, int] = Field(description="replay jobs by state, whole history")
    mean_duration_s: float | None = Field(description="mean of the last 20 successful runs")


class PipelineResponse(BaseModel):
    now: str
    now_ms: int
    counters_scope: str = Field(description="stage counters are this API process's own")
    stages: list[StageOut]
    history: list[ThroughputPoint] = Field(
        description="rates over the last 15 minutes, sampled when the API is asked"
    )
    flush_mean_ms: float | None = Field(description="mean speed-layer flush (upsert) time")
    partitions: list[PartitionOut]
    batch: BatchPipeline
    jobs: list[JobOut] = Field(description="recent batch runs and replays, newest first")
    jobs_total: int
    limit: int
    offset: int

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "now": "2026-11-21T10:05:30Z",
                    "now_ms": 1795255530000,
                    "counters_scope": "process",
                    "stages": [
                        {
                            "stage": "ingest_accepted",
                            "label": "ingest: events accepted",
                            "total": 360000.0,
                            "per_s": 201.3,
                        }
                    ],
                    "history": [
                        {
                            "t": "2026-11-21T10:05:25Z",
                            "t_ms": 1795255525000,
                            "per_s": {"ingest_accepted": 198.0},
                        }
                    ],
                    "flush_mean_ms": 7.9,
                    "partitions": [
                        {
                            "source_id": "1795253000000:0",
                            "partition": 0,
                            "through_offset": 1520,
                            "watermark": "2026-11-21T10:00:29.102Z",
                            "watermark_ms": 1795255229102,
                            "newest_event": "2026-11-21T10:05:29.1Z",
                            "newest_event_ms": 1795255529100,
                            "lag_s": 0.9,
                            "updated_at": "2026-11-21T10:05:29.8Z",
                            "updated_at_ms": 1795255529800,
                        }
                    ],
                    "batch": {
                        "horizon": "2026-11-21T09:55:00Z",
                        "horizon_ms": 1795254900000,
                        "horizon_age_s": 630.0,
                        "runs": {"succeeded": 3},
                        "replays": {},
                        "mean_duration_s": 2.6,
                    },
                    "jobs": [],
                    "jobs_total": 3,
                    "limit": 20,
                    "offset": 0,
                }
            ]
        }
    }


@router.get(
    "/v1/pipeline",
    response_model=PipelineResponse,
    summary="Pipeline health",
    description="Throughput per stage (this process's counters), each source "
    "partition's progress and event-time lag, the batch horizon and "
    "recent jobs (paginated with limit/offset).",
)
async def pipeline(
    reader: ReaderDep,
    state: PipelineDep,
    jobs: JobsDep,
    rates: RatesDep,
    limit: Annotated[int, Query(ge=1, le=200, description="jobs per page")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> PipelineResponse:
    def read() -> PipelineResponse:
        rates.sample()  # rates come from samples a second apart at least ...
        per_s = rates.rates()
        totals = counter_totals()  # ... totals are read now: a 202 just given is in them
        now_ms = int(time.time() * 1000)
        generation = reader.live_generation()
        horizon = reader.horizon_ms()
        counts = state.job_counts()
        page, total = jobs.list(None, limit, offset)
        flushes, flush_total = flush_seconds()
        return PipelineResponse(
            now=iso(now_ms),
            now_ms=now_ms,
            counters_scope="process",
            stages=[
                StageOut(stage=k, label=LABELS[k], total=totals[k], per_s=per_s[k])
                for k in COUNTERS
            ],
            history=[
                ThroughputPoint(t=iso(int(t * 1000)), t_ms=int(t * 1000), per_s=r)
                for t, r in rates.history()
            ],
            flush_mean_ms=round(1000 * flush_total / flushes, 3) if flushes else None,
            partitions=[
                PartitionOut(
                    source_id=p.source_id,
                    partition=p.partition,
                    source=p.source,
                    through_offset=p.through_offset,
                    watermark=iso_or_none(p.watermark_ms),
                    watermark_ms=p.watermark_ms,
                    newest_event=iso_or_none(p.max_event_ms),
                    newest_event_ms=p.max_event_ms,
                    lag_s=age_s(now_ms, p.max_event_ms),
                    updated_at=iso(p.updated_at_ms),
                    updated_at_ms=p.updated_at_ms,
                )
                for p in state.partitions(generation)
            ],
            batch=BatchPipeline(
                horizon=iso_or_none(horizon),
                horizon_ms=horizon,
                horizon_age_s=age_s(now_ms, horizon),
                runs=counts.get("batch", {}),
                replays=counts.get("replay", {}),
                mean_duration_s=state.mean_batch_seconds(),
            ),
            jobs=[job_out(j) for j in page],
            jobs_total=total,
            limit=limit,
            offset=offset,
        )

    return await run_in_threadpool(read)
