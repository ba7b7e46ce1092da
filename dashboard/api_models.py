"""The dashboard's reading of the REST API contract.

The dashboard may talk to an API on another host, so it validates what comes back
instead of importing serving's models: a body outside the contract becomes one clear
message rather than a ``KeyError`` deep inside a callback. Unknown fields are
ignored so that the API can grow without breaking the dashboard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class KindInfo(_Model):
    """What the API says about a metric's aggregation kind; the dashboard decides with
    it, never with the kind's name. Unknown (an older API): nothing is assumed."""

    additive: bool = False  # values of separate windows or groups add up
    whole: bool = False  # values are whole numbers
    accumulates: bool = False  # a window's value grows until the window is complete
    approximate: bool = False
    field: str = "none"


class MetricInfo(_Model):
    name: str
    description: str = ""
    aggregation: str
    kind: KindInfo = Field(default_factory=KindInfo)
    field: str | None = None
    quantile: float | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    dimensions: tuple[str, ...] = ()
    windows: tuple[str, ...] = ("1m",)
    unit: str = ""

    @property
    def finest_window(self) -> str:
        """The API lists windows finest first; it is the step the overview draws at."""
        return self.windows[0] if self.windows else "1m"

    @property
    def additive(self) -> bool:
        """Counts and sums add up across groups and windows; quantiles and averages don't."""
        return self.kind.additive

    @property
    def counts_events(self) -> bool:
        """Whether the value is the number of matching events (no field, additive)."""
        return self.kind.field == "none" and self.kind.additive


class MetricList(_Model):
    metrics: tuple[MetricInfo, ...]


class Point(_Model):
    t: datetime
    value: float | None = None
    source: str = "speed"
    count: int | None = None


class Series(_Model):
    group: dict[str, str] = Field(default_factory=dict)
    points: tuple[Point, ...] = ()


class SeriesResponse(_Model):
    metric: str
    step: str
    start: datetime
    end: datetime
    horizon: datetime | None = None
    series: tuple[Series, ...] = ()


class DriftPoint(_Model):
    t: datetime
    speed: float | None = None
    batch: float | None = None
    difference: float | None = None
    relative: float | None = None
    speed_count: int = 0
    batch_count: int = 0
    reason: str = "none"


class DriftSummary(_Model):
    windows_compared: int = 0
    windows_off: int = 0
    max_abs_difference: float = 0.0
    max_abs_relative: float = 0.0
    by_reason: dict[str, int] = Field(default_factory=dict)


class Drift(_Model):
    metric: str
    start: datetime
    end: datetime
    summary: DriftSummary = DriftSummary()
    points: tuple[DriftPoint, ...] = ()


class ComponentHealth(_Model):
    status: str = "unknown"
    detail: str = ""


class Health(_Model):
    status: str
    components: dict[str, ComponentHealth] = Field(default_factory=dict)


class Job(_Model):
    job_id: str
    kind: str = "batch"
    trigger: str | None = None
    params: dict[str, Any] | None = None
    state: str
    units_done: int | None = None
    units_total: int | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    horizon: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class JobPage(_Model):
    jobs: tuple[Job, ...] = ()
    total: int = 0


class JobCreated(_Model):
    job_id: str
    state: str = "queued"


class Generation(_Model):
    """Which speed-view generation readers use, and a replay's being handed off, if any."""

    live: int
    handoff: int | None = None


class BatchStatus(_Model):
    horizon: datetime | None = None
    horizon_age_s: float | None = None
    last_run: Job | None = None


class SpeedStatus(_Model):
    partitions: int = 0
    newest_event: datetime | None = None
    lag_s: float | None = None
    max_partition_lag_s: float | None = None
    watermark: datetime | None = None
    watermark_lag_s: float | None = None
    last_flush: datetime | None = None


class MetricStatus(_Model):
    name: str
    window: str = "1m"
    newest_window: datetime | None = None
    source: str | None = None
    newest_final_window: datetime | None = None
    freshness_s: float | None = None


class Status(_Model):
    now: datetime
    generation: int = 0
    batch: BatchStatus = BatchStatus()
    speed: SpeedStatus = SpeedStatus()
    metrics: tuple[MetricStatus, ...] = ()


class Stage(_Model):
    stage: str
    label: str = ""
    total: float = 0.0
    per_s: float | None = None


class ThroughputPoint(_Model):
    t: datetime
    per_s: dict[str, float | None] = Field(default_factory=dict)


class Partition(_Model):
    source_id: str
    partition: int | None = None
    source: str = "events"
    through_offset: int = -1
    watermark: datetime | None = None
    newest_event: datetime | None = None
    lag_s: float | None = None
    updated_at: datetime | None = None


class BatchPipeline(_Model):
    horizon: datetime | None = None
    horizon_age_s: float | None = None
    runs: dict[str, int] = Field(default_factory=dict)
    replays: dict[str, int] = Field(default_factory=dict)
    mean_duration_s: float | None = None


class Pipeline(_Model):
    now: datetime
    stages: tuple[Stage, ...] = ()
    history: tuple[ThroughputPoint, ...] = ()
    flush_mean_ms: float | None = None
    partitions: tuple[Partition, ...] = ()
    batch: BatchPipeline = BatchPipeline()
    jobs: tuple[Job, ...] = ()
    jobs_total: int = 0

    def stage(self, key: str) -> Stage:
        """A stage by key; an API without it reads as zero, not as a crash."""
        return next((s for s in self.stages if s.stage == key), Stage(stage=key))
