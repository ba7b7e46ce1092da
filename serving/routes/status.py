"""``/v1/status``: how fresh each metric is, where the batch horizon stands, and the speed
layer's event-time lag: the questions to answer before trusting a chart."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving.deps import CatalogDep, JobsDep, PipelineDep, RatesDep, ReadAccess, ReaderDep
from serving.models import JobOut, job_out
from serving.pipeline import PartitionProgress, PipelineReader
from serving.routes.common import READ_ERRORS, age_s, iso, iso_or_none
from stratum.metrics import MetricCatalog

router = APIRouter(tags=["status"], dependencies=[ReadAccess], responses=READ_ERRORS)


class BatchStatus(BaseModel):
    horizon: str | None = Field(description="batch values are authoritative up to here")
    horizon_ms: int | None
    horizon_age_s: float | None = Field(description="now - horizon, seconds")
    last_run: JobOut | None = Field(description="the newest batch job, whatever its state")


class SpeedStatus(BaseModel):
    partitions: int = Field(description="source partitions of the current log epoch")
    newest_event: str | None = Field(description="newest event time seen, any partition")
    newest_event_ms: int | None
    lag_s: float | None = Field(
        description="now - newest event time: end-to-end event-time lag; null before any event"
    )
    max_partition_lag_s: float | None = Field(description="the worst partition's lag")
    watermark: str | None = Field(
        description="the lowest partition watermark: windows ending before it are final"
    )
    watermark_ms: int | None
    watermark_lag_s: float | None = Field(description="now - watermark")
    last_flush: str | None = Field(description="newest checkpoint write")
    last_flush_ms: int | None


class MetricStatus(BaseModel):
    name: str
    window: str = Field(description="the stored (finest) window size")
    newest_window: str | None = Field(description="start of the newest window with data")
    newest_window_ms: int | None
    source: str | None = Field(description="batch or speed: who serves the newest window")
    newest_final_window: str | None = Field(
        description="newest window the watermark (or a batch run) has closed"
    )
    newest_final_window_ms: int | None
    freshness_s: float | None = Field(description="now - end of the newest window")


class StatusResponse(BaseModel):
    now: str
    now_ms: int
    generation: int = Field(description="the speed generation readers use")
    batch: BatchStatus
    speed: SpeedStatus
    metrics: list[MetricStatus]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "now": "2026-11-21T10:05:30Z",
                    "now_ms": 1795255530000,
                    "generation": 0,
                    "batch": {
                        "horizon": "2026-11-21T09:55:00Z",
                        "horizon_ms": 1795254900000,
                        "horizon_age_s": 630.0,
                        "last_run": None,
                    },
                    "speed": {
                        "partitions": 4,
                        "newest_event": "2026-11-21T10:05:29.412Z",
                        "newest_event_ms": 1795255529412,
                        "lag_s": 0.588,
                        "max_partition_lag_s": 0.9,
                        "watermark": "2026-11-21T10:00:29.102Z",
                        "watermark_ms": 1795255229102,
                        "watermark_lag_s": 300.898,
                        "last_flush": "2026-11-21T10:05:29.800Z",
                        "last_flush_ms": 1795255529800,
                    },
                    "metrics": [
                        {
                            "name": "events",
                            "window": "1m",
                            "newest_window": "2026-11-21T10:05:00Z",
                            "newest_window_ms": 1795255500000,
                            "source": "speed",
                            "newest_final_window": "2026-11-21T09:59:00Z",
                            "newest_final_window_ms": 1795255140000,
                            "freshness_s": 0.0,
                        }
                    ],
                }
            ]
        }
    }


def speed_status(parts: list[PartitionProgress], now_ms: int) -> SpeedStatus:
    events = [p.max_event_ms for p in parts if p.max_event_ms is not None]
    marks = [p.watermark_ms for p in parts if p.watermark_ms is not None]
    newest = max(events, default=None)
    watermark = min(marks, default=None)
    flushed = max((p.updated_at_ms for p in parts), default=None) or None
    return SpeedStatus(
        partitions=len(parts),
        newest_event=iso_or_none(newest),
        newest_event_ms=newest,
        lag_s=age_s(now_ms, newest),
        max_partition_lag_s=age_s(now_ms, min(events, default=None)),
        watermark=iso_or_none(watermark),
        watermark_ms=watermark,
        watermark_lag_s=age_s(now_ms, watermark),
        last_flush=iso_or_none(flushed),
        last_flush_ms=flushed,
    )


def _metric_statuses(
    catalog: MetricCatalog, pipeline: PipelineReader, generation: int, now_ms: int
) -> list[MetricStatus]:
    newest = pipeline.newest_windows(generation)
    found = []
    for metric in catalog.metrics:
        seen = newest.get((metric.name, metric.window_ms))
        speed_ms = seen.speed_ms if seen else None
        batch_ms = seen.batch_ms if seen else None
        candidates = [ms for ms in (speed_ms, batch_ms) if ms is not None]
        newest_ms = max(candidates, default=None)
        source = None
        if newest_ms is not None:
            source = "batch" if batch_ms is not None and batch_ms >= (speed_ms or 0) else "speed"
        finals = [ms for ms in (seen.speed_final_ms if seen else None, batch_ms) if ms is not None]
        final_ms = max(finals, default=None)
        end_ms = newest_ms + metric.window_ms if newest_ms is not None else None
        found.append(
            MetricStatus(
                name=metric.name,
                window=metric.windows[0],
                newest_window=iso_or_none(newest_ms),
                newest_window_ms=newest_ms,
                source=source,
                newest_final_window=iso_or_none(final_ms),
                newest_final_window_ms=final_ms,
                freshness_s=age_s(now_ms, end_ms),
            )
        )
    return found


@router.get(
    "/v1/status",
    response_model=StatusResponse,
    summary="Freshness and horizon",
    description="Per metric the newest window with data and who serves it, the batch "
    "horizon, and the speed layer's event-time lag and watermark.",
)
async def status(
    catalog: CatalogDep, reader: ReaderDep, pipeline: PipelineDep, jobs: JobsDep, rates: RatesDep
) -> StatusResponse:
    def read() -> StatusResponse:
        rates.sample()
        now_ms = int(time.time() * 1000)
        generation = reader.live_generation()
        horizon = reader.horizon_ms()
        last, _ = jobs.list("batch", 1, 0)
        return StatusResponse(
            now=iso(now_ms),
            now_ms=now_ms,
            generation=generation,
            batch=BatchStatus(
                horizon=iso_or_none(horizon),
                horizon_ms=horizon,
                horizon_age_s=age_s(now_ms, horizon),
                last_run=job_out(last[0]) if last else None,
            ),
            speed=speed_status(pipeline.partitions(generation), now_ms),
            metrics=_metric_statuses(catalog, pipeline, generation, now_ms),
        )

    return await run_in_threadpool(read)
