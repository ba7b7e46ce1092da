"""What the explorer draws from one series response: the figure, the table's columns and
the one-line summary above the chart. Outside ``pages/`` so tests can import it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go
from dash.dash_table.DataTable import DataTable

from dashboard.api_models import Job, MetricInfo, SeriesResponse
from dashboard.drawing import drawn_points, split_open
from dashboard.figures import message_figure, metric_figure
from dashboard.formatting import fmt_clock, fmt_when, number_format, zone_name
from dashboard.series import has_values, latest_point, lines_of, run_marks, to_naive_utc


def view_figure(
    metric: MetricInfo, response: SeriesResponse, jobs: Sequence[Job], now: datetime
) -> go.Figure:
    lines = lines_of(response, additive=metric.additive)
    if not has_values(lines):
        return message_figure("No data for this view: widen the range or clear the filter")
    return metric_figure(
        metric,
        lines,
        start=response.start,
        end=response.end,
        step=response.step,
        horizon=response.horizon,
        runs=run_marks(jobs),
        now=now,
    )


def table_columns(metric: MetricInfo | None) -> list[DataTable.Columns]:
    """Values formatted as on the chart and tiles (no decimals on counts and distinct
    counts), events with thousands separators, and a note for open and missing windows."""
    unit = f" ({metric.unit})" if metric and metric.unit else ""
    value_format: DataTable.ColumnsFormat = {
        "specifier": number_format(metric) if metric else ",.2f"
    }
    return [
        {"name": f"window start ({zone_name()})", "id": "window"},
        {"name": "group", "id": "group"},
        {"name": f"value{unit}", "id": "value", "type": "numeric", "format": value_format},
        {"name": "source", "id": "source"},
        {"name": "events", "id": "events", "type": "numeric", "format": {"specifier": ",.0f"}},
        {"name": "note", "id": "note"},
    ]


def summary_text(metric: MetricInfo, response: SeriesResponse, now: datetime) -> str:
    """What is drawn: points, lines (top N + other as in the legend), gaps and open
    windows; then step, range, horizon and the newest complete point."""
    lines = lines_of(response, additive=metric.additive)
    pieces = [split_open(line, response.step, to_naive_utc(now)) for line in lines]
    points = drawn_points(pieces)
    groups = len([s for s in response.series if s.points])
    shown = f"{len(lines)} line{'s' * (len(lines) != 1)}"
    if groups > len(lines) or any(line.folded for line in lines):
        folded = sum(line.folded for line in lines)
        shown += (
            f" (top {len(lines) - 1} of {groups} groups + other of {folded})"
            if folded
            else f" (largest {len(lines)} of {groups} groups)"
        )
    parts = [f"{points:,} point{'s' * (points != 1)} in {shown}"]
    gaps = sum(piece.gaps for piece in pieces)
    if gaps:
        parts.append(f"⚠ {gaps} gap{'s' * (gaps != 1)} (missing windows)")
    if any(piece.open is not None for piece in pieces):
        parts.append("last window in progress")
    parts += [
        f"step {response.step}",
        f"{fmt_when(response.start, now)} – {fmt_when(response.end, now)} {zone_name()}",
    ]
    parts.append(
        f"batch horizon {fmt_clock(response.horizon)}"
        if response.horizon
        else "no batch horizon yet"
    )
    newest = latest_point(response)
    if newest is not None:
        parts.append(f"newest {fmt_clock(newest.t)} ({newest.source})")
    return " · ".join(parts)
