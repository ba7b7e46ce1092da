"""The overview's KPI row: events per second, one tile per metric, and a freshness badge.

Frames (with the ids a refresh fills) and the pure rules behind the numbers, kept apart
from the page module so they can be tested without a browser.

- events/s: the first ``count`` metric without a filter, per finest window, divided by
  the window's seconds: event-time throughput, the same on every host. The tile's note
  adds the ingest rate the API measured just now.
- metric tiles: the newest *complete* window (see :mod:`dashboard.drawing`) for every
  metric, with its time: the same number the card beside it headlines and the last
  solid point of its chart. Counts, sums and distinct counts grow while a window fills,
  so the open one would always look like a drop.
- freshness: the speed layer's event-time lag and the batch horizon's age.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias

from dash import dcc, html
from dash.development.base_component import Component

from dashboard import ids
from dashboard.api_models import MetricInfo, SeriesResponse, Status
from dashboard.components import attrs
from dashboard.drawing import newest_complete
from dashboard.figures import SPARK_CONFIG, message_figure
from dashboard.formatting import INGEST_WINDOW, fmt_clock, fmt_rate, fmt_rate_number, fmt_value, utc
from stratum.windows import parse_duration_ms

__all__ = ["newest_complete"]

FRESH_S = 15.0  # lag under this: fresh
STALE_S = 120.0  # lag over this: stale
SPARK_HEIGHT = "44px"


def throughput_metric(metrics: Sequence[MetricInfo]) -> MetricInfo | None:
    """The metric that counts every event, if the catalog has one."""
    counts = [m for m in metrics if m.counts_events]
    return next((m for m in counts if not m.where), counts[0] if counts else None)


TileValue: TypeAlias = list[Component | str | None] | str  # a tile's value: number and unit


def _tile(
    title: str,
    value_id: ids.ComponentId,
    note_id: ids.ComponentId,
    spark_id: ids.ComponentId | None,
    class_name: str = "",
) -> html.Div:
    children: list[Component] = [
        html.Div(title, className="tile-title"),
        html.Div("–", id=value_id, className="tile-value"),
        html.Div("", id=note_id, className="tile-note"),
    ]
    if spark_id is not None:
        children.append(
            dcc.Graph(
                id=spark_id,
                figure=message_figure(""),
                config=SPARK_CONFIG,
                style={"height": SPARK_HEIGHT},
                className="tile-spark",
            )
        )
    return html.Div(children, className=f"tile {class_name}".strip())


def rate_tile() -> html.Div:
    return _tile(
        "events / s",
        ids.OVERVIEW_RATE_VALUE,
        ids.OVERVIEW_RATE_NOTE,
        ids.OVERVIEW_RATE_SPARK,
        "tile--rate",
    )


def metric_tile(metric: MetricInfo) -> html.Div:
    return _tile(
        metric.name,
        ids.metric_id(ids.OVERVIEW_TILE_VALUE, metric.name),
        ids.metric_id(ids.OVERVIEW_TILE_NOTE, metric.name),
        ids.metric_id(ids.OVERVIEW_TILE_SPARK, metric.name),
        "tile--metric",
    )


def freshness_tile() -> html.Div:
    return html.Div(
        id=ids.OVERVIEW_FRESHNESS,
        className="tile tile--freshness is-unknown",
        children=[
            html.Div("freshness", className="tile-title"),
            html.Div("–", className="tile-value"),
        ],
    )


def window_totals(response: SeriesResponse) -> tuple[list[datetime], list[float]]:
    """Per window, the sum over groups (only meaningful for counts and sums)."""
    totals: dict[datetime, float] = defaultdict(float)
    for series in response.series:
        for point in series.points:
            if point.value is not None:
                totals[utc(point.t)] += point.value
    xs = sorted(totals)
    return xs, [totals[x] for x in xs]


def spark_points(
    metric: MetricInfo, response: SeriesResponse
) -> tuple[list[datetime], list[float | None]]:
    if metric.additive:
        xs, ys = window_totals(response)
        return xs, list(ys)
    points = sorted((p for s in response.series for p in s.points), key=lambda p: p.t)
    return [utc(p.t) for p in points], [p.value for p in points]


def headline_value(
    metric: MetricInfo, response: SeriesResponse, now: datetime
) -> tuple[datetime, float | None] | None:
    """(window, value) of the newest complete window: tiles and cards both show it."""
    xs, ys = spark_points(metric, response)
    return newest_complete(xs, ys, response.step, now)


def metric_tile_text(
    metric: MetricInfo, response: SeriesResponse, now: datetime
) -> tuple[TileValue, str]:
    """(value, note) of a metric tile."""
    unit = html.Span(f" {metric.unit}", className="tile-unit") if metric.unit else None
    newest = headline_value(metric, response, now)
    if newest is None:
        return "–", f"no complete {response.step} window yet"
    return [fmt_value(newest[1], metric), unit], f"per {response.step} · {fmt_clock(newest[0])}"


def rate_text(
    metric: MetricInfo, response: SeriesResponse, now: datetime, ingest_per_s: float | None
) -> tuple[str, str, list[datetime], list[float]]:
    """(value, note, x, y): events per second per window, and the ingest rate now."""
    seconds = parse_duration_ms(response.step) / 1000
    xs, totals = window_totals(response)
    rates = [t / seconds for t in totals]
    newest = newest_complete(xs, rates, response.step, now)
    value = fmt_rate_number(newest[1]) if newest and newest[1] is not None else "–"
    ingest = (
        f"ingest {fmt_rate(ingest_per_s)} ({INGEST_WINDOW})" if ingest_per_s is not None else ""
    )
    window = (
        f"per {response.step} window · {fmt_clock(newest[0])}"
        if newest
        else f"per {response.step} window"
    )
    return value, " · ".join(p for p in (window, ingest) if p), xs, rates


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def freshness(status: Status | None, error: str | None = None) -> tuple[list[Component], str]:
    """The badge: lag (tone from thresholds), the horizon and its age."""
    title = html.Div("freshness", className="tile-title")
    if status is None:
        return [
            title,
            html.Div("unknown", className="tile-value"),
            html.Div(error or "", className="tile-note"),
        ], "tile tile--freshness is-bad"
    lag = status.speed.lag_s
    tone = (
        "unknown" if lag is None else "ok" if lag < FRESH_S else "warn" if lag < STALE_S else "bad"
    )
    label = {"ok": "live", "warn": "lagging", "bad": "stale", "unknown": "no events yet"}[tone]
    horizon = status.batch.horizon
    horizon_text = (
        f"horizon {fmt_clock(horizon)} · {_ago(status.batch.horizon_age_s)} ago"
        if horizon
        else "no batch run yet"
    )
    return [
        title,
        html.Div(
            [
                html.Span(className=f"dot dot--{'muted' if tone == 'unknown' else tone}"),
                f" {label}",
            ],
            className="tile-value",
        ),
        html.Div(
            f"event-time lag {_ago(lag)}",
            className="tile-note freshness-lag",
            **attrs({"data-lag-s": "" if lag is None else f"{lag:.3f}"}),
        ),
        html.Div(horizon_text, className="tile-note freshness-horizon"),
    ], f"tile tile--freshness is-{tone}"
