"""Metrics as the dashboard reads them from ``/v1/metrics``, for dashboard unit tests."""

from __future__ import annotations

from typing import Any

from dashboard.api_models import MetricInfo
from serving.routes.metrics import kind_info
from stratum.aggregations import kind_of


def metric_info(**fields: Any) -> MetricInfo:
    """A listing entry with the kind the API serves for ``fields["aggregation"]``."""
    kind = kind_info(kind_of(fields["aggregation"])).model_dump()
    return MetricInfo.model_validate({**fields, "kind": kind})
