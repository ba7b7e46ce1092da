"""Plotly figures of metric series: lines per group over a batch region and a speed region,
and the small sparklines of the overview's tiles.

The batch horizon is where authority changes hands: windows ending at or before it
come from the batch layer, the rest from the speed layer. The chart makes that
visible three ways: shaded regions, a labelled vertical line, and each point's marker
and hover text naming its source.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
from dash import dcc

from dashboard.api_models import MetricInfo
from dashboard.drawing import PALETTE, colour_of, complete_before, split_open, step_delta
from dashboard.formatting import number_format, zone_name
from dashboard.series import Line, RunMark, to_naive_utc

__all__ = ["PALETTE", "message_figure", "metric_figure", "sparkline"]

FONT_FAMILY = (
    "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', "
    "'DejaVu Sans', Arial, sans-serif"
)
INK = "#0f172a"
MUTED = "#64748b"
GRID = "#e2e8f0"
OPEN_FILL = "rgba(100, 116, 139, 0.16)"
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
MESSAGE_WIDTH = 40  # characters per line of a message figure: fits 390 px


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
    """A figure that is only a sentence: "No data yet" instead of empty axes. Wrapped,
    since Plotly does not wrap and a phone would cut the sentence at both ends."""
    layout = base_layout()
    layout.update(
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="rgba(0,0,0,0)",
        annotations=[
            {
                "text": "<br>".join(textwrap.wrap(text, MESSAGE_WIDTH)),
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 14, "color": MUTED},
            }
        ],
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
    now: datetime | None = None,
) -> go.Figure:
    """Lines for ``lines`` between ``start`` and ``end`` with the batch/speed split, the
    still-filling windows dashed and faded under an "in progress" band, missing windows
    left as gaps, and a triangle at the bottom for each batch run inside the range.

    The x range starts half a step early so the first point is not cut by the axis
    and the first time label clears the y axis labels.
    """
    try:
        pad = step_delta(step) / 2
    except ValueError:
        pad = timedelta(0)
    x0, x1 = to_naive_utc(start) - pad, to_naive_utc(end)
    moment = to_naive_utc(now or end)
    fig = go.Figure(layout=base_layout())
    pieces = [split_open(line, step, moment) for line in lines]
    plain = len(lines) > 3 or max((len(line.x) for line in lines), default=0) > 60
    for index, (line, piece) in enumerate(zip(lines, pieces, strict=True)):
        colour = colour_of(line.label, index)
        _add_line(fig, metric, piece.done, colour, show_markers=not plain, legend=len(lines) > 1)
        if piece.open is not None:
            joined = bool(piece.done.x) and piece.open.x[0] == piece.done.x[-1]
            _add_line(
                fig,
                metric,
                piece.open,
                colour,
                show_markers=True,
                legend=False,
                filling=True,
                joined=joined,
            )
    _add_regions(fig, x0, x1, None if horizon is None else to_naive_utc(horizon))
    if any(piece.open is not None for piece in pieces):
        _add_open_band(fig, complete_before(step, moment), x1)
    inside = _add_runs(fig, x0, x1, runs)
    values = [v for line in lines for v in line.y if v is not None]
    peak, floor = max(values, default=0.0), min(values, default=0.0)
    yaxis: dict[str, Any] = {
        "gridcolor": GRID,
        "zeroline": False,
        "ticklabelstandoff": 6,
        "title": {"text": metric.unit or None, "font": {"size": 11, "color": MUTED}},
    }
    if floor >= 0:  # headroom keeps the region labels clear of the lines
        yaxis["range"] = [0, (peak or 1) * 1.22]
    legend = len(lines) > 1 or inside
    fig.update_layout(
        xaxis={
            "range": [x0, x1],
            "gridcolor": GRID,
            "tickformat": _tick_format(x1 - x0),
            "showline": True,
            "linecolor": GRID,
            "hoverformat": f"window %Y-%m-%d %H:%M:%S {zone_name()}",
        },
        yaxis=yaxis,
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        hovermode="x unified",
        showlegend=legend,
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.14,
            "yanchor": "top",
            "font": {"size": 12},
            "bgcolor": "rgba(0,0,0,0)",
        },
        uirevision=metric.name,  # keep the user's zoom and legend toggles across refreshes
    )
    if legend:
        fig.update_layout(margin={"b": 64})
    return fig


def _add_line(
    fig: go.Figure,
    metric: MetricInfo,
    line: Line,
    colour: str,
    *,
    show_markers: bool,
    legend: bool,
    filling: bool = False,
    joined: bool = False,
) -> None:
    """A solid line of complete windows, or (``filling``) the dotted, faded open tail;
    a ``joined`` tail starts at the last complete point, which keeps its own state."""
    value_format = number_format(metric)
    unit = f" {metric.unit}" if metric.unit else ""
    state = [
        "in progress" if filling and not (joined and i == 0) else s
        for i, s in enumerate(line.source)
    ]
    fig.add_trace(
        go.Scatter(
            x=line.x,
            y=line.y,
            name=line.label,
            legendgroup=line.label,
            showlegend=legend,
            mode="lines+markers" if show_markers else "lines",
            opacity=0.75 if filling else 1.0,
            line={"color": colour, "width": 2, "dash": "dot" if filling else "solid"},
            marker={
                "color": "#ffffff" if filling else colour,
                "size": 8 if filling else 6,
                "symbol": [
                    "circle-open" if filling else SYMBOLS.get(s, "circle") for s in line.source
                ],
                "line": {"color": colour, "width": 1.5},
            },
            customdata=state,
            hovertemplate=(
                f"%{{fullData.name}}: %{{y:{value_format}}}{unit} · %{{customdata}}<extra></extra>"
            ),
            connectgaps=False,
        )
    )


def _add_open_band(fig: go.Figure, cut: datetime, x1: datetime) -> None:
    """A grey band over the windows still filling, labelled so a low last point reads
    as "not done yet", not as a drop."""
    if cut >= x1:
        return
    fig.add_shape(
        type="rect",
        xref="x",
        yref="paper",
        x0=cut,
        x1=x1,
        y0=0,
        y1=1,
        fillcolor=OPEN_FILL,
        line={"width": 0},
        layer="below",
    )
    fig.add_shape(
        type="line",
        xref="x",
        yref="paper",
        x0=cut,
        x1=cut,
        y0=0,
        y1=1,
        line={"color": "#94a3b8", "width": 1, "dash": "dot"},
    )
    fig.add_annotation(
        text="in progress",
        xref="x",
        yref="paper",
        x=x1,
        y=1,
        xanchor="right",
        yanchor="top",
        yshift=-18,
        showarrow=False,
        font={"size": 10, "color": MUTED},
        bgcolor="rgba(255,255,255,0.85)",
    )


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
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=left,
            x1=right,
            y0=0,
            y1=1,
            fillcolor=fill,
            line={"width": 0},
            layer="below",
        )
        if (right - left).total_seconds() / span >= MIN_LABELLED_REGION:
            fig.add_annotation(
                text=label.upper(),
                xref="x",
                yref="paper",
                x=left,
                y=1,
                xanchor="left",
                yanchor="top",
                xshift=6,
                yshift=-4,
                showarrow=False,
                font={"size": 10, "color": MUTED},
            )
    if horizon is not None and x0 < horizon < x1:
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=horizon,
            x1=horizon,
            y0=0,
            y1=1,
            line={"color": HORIZON_COLOR, "width": 1.5, "dash": "dash"},
        )
        fraction = (horizon - x0).total_seconds() / span
        anchor = "left" if fraction < 0.15 else "right" if fraction > 0.85 else "center"
        fig.add_annotation(
            text=f"batch horizon {horizon:%H:%M}",
            xref="x",
            yref="paper",
            x=horizon,
            y=1,
            xanchor=anchor,
            yanchor="bottom",
            showarrow=False,
            font={"size": 11, "color": HORIZON_COLOR},
        )


def _tick_format(span: timedelta) -> str:
    return "%H:%M" if span <= timedelta(hours=30) else "%b %d %H:%M"


def _add_runs(fig: go.Figure, x0: datetime, x1: datetime, runs: Sequence[RunMark]) -> bool:
    """A triangle on the bottom edge per batch run (clear of the horizon label at the
    top), one legend entry for all; the hover says what each run did."""
    inside = sorted((r for r in runs if x0 <= to_naive_utc(r.at) <= x1), key=lambda r: r.at)
    shown = inside[-MAX_RUN_MARKS:]
    if not shown:
        return False
    fig.add_trace(
        go.Scatter(
            x=[to_naive_utc(r.at) for r in shown],
            y=[0.03] * len(shown),
            yaxis="y2",
            mode="markers",
            name="batch run",
            legendrank=2000,
            marker={"symbol": "triangle-up", "size": 10, "color": RUN_COLOR},
            customdata=[r.text for r in shown],
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    return True


def sparkline(
    x: Sequence[datetime],
    y: Sequence[float | None],
    *,
    start: datetime,
    end: datetime,
    horizon: datetime | None,
    step: str,
    now: datetime,
    colour: str = PALETTE[0],
) -> go.Figure:
    """A tile's tiny line: no axes, the batch/speed shading kept (it is cheap and says
    which part of the line is final); gaps left open, the filling windows dotted."""
    x0, x1 = to_naive_utc(start), to_naive_utc(end)
    fig = go.Figure(
        layout={
            "margin": {"l": 0, "r": 0, "t": 2, "b": 2},
            "autosize": True,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "xaxis": {"visible": False, "type": "date", "range": [x0, x1], "fixedrange": True},
            "yaxis": {"visible": False, "fixedrange": True, "rangemode": "tozero"},
            "showlegend": False,
        }
    )
    line = Line("spark", [to_naive_utc(t) for t in x], list(y), ["speed"] * len(x))
    piece = split_open(line, step, to_naive_utc(now))
    fig.add_trace(
        go.Scatter(
            x=piece.done.x,
            y=piece.done.y,
            mode="lines",
            line={"color": colour, "width": 1.6},
            fill="tozeroy",
            fillcolor="rgba(0, 114, 178, 0.10)",
            hoverinfo="skip",
            connectgaps=False,
        )
    )
    if piece.open is not None:
        fig.add_trace(
            go.Scatter(
                x=piece.open.x,
                y=piece.open.y,
                mode="lines",
                line={"color": colour, "width": 1.4, "dash": "dot"},
                opacity=0.5,
                hoverinfo="skip",
            )
        )
    h = None if horizon is None else to_naive_utc(horizon)
    if h is not None and h > x0:
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=x0,
            x1=min(h, x1),
            y0=0,
            y1=1,
            fillcolor=BATCH_FILL,
            line={"width": 0},
            layer="below",
        )
    if h is None or h < x1:
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=max(h or x0, x0),
            x1=x1,
            y0=0,
            y1=1,
            fillcolor=SPEED_FILL,
            line={"width": 0},
            layer="below",
        )
    return fig
