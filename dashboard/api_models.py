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


class MetricInfo(_Model):
    name: str
    description: str = ""
    aggregation: str
    field: str | None = None
    quantile: float | None = None
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
        return self.aggregation in ("count", "sum")


class MetricList(_Model):
    metrics: tuple[MetricInfo, ...]


class Point(_Model):
    t: datetime
    value: float | None = None
    source: str = "speed"


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
