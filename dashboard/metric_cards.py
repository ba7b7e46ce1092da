"""The overview's metric cards: the static frame, and the texts a refresh fills in.

Outside ``pages/`` so it can be imported and tested on its own: Dash executes page
modules itself, and ``register_page`` refuses to run before a Dash app exists.
"""

from __future__ import annotations

from datetime import datetime

from dash import dcc, html
from dash.development.base_component import Component

from dashboard import ids
from dashboard.api_models import MetricInfo, SeriesResponse
from dashboard.api_query import query_details
from dashboard.components import card
from dashboard.figures import GRAPH_CONFIG, GRAPH_HEIGHT, message_figure
from dashboard.formatting import fmt_clock, fmt_value, zone_name
from dashboard.kpi_tiles import headline_value
from dashboard.series import group_by_for, latest_point


def legend_key() -> html.Div:
    """What the shading, the dashed line and the markers mean, once per page."""
    return html.Div(
        className="legend-key",
        children=[
            html.Span([html.Span(className="swatch swatch--batch"), "batch (authoritative)"]),
            html.Span([html.Span(className="swatch swatch--speed"), "speed (fresh)"]),
            html.Span([html.Span(className="swatch swatch--horizon"), "batch horizon"]),
            html.Span([html.Span(className="swatch swatch--open"), "in progress (still filling)"]),
            html.Span(
                "● batch point  ○ speed point  ◆ mixed  ▲ batch run", className="legend-markers"
            ),
        ],
    )


def metric_card(metric: MetricInfo) -> html.Section:
    """A card whose graph, headline and last-point text have ids the refresh targets."""
    grouping = group_by_for(metric)
    kind = metric.aggregation if metric.quantile is None else f"p{metric.quantile * 100:g}"
    facts = [
        kind,
        f"{', '.join(metric.windows)} windows",
        f"by {', '.join(grouping)}" if grouping else "total",
    ]
    return card(
        metric.name,
        dcc.Graph(
            id=ids.metric_id(ids.OVERVIEW_GRAPH, metric.name),
            figure=message_figure("Loading…"),
            config=GRAPH_CONFIG,
            responsive=True,
            style={"height": GRAPH_HEIGHT},
            className="metric-graph",
        ),
        html.Div(
            className="card-footer",
            children=[
                html.Span(" · ".join(facts), className="muted"),
                html.Span(
                    "–",
                    id=ids.metric_id(ids.OVERVIEW_LAST_POINT, metric.name),
                    className="last-point",
                ),
            ],
        ),
        query_details(ids.metric_id(ids.OVERVIEW_API, metric.name)),
        subtitle=metric.description or None,
        aside=html.Div("–", id=ids.metric_id(ids.OVERVIEW_KPI, metric.name), className="kpi"),
        class_name="metric-card",
        metric=metric.name,
    )


def kpi(metric: MetricInfo, response: SeriesResponse, now: datetime) -> list[Component]:
    """The card's headline: the newest complete window, as on its tile, with its time."""
    newest = headline_value(metric, response, now)
    unit = html.Span(f" {metric.unit}", className="kpi-unit") if metric.unit else None
    label = (
        f"per {response.step} · {fmt_clock(newest[0])}"
        if newest
        else f"no complete {response.step} window yet"
    )
    return [
        html.Div([fmt_value(newest[1] if newest else None, metric), unit], className="kpi-value"),
        html.Div(label, className="kpi-label"),
    ]


def last_point_text(response: SeriesResponse, now: datetime) -> str:
    """The newest window's start and source, and when this card was refreshed.

    Why both: a window start says which window is the newest, not how fresh the card
    is; the refresh time stops moving when the API does.
    """
    refreshed = f"refreshed {fmt_clock(now)} {zone_name()}"
    newest = latest_point(response)
    if newest is None:
        return f"no points yet · {refreshed}"
    return f"last point {fmt_clock(newest.t)} {zone_name()} ({newest.source}) · {refreshed}"
