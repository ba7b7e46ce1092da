"""Response models shared by several routes: the job rows of ``/v1/admin/jobs``,
``/v1/status`` and ``/v1/pipeline``, and the series of ``/v1/metrics/{name}`` that the
definitions preview answers too (kept here so that no route imports another)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from serving.routes.common import ms_of
from stratum.storage.jobs import Job

_JOB_EXAMPLE: dict[str, Any] = {
    "job_id": "5f0c2d8e9b2a4e51a3c7d1e0f4b6a912",
    "kind": "batch",
    "trigger": "api",
    "params": {"mode": "full"},
    "state": "succeeded",
    "units_done": 3,
    "units_total": 3,
    "rows_in": 360000,
    "rows_out": 5412,
    "horizon": "2026-11-21T09:55:00Z",
    "horizon_ms": 1795254900000,
    "created_at": "2026-11-21T10:00:00.120Z",
    "created_at_ms": 1795255200120,
    "started_at": "2026-11-21T10:00:00.410Z",
    "started_at_ms": 1795255200410,
    "finished_at": "2026-11-21T10:00:02.980Z",
    "finished_at_ms": 1795255202980,
    "error": "",
}


class JobOut(BaseModel):
    job_id: str
    kind: str = Field(description="batch or replay")
    trigger: str = Field(description="schedule, api, admin or cli")
    params: dict[str, Any]
    state: str = Field(description="queued, running, succeeded, failed or cancelled")
    units_done: int
    units_total: int
    rows_in: int
    rows_out: int
    horizon: datetime | None = Field(description="batch values final up to here (batch jobs)")
    horizon_ms: int | None
    created_at: datetime
    created_at_ms: int
    started_at: datetime | None
    started_at_ms: int | None
    finished_at: datetime | None
    finished_at_ms: int | None
    error: str

    model_config = {"json_schema_extra": {"examples": [_JOB_EXAMPLE]}}


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int = Field(description="jobs matching, over all pages")
    limit: int
    offset: int

    model_config = {
        "json_schema_extra": {
            "examples": [{"jobs": [_JOB_EXAMPLE], "total": 1, "limit": 50, "offset": 0}]
        }
    }


def job_out(job: Job) -> JobOut:
    data = job.model_dump()
    for name in ("horizon", "created_at", "started_at", "finished_at"):
        data[f"{name}_ms"] = ms_of(data[name])
    return JobOut.model_validate(data)


class PointOut(BaseModel):
    t: str = Field(
        description="window (or step) start, ISO-8601 UTC; for session metrics "
        "the bucket of the sessions' starts"
    )
    t_ms: int = Field(description="the same, epoch milliseconds")
    value: float | None
    source: str = Field(description="batch, speed, or mixed (a step spanning the horizon)")
    count: int = Field(description="events behind the value")
    sessions: int | None = Field(
        None,
        description="session metrics: the sessions that "
        "started in the bucket; null for other metrics",
    )
    overflow: bool = Field(
        False,
        description="the value does not fit a float64 (e.g. a "
        "sum past 1.8e308); value is then null",
    )


class SeriesOut(BaseModel):
    group: dict[str, str]
    points: list[PointOut]


class SeriesResponse(BaseModel):
    metric: str
    aggregation: str
    unit: str
    step: str
    start: str
    start_ms: int
    end: str
    end_ms: int
    horizon: str | None = Field(description="batch values are authoritative up to here")
    horizon_ms: int | None
    series: list[SeriesOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "metric": "revenue",
                    "aggregation": "sum",
                    "unit": "EUR",
                    "step": "1m",
                    "start": "2026-11-21T10:00:00Z",
                    "start_ms": 1795255200000,
                    "end": "2026-11-21T10:02:00Z",
                    "end_ms": 1795255320000,
                    "horizon": "2026-11-21T10:01:00Z",
                    "horizon_ms": 1795255260000,
                    "series": [
                        {
                            "group": {"country": "DE"},
                            "points": [
                                {
                                    "t": "2026-11-21T10:00:00Z",
                                    "t_ms": 1795255200000,
                                    "value": 120.5,
                                    "source": "batch",
                                    "count": 9,
                                },
                                {
                                    "t": "2026-11-21T10:01:00Z",
                                    "t_ms": 1795255260000,
                                    "value": 80.0,
                                    "source": "speed",
                                    "count": 6,
                                },
                            ],
                        }
                    ],
                }
            ]
        }
    }
