"""What the explorer draws from one series response: the figure, the table's columns and
the one-line summary above the chart. Outside ``pages/`` so tests can import it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from dashboard.api_models import Job, MetricInfo, SeriesResponse
from dashboard.figures import message_figure, metric_figure
from dashboard.formatting import fmt_clock, fmt_when, number_format
from dashboard.series import has_values, latest_point, lines_of, run_marks


def view_figure(metric: MetricInfo, response: SeriesResponse, jobs: Sequence[Job]) -> go.Figure:
    lines = lines_of(response, additive=metric.additive)
    if not has_values(lines):
        return message_figure("No data for this view: widen the range or clear the filter")
    return metric_figure(metric, lines, start=response.start, end=response.end,
                         step=response.step, horizon=response.horizon, runs=run_marks(jobs))


def table_columns(metric: MetricInfo | None) -> list[dict[str, Any]]:
    unit = f" ({metric.unit})" if metric and metric.unit else ""
    value_format = {"specifier": number_format(metric) if metric else ",.2f"}
    return [
        {"name": "window start (UTC)", "id": "window"},
        {"name": "group", "id": "group"},
        {"name": f"value{unit}", "id": "value", "type": "numeric", "format": value_format},
        {"name": "source", "id": "source"},
        {"name": "events", "id": "events", "type": "numeric"},
    ]


def summary_text(metric: MetricInfo, response: SeriesResponse, now: datetime) -> str:
    """Points, series, step, range, horizon and the newest point with its source."""
    points = sum(len(s.points) for s in response.series)
    parts = [f"{points:,} point{'s' * (points != 1)} in {len(response.series)} series",
             f"step {response.step}",
             f"{fmt_when(response.start, now)} – {fmt_when(response.end, now)} UTC"]
    parts.append(f"batch horizon {fmt_clock(response.horizon)}" if response.horizon
                 else "no batch horizon yet")
    newest = latest_point(response)
    if newest is not None:
        parts.append(f"newest {fmt_clock(newest.t)} ({newest.source})")
    return " · ".join(parts)
