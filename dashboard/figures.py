"""Plotly figures of metric series: lines per group over a batch region and a speed region,
and the small sparklines of the overview's tiles.

The batch horizon is where authority changes hands: windows ending at or before it
come from the batch layer, the rest from the speed layer. The chart makes that
visible three ways: shaded regions, a labelled vertical line, and each point's marker
and hover text naming its source.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
from dash import dcc

from dashboard.api_models import MetricInfo
from dashboard.formatting import number_format
from dashboard.series import Line, RunMark, to_naive_utc
from stratum.windows import parse_duration_ms

FONT_FAMILY = (
    "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', "
    "'DejaVu Sans', Arial, sans-serif"
)
INK = "#0f172a"
MUTED = "#64748b"
GRID = "#e2e8f0"
PALETTE = ("#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6",
           "#64748b")
BATCH_FILL = "rgba(79, 70, 229, 0.08)"
SPEED_FILL = "rgba(245, 158, 11, 0.10)"
HORIZON_COLOR = "#334155"
SYMBOLS = {"batch": "circle", "speed": "circle-open", "mixed": "diamond"}
GRAPH_HEIGHT = "300px"  # set on the dcc.Graph; Plotly fills it (layout has no height)
MIN_LABELLED_REGION = 0.12  # of the x range; narrower regions go unlabelled
GRAPH_CONFIG: dcc.Graph.Config = {"displayModeBar": False}
SPARK_CONFIG: dcc.Graph.Config = {"displayModeBar": False, "staticPlot": True}
RUN_COLOR = "#4338ca"
MAX_RUN_MARKS = 12


def base_layout() -> dict[str, Any]:
    return {
        "autosize": True,
        "margin": {"l": 56, "r": 16, "t": 28, "b": 36},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#ffffff",
        "font": {"family": FONT_FAMILY, "size": 12, "color": INK},
        "hoverlabel": {"font": {"family": FONT_FAMILY, "size": 12}},
    }


def message_figure(text: str) -> go.Figure:
    """A figure that is only a sentence: "No data yet" instead of empty axes."""
    layout = base_layout()
    layout.update(
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="rgba(0,0,0,0)",
        annotations=[{
            "text": text, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"size": 14, "color": MUTED},
        }],
    )
    return go.Figure(layout=layout)


def metric_figure(
    metric: MetricInfo,
    lines: list[Line],
    *,
    start: datetime,
    end: datetime,
    step: str,
    horizon: datetime | None,
    runs: Sequence[RunMark] = (),
) -> go.Figure:
    """Lines for ``lines`` between ``start`` and ``end`` with the batch/speed split, and a
    marker at the top for each batch run that finished inside the range.

    The x range starts half a step early so the first point is not cut by the axis
    and the first time label clears the y axis labels.
    """
    try:
        pad = timedelta(milliseconds=parse_duration_ms(step) / 2)
    except ValueError:
        pad = timedelta(0)
    x0, x1 = to_naive_utc(start) - pad, to_naive_utc(end)
    value_format = number_format(metric)
    unit = f" {metric.unit}" if metric.unit else ""
    fig = go.Figure(layout=base_layout())
    for index, line in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=line.x,
            y=line.y,
            name=line.label,
            mode="lines+markers",
            line={"color": colour, "width": 2},
            marker={
                "color": colour,
                "size": 7,
                "symbol": [SYMBOLS.get(source, "circle") for source in line.source],
                "line": {"color": colour, "width": 1.5},
            },
            customdata=line.source,
            hovertemplate=(f"%{{fullData.name}}: %{{y:{value_format}}}{unit} · %{{customdata}}"
                           "<extra></extra>"),
            connectgaps=False,
        ))
    _add_regions(fig, x0, x1, None if horizon is None else to_naive_utc(horizon))
    _add_runs(fig, x0, x1, runs)
    peak = max((v for line in lines for v in line.y if v is not None), default=0.0)
    floor = min((v for line in lines for v in line.y if v is not None), default=0.0)
    yaxis: dict[str, Any] = {
        "gridcolor": GRID, "zeroline": False, "ticklabelstandoff": 6,
        "title": {"text": metric.unit or None, "font": {"size": 11, "color": MUTED}},
    }
    if floor >= 0:  # headroom keeps the region labels clear of the lines
        yaxis["range"] = [0, (peak or 1) * 1.22]
    fig.update_layout(
        xaxis={"range": [x0, x1], "gridcolor": GRID, "tickformat": _tick_format(x1 - x0),
               "showline": True, "linecolor": GRID,
               "hoverformat": "window %Y-%m-%d %H:%M:%S UTC"},
        yaxis=yaxis,
        hovermode="x unified",
        showlegend=len(lines) > 1,
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.14, "yanchor": "top",
                "font": {"size": 12}, "bgcolor": "rgba(0,0,0,0)"},
        uirevision=metric.name,  # keep the user's zoom and legend toggles across refreshes
    )
    if len(lines) > 1:
        fig.update_layout(margin={"b": 64})
    return fig


def _add_regions(fig: go.Figure, x0: datetime, x1: datetime, horizon: datetime | None) -> None:
    """Shade batch (up to the horizon) and speed (after it); label the horizon line."""
    span = (x1 - x0).total_seconds() or 1.0
    if horizon is None or horizon <= x0:
        regions = [("speed", x0, x1, SPEED_FILL)]
    elif horizon >= x1:
        regions = [("batch", x0, x1, BATCH_FILL)]
    else:
        regions = [("batch", x0, horizon, BATCH_FILL), ("speed", horizon, x1, SPEED_FILL)]
    for label, left, right, fill in regions:
        fig.add_shape(type="rect", xref="x", yref="paper", x0=left, x1=right, y0=0, y1=1,
                      fillcolor=fill, line={"width": 0}, layer="below")
        if (right - left).total_seconds() / span >= MIN_LABELLED_REGION:
            fig.add_annotation(
                text=label.upper(), xref="x", yref="paper", x=left, y=1, xanchor="left",
                yanchor="top", xshift=6, yshift=-4, showarrow=False,
                font={"size": 10, "color": MUTED},
            )
    if horizon is not None and x0 < horizon < x1:
        fig.add_shape(type="line", xref="x", yref="paper", x0=horizon, x1=horizon, y0=0, y1=1,
                      line={"color": HORIZON_COLOR, "width": 1.5, "dash": "dash"})
        fraction = (horizon - x0).total_seconds() / span
        anchor = "left" if fraction < 0.15 else "right" if fraction > 0.85 else "center"
        fig.add_annotation(
            text=f"batch horizon {horizon:%H:%M}", xref="x", yref="paper", x=horizon, y=1,
            xanchor=anchor, yanchor="bottom", showarrow=False,
            font={"size": 11, "color": HORIZON_COLOR},
        )


def _tick_format(span: timedelta) -> str:
    return "%H:%M" if span <= timedelta(hours=30) else "%b %d %H:%M"


def _add_runs(fig: go.Figure, x0: datetime, x1: datetime, runs: Sequence[RunMark]) -> None:
    """A small triangle on the top edge per run; its hover says what the run did."""
    inside = sorted((r for r in runs if x0 <= to_naive_utc(r.at) <= x1), key=lambda r: r.at)
    for run in inside[-MAX_RUN_MARKS:]:
        fig.add_annotation(
            text="▼", xref="x", yref="paper", x=to_naive_utc(run.at), y=1, yanchor="bottom",
            showarrow=False, font={"size": 10, "color": RUN_COLOR}, hovertext=run.text,
            captureevents=False,
        )


def sparkline(x: Sequence[datetime], y: Sequence[float | None], *, start: datetime,
              end: datetime, horizon: datetime | None, colour: str = PALETTE[0]) -> go.Figure:
    """A tile's tiny line: no axes, the batch/speed shading kept (it is cheap and says
    which part of the line is final)."""
    x0, x1 = to_naive_utc(start), to_naive_utc(end)
    fig = go.Figure(layout={
        "margin": {"l": 0, "r": 0, "t": 2, "b": 2}, "autosize": True,
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {"visible": False, "type": "date", "range": [x0, x1], "fixedrange": True},
        "yaxis": {"visible": False, "fixedrange": True, "rangemode": "tozero"},
        "showlegend": False,
    })
    fig.add_trace(go.Scatter(x=[to_naive_utc(t) for t in x], y=list(y), mode="lines",
                             line={"color": colour, "width": 1.6}, fill="tozeroy",
                             fillcolor="rgba(79, 70, 229, 0.10)", hoverinfo="skip"))
    h = None if horizon is None else to_naive_utc(horizon)
    if h is not None and h > x0:
        fig.add_shape(type="rect", xref="x", yref="paper", x0=x0, x1=min(h, x1), y0=0, y1=1,
                      fillcolor=BATCH_FILL, line={"width": 0}, layer="below")
    if h is None or h < x1:
        fig.add_shape(type="rect", xref="x", yref="paper", x0=max(h or x0, x0), x1=x1, y0=0,
                      y1=1, fillcolor=SPEED_FILL, line={"width": 0}, layer="below")
    return fig
