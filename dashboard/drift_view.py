"""The drift page's pieces, from one ``GET /v1/drift`` answer: summary tiles, the
relative difference per window coloured by its reason, and the windows that were off."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import html
from dash.dash_table.DataTable import DataTable
from dash.development.base_component import Component

from dashboard.api_models import Drift, DriftPoint, MetricInfo
from dashboard.components import attrs
from dashboard.figures import GRID, MUTED, base_layout, message_figure
from dashboard.formatting import fmt_clock, fmt_count, fmt_value, utc, zone_name
from dashboard.series import to_naive_utc
from stratum.windows import parse_duration_ms

REASON_COLOURS = {
    "late events": "#f59e0b",
    "duplicates": "#8b5cf6",
    "sketch error": "#0ea5e9",
    "rounding": "#94a3b8",
    "none": "#10b981",
}
REASON_NOTES = {
    "late events": "after the watermark: only batch has them",
    "duplicates": "re-sent event ids speed counted twice",
    "sketch error": "same events, approximate sketch state",
    "rounding": "sums added in another order",
}
TABLE_ROWS = 100
NO_DRIFT_YET = (
    "No window is held by both layers yet: drift appears once a batch run "
    "has covered windows the speed layer also wrote."
)


def reason_of(point: DriftPoint) -> str:
    """``"late events: 3 arrived after the watermark"`` -> ``"late events"``."""
    return point.reason.split(":")[0].strip() or "none"


def _tile(title: str, value: str, note: str, key: str, tone: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(title, className="tile-title"),
            html.Div(value, className="tile-value"),
            html.Div(note, className="tile-note"),
        ],
        className=f"tile {f'is-{tone}' if tone else ''}".strip(),
        **attrs({"data-drift": key}),
    )


def drift_tiles(drift: Drift) -> list[Component]:
    s = drift.summary
    off_share = s.windows_off / s.windows_compared if s.windows_compared else 0.0
    # The API's maxima skip windows the speed layer never held: those were 100 % off.
    largest = max((abs(_percent_off(p)) / 100 for p in drift.points), default=0.0)
    absolute = max(
        [s.max_abs_difference, *(abs(p.batch or 0.0) for p in drift.points if p.speed is None)]
    )
    causes = sorted(((n, r) for r, n in s.by_reason.items() if r != "none"), reverse=True)
    main = causes[0][1] if causes else "none"
    return [
        _tile(
            "windows compared",
            fmt_count(s.windows_compared),
            "held by both layers in the range",
            "compared",
        ),
        _tile(
            "windows off",
            fmt_count(s.windows_off),
            f"{off_share:.1%} of those compared",
            "off",
            "warn" if s.windows_off else "ok",
        ),
        _tile(
            "largest difference",
            f"{largest:.2%}",
            f"relative to batch · absolute {absolute:,.4g}",
            "largest",
        ),
        _tile(
            "main cause", main, REASON_NOTES.get(main, "speed matched batch everywhere"), "cause"
        ),
    ]


def _percent_off(point: DriftPoint) -> float:
    """The bar's height; a window the speed layer never held was 100 % off."""
    if point.relative is not None:
        return 100 * point.relative
    return -100.0 if point.speed is None and point.batch else 0.0


def drift_figure(drift: Drift, metric: MetricInfo) -> go.Figure:
    """Bars of (speed − batch) / |batch| per window, one colour (and legend entry) per
    reason, a window wide, over the requested range; the hover has both values, their
    event counts and the reason in full."""
    if not drift.points:
        return message_figure(NO_DRIFT_YET)
    fig = go.Figure(layout=base_layout())
    width_ms = 0.8 * parse_duration_ms(metric.finest_window)
    by_reason: dict[str, list[DriftPoint]] = {}
    for point in drift.points:
        by_reason.setdefault(reason_of(point), []).append(point)
    for reason in sorted(by_reason, key=lambda r: (r == "none", r)):
        points = by_reason[reason]
        fig.add_bar(
            x=[to_naive_utc(p.t) for p in points],
            y=[_percent_off(p) for p in points],
            name=reason,
            marker_color=REASON_COLOURS.get(reason, MUTED),
            width=[width_ms] * len(points),
            offset=0,
            customdata=[
                [
                    fmt_value(p.speed, metric),
                    fmt_value(p.batch, metric),
                    p.speed_count,
                    p.batch_count,
                    p.reason,
                ]
                for p in points
            ],
            hovertemplate=(
                f"%{{x|%H:%M}} {zone_name()}<br>speed %{{customdata[0]}} · batch "
                "%{customdata[1]}<br>events: speed %{customdata[2]}, batch "
                "%{customdata[3]}<br>%{customdata[4]}<extra>%{y:.3f} %</extra>"
            ),
        )
    fig.update_layout(
        barmode="overlay",
        bargap=0.15,
        showlegend=True,
        legend={"orientation": "h", "y": 1.12, "x": 0},
        xaxis={
            "gridcolor": GRID,
            "title": None,
            "type": "date",
            "range": [to_naive_utc(drift.start), to_naive_utc(drift.end)],
        },
        yaxis={
            "gridcolor": GRID,
            "zerolinecolor": MUTED,
            "ticksuffix": " %",
            "title": {"text": "speed − batch, % of batch", "font": {"color": MUTED}},
        },
    )
    return fig


def drift_rows(drift: Drift, metric: MetricInfo) -> list[dict[str, Any]]:
    """The windows that were off, largest relative difference first."""
    off = [p for p in drift.points if reason_of(p) != "none"]
    off.sort(key=lambda p: abs(p.relative or 0.0), reverse=True)
    return [
        {
            "window": fmt_clock(utc(p.t)),
            "speed": fmt_value(p.speed, metric),
            "batch": fmt_value(p.batch, metric),
            "difference": f"{p.difference:+,.4g}"
            if p.difference is not None
            else ("not held by speed" if p.speed is None else "–"),
            "relative": f"{_percent_off(p) / 100:+.3%}",
            "events": f"{p.speed_count:,} / {p.batch_count:,}",
            "reason": p.reason,
        }
        for p in off[:TABLE_ROWS]
    ]


def table_columns() -> list[DataTable.Columns]:
    """The table's columns; the window's zone is the page's (UTC or local)."""
    return [
        {"name": n, "id": i}
        for n, i in (
            (f"window ({zone_name()})", "window"),
            ("speed", "speed"),
            ("batch", "batch"),
            ("speed − batch", "difference"),
            ("relative", "relative"),
            ("events speed / batch", "events"),
            ("why", "reason"),
        )
    ]
