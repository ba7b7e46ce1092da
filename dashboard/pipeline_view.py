"""The pipeline health page's pieces, from one ``GET /v1/pipeline`` answer: stage tiles,
throughput over time, per-partition progress, and a timeline of batch runs and replays."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
from dash import html
from dash.development.base_component import Component

from dashboard.api_models import Job, Pipeline
from dashboard.components import attrs, badge
from dashboard.figures import GRID, HORIZON_COLOR, MUTED, PALETTE, base_layout, message_figure
from dashboard.formatting import INGEST_WINDOW, fmt_clock, fmt_count, fmt_rate, utc, zone_name
from dashboard.kpi_tiles import FRESH_S, STALE_S
from dashboard.series import to_naive_utc

THROUGHPUT_STAGES = (
    "ingest_accepted",
    "speed_events",
    "archive_events",
    "speed_late",
    "dead_letters",
)
STATE_COLOURS = {
    "succeeded": "#10b981",
    "failed": "#ef4444",
    "running": "#2563eb",
    "queued": "#94a3b8",
    "cancelled": "#cbd5e1",
}
MIN_TIMELINE_SPAN = timedelta(minutes=5)


def _rate(per_s: float | None) -> str:
    return fmt_rate(per_s)


def _tile(title: str, value: str, note: str, key: str, tone: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(title, className="tile-title"),
            html.Div(value, className="tile-value"),
            html.Div(note, className="tile-note"),
        ],
        className=f"tile {f'is-{tone}' if tone else ''}".strip(),
        **attrs({"data-stage": key}),
    )


def _lag_tone(lag_s: float | None) -> str:
    if lag_s is None:
        return "unknown"
    return "ok" if lag_s < FRESH_S else "warn" if lag_s < STALE_S else "bad"


def stage_tiles(p: Pipeline) -> list[Component]:
    """One tile per stage: its rate now, and the totals that matter beside it."""
    ingest, rejected = p.stage("ingest_accepted"), p.stage("ingest_rejected")
    speed, late, dead = p.stage("speed_events"), p.stage("speed_late"), p.stage("dead_letters")
    archive, files = p.stage("archive_events"), p.stage("archive_files")
    lags = [q.lag_s for q in p.partitions if q.lag_s is not None]
    worst = max(lags, default=None)
    runs = p.batch.runs
    horizon = fmt_clock(p.batch.horizon) if p.batch.horizon else "none yet"
    age = (
        f"{p.batch.horizon_age_s / 60:,.1f} min behind now"
        if p.batch.horizon_age_s is not None
        else "no successful batch run"
    )
    mean = (
        f" · mean run {p.batch.mean_duration_s:.1f} s"
        if p.batch.mean_duration_s is not None
        else ""
    )
    flush = f"flush {p.flush_mean_ms:.1f} ms" if p.flush_mean_ms is not None else "no flush yet"
    return [
        _tile(
            "ingest",
            _rate(ingest.per_s),
            f"{INGEST_WINDOW} · {fmt_count(int(ingest.total))}"
            f" accepted · {fmt_count(int(rejected.total))} rejected",
            "ingest",
        ),
        _tile(
            "speed layer",
            _rate(speed.per_s),
            f"{fmt_count(int(speed.total))} aggregated · {flush}",
            "speed",
        ),
        _tile(
            "late events",
            fmt_count(int(late.total)),
            f"{_rate(late.per_s)} · sent to the late topic, fixed by batch",
            "late",
            "warn" if late.total else "",
        ),
        _tile(
            "dead letters",
            fmt_count(int(dead.total)),
            f"{_rate(dead.per_s)} · malformed records",
            "dead_letters",
            "bad" if dead.total else "",
        ),
        _tile(
            "archive",
            _rate(archive.per_s),
            f"{fmt_count(int(archive.total))} events · {fmt_count(int(files.total))} files",
            "archive",
        ),
        _tile(
            "event-time lag",
            "–" if worst is None else f"{worst:,.1f} s",
            f"worst of {len(p.partitions)} partition(s)",
            "lag",
            _lag_tone(worst),
        ),
        _tile(
            "batch horizon",
            horizon,
            f"{age}{mean} · {runs.get('succeeded', 0)} ok, {runs.get('failed', 0)} failed",
            "batch",
        ),
    ]


def clip_top(values: Sequence[float | None]) -> tuple[float, float | None]:
    """(axis top, clipped peak or None): the axis fits the steady rate, not a back-fill
    spike. Top = 2.5 × the median of the non-zero rates (at least the newest value ×
    1.3); a peak above that is clipped and named instead of squashing the rest to zero."""
    seen = sorted(v for v in values if v is not None)
    if not seen:
        return 1.0, None
    moving = [v for v in seen if v > 0] or seen
    steady = moving[len(moving) // 2]
    newest = next((v for v in reversed(values) if v is not None), 0.0)
    top = max(steady * 2.5, newest * 1.3, 1.0)
    peak = seen[-1]
    return (top, peak) if peak > top else (peak * 1.15 or 1.0, None)


def throughput_figure(p: Pipeline) -> go.Figure:
    if len(p.history) < 2:
        return message_figure(
            "Collecting throughput: the API samples its counters each time it is asked"
        )
    fig = go.Figure(layout=base_layout())
    xs = [to_naive_utc(point.t) for point in p.history]
    everything: list[float | None] = []
    for index, key in enumerate(THROUGHPUT_STAGES):
        ys = [point.per_s.get(key) for point in p.history]
        everything += ys
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=p.stage(key).label or key,
                mode="lines",
                line={"color": PALETTE[index % len(PALETTE)], "width": 2},
                hovertemplate="%{fullData.name}: %{y:,.1f}/s<extra></extra>",
            )
        )
    top, peak = clip_top(everything)
    fig.update_layout(
        xaxis={
            "gridcolor": GRID,
            "tickformat": "%H:%M:%S",
            "hoverformat": f"%H:%M:%S {zone_name()}",
        },
        yaxis={
            "gridcolor": GRID,
            "range": [0, top],
            "title": {"text": "events / s", "font": {"size": 11, "color": MUTED}},
        },
        hovermode="x unified",
        margin={"b": 64},
        legend={"orientation": "h", "x": 0, "y": -0.16, "yanchor": "top"},
        uirevision="throughput",
    )
    if peak is not None:
        fig.add_annotation(
            text=f"axis clipped: peak {fmt_rate(peak)} (back-fill)",
            xref="paper",
            yref="paper",
            x=1,
            y=1,
            xanchor="right",
            yanchor="bottom",
            showarrow=False,
            font={"size": 11, "color": MUTED},
        )
    return fig


def partitions_table(p: Pipeline) -> Component:
    if not p.partitions:
        return html.Div(
            "No partition has been flushed yet: the speed layer writes its "
            "progress after its first events.",
            className="empty-state",
        )
    head = html.Thead(
        html.Tr(
            [
                html.Th(c, className="num" if c == "Offset" else None)
                for c in (
                    "Partition",
                    "Offset",
                    "Newest event",
                    "Watermark",
                    "Event-time lag",
                    "Last flush",
                )
            ]
        )
    )
    rows = []
    for part in p.partitions:
        tone = _lag_tone(part.lag_s)
        lag = "–" if part.lag_s is None else f"{part.lag_s:,.1f} s"
        label = str(part.partition if part.partition is not None else part.source_id)
        rows.append(
            html.Tr(
                [
                    # a [[source]]'s partitions carry its name: "orders 2"
                    html.Td(
                        html.Code(label if part.source == "events" else f"{part.source} {label}")
                    ),
                    html.Td(fmt_count(part.through_offset), className="num"),
                    html.Td(fmt_clock(part.newest_event)),
                    html.Td(fmt_clock(part.watermark)),
                    html.Td(badge(lag, {"unknown": "muted"}.get(tone, tone))),
                    html.Td(fmt_clock(part.updated_at)),
                ],
                **attrs(
                    {
                        "data-partition": str(part.partition),
                        "data-source": part.source,
                        "data-lag-s": "" if part.lag_s is None else f"{part.lag_s:.3f}",
                    }
                ),
            )
        )
    return html.Div(html.Table([head, html.Tbody(rows)], className="table"), className="table-wrap")


def _bar(job: Job, now: datetime) -> tuple[datetime, float] | None:
    if job.started_at is None:
        return None
    start = utc(job.started_at)
    end = utc(job.finished_at) if job.finished_at else now
    return start, (end - start).total_seconds() * 1000


def timeline_figure(p: Pipeline, now: datetime) -> go.Figure:
    """Runs as bars on wall-clock time, one row per kind, coloured by state."""
    bars = [(job, bar) for job in p.jobs if (bar := _bar(job, now)) is not None]
    if not bars:
        return message_figure("No batch run or replay yet")
    oldest = min(b[0] for _, b in bars)
    if p.batch.horizon is not None:  # the horizon the subtitle promises, on the axis
        oldest = min(oldest, utc(p.batch.horizon))
    span = max(utc(now) - oldest, MIN_TIMELINE_SPAN)
    x0 = utc(now) - span * 1.05
    visible_ms = span.total_seconds() * 1000 * 0.004  # a 1 s run is still a visible bar
    fig = go.Figure(layout=base_layout())
    for state, colour in STATE_COLOURS.items():
        chosen = [(job, bar) for job, bar in bars if job.state == state]
        if not chosen:
            continue
        fig.add_trace(
            go.Bar(
                orientation="h",
                name=state,
                marker={"color": colour},
                y=[job.kind for job, _ in chosen],
                x=[max(bar[1], visible_ms) for _, bar in chosen],
                base=[to_naive_utc(bar[0]) for _, bar in chosen],
                customdata=[_hover(job, bar[1]) for job, bar in chosen],
                hovertemplate="%{customdata}<extra></extra>",
                width=0.5,
            )
        )
    layout: dict[str, Any] = {
        "barmode": "overlay",
        "showlegend": True,
        "bargap": 0.4,
        "xaxis": {
            "type": "date",
            "range": [to_naive_utc(x0), to_naive_utc(now)],
            "gridcolor": GRID,
            "tickformat": "%H:%M",
        },
        "yaxis": {"categoryorder": "array", "categoryarray": ["replay", "batch"]},
        "legend": {"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"},
        "margin": {"l": 64, "r": 16, "t": 28, "b": 56},
        "uirevision": "timeline",
    }
    fig.update_layout(**layout)
    horizon = p.batch.horizon
    if horizon is not None and x0 < utc(horizon) < utc(now):
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=to_naive_utc(horizon),
            x1=to_naive_utc(horizon),
            y0=0,
            y1=1,
            line={"color": HORIZON_COLOR, "width": 1.5, "dash": "dash"},
        )
        fig.add_annotation(
            text=f"batch horizon {fmt_clock(horizon)}",
            xref="x",
            yref="paper",
            x=to_naive_utc(horizon),
            y=1,
            yanchor="bottom",
            showarrow=False,
            font={"size": 11, "color": HORIZON_COLOR},
        )
    return fig


def _hover(job: Job, duration_ms: float) -> str:
    rows = f"{fmt_count(job.rows_in)} rows in → {fmt_count(job.rows_out)} out"
    horizon = f"<br>horizon → {fmt_clock(job.horizon)}" if job.horizon else ""
    error = f"<br>error: {job.error[:120]}" if job.error else ""
    return (
        f"{job.kind} {job.job_id[:8]} · {job.state} ({job.trigger or '–'})<br>"
        f"{fmt_clock(job.started_at)} for {duration_ms / 1000:,.1f} s · {rows}"
        f"{horizon}{error}"
    )
