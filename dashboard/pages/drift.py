"""Drift: where the speed layer's provisional numbers were off from batch's final ones,
by how much, and why (late events, duplicates, sketch error, rounding).

One ``GET /v1/drift`` per refresh (every 10 s, pausable, never overlapping: see
:mod:`dashboard.live`) and on every change of metric or range. Only windows both
layers hold are compared, so the page fills once a batch run has covered some.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.dash_table.DataTable import DataTable  # the class; dash_table hides it from mypy
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient, iso_utc
from dashboard.api_models import MetricInfo
from dashboard.api_query import curl, origin, query_details
from dashboard.components import banner, card, page_header
from dashboard.drift_view import drift_figure, drift_rows, drift_tiles, table_columns
from dashboard.errors import ApiError
from dashboard.figures import GRAPH_CONFIG, message_figure
from dashboard.formatting import display_zone, fmt_clock, zone_name
from dashboard.live import live_interval, too_soon
from dashboard.metric_picker import register_metric_picker
from dashboard.timebar import bounds, from_params, interval_ms, time_bar

dash.register_page(__name__, path="/drift", name="Drift", title="Stratum · Drift", order=3)

PAGE = "drift"
REFRESH_MS = 10_000
CATALOG_RETRY_MS = 5_000
RANGES = ("1h", "6h", "24h", "7d")
DEFAULT_RANGE = "1h"
MIN_REFRESH_MS = 2_000  # the time bar's fastest choice: the throttle's reference


def _field(label: str, control: Component) -> html.Div:
    return html.Div([html.Label(label, className="field-label"), control], className="field")


def layout(**params: Any) -> Component:
    metric = params.get("metric") or None
    view = from_params(params, ranges=RANGES, default_range=DEFAULT_RANGE, default_refresh="10s")
    controls = html.Div(
        className="explorer-controls",
        children=[
            _field(
                "Metric",
                dcc.Dropdown(
                    id=ids.DRIFT_METRIC,
                    value=metric,
                    options=[metric] if metric else [],
                    clearable=False,
                    placeholder="Loading metrics…",
                ),
            ),
            time_bar(PAGE, view, ranges=RANGES),
        ],
    )
    table = DataTable(
        id=ids.DRIFT_TABLE,
        columns=table_columns(),
        data=[],
        page_size=10,
        style_as_list_view=True,
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": "13px",
            "padding": "6px 10px",
            "textAlign": "left",
        },
        style_cell_conditional=[
            {"if": {"column_id": c}, "textAlign": "right"}
            for c in ("speed", "batch", "difference", "relative", "events")
        ],
        style_header={"fontWeight": "600", "backgroundColor": "#f8fafc"},
    )
    return html.Div(
        [
            page_header(
                "Speed vs batch drift",
                "Per window both layers hold: the speed layer's provisional value against "
                "batch's final one, and why they differ",
                html.Span(id=ids.DRIFT_UPDATED, className="muted"),
            ),
            card("View", controls, class_name="explorer-card"),
            html.Div(id=ids.DRIFT_STATUS),
            html.Div(
                id=ids.DRIFT_TILES,
                className="tile-row tile-row--pipeline",
                children=html.Div("Loading…", className="empty-state"),
            ),
            card(
                "Difference per window",
                dcc.Graph(
                    id=ids.DRIFT_GRAPH,
                    figure=message_figure("Loading…"),
                    config=GRAPH_CONFIG,
                    style={"height": "320px"},
                ),
                query_details(ids.DRIFT_API),
                subtitle="(speed − batch) / batch; bars coloured by the reason",
            ),
            card(
                "Windows that were off",
                table,
                subtitle="largest relative difference first; events counted by each layer",
            ),
            dcc.Store(id=ids.DRIFT_CATALOG),
            dcc.Store(id=ids.DRIFT_REFRESHED),
            dcc.Interval(id=ids.DRIFT_CATALOG_INTERVAL, interval=CATALOG_RETRY_MS),
            live_interval(PAGE, interval_ms(view.refresh, REFRESH_MS)),
        ]
    )


def register_callbacks(app: Dash, api: ApiClient) -> None:
    register_metric_picker(
        app,
        api,
        picker=ids.DRIFT_METRIC,
        catalog=ids.DRIFT_CATALOG,
        retry=ids.DRIFT_CATALOG_INTERVAL,
        status=ids.DRIFT_STATUS,
    )

    @app.callback(
        Output(ids.DRIFT_TILES, "children"),
        Output(ids.DRIFT_GRAPH, "figure"),
        Output(ids.DRIFT_TABLE, "data"),
        Output(ids.DRIFT_STATUS, "children", allow_duplicate=True),
        Output(ids.DRIFT_UPDATED, "children"),
        Output(ids.DRIFT_REFRESHED, "data"),
        Output(ids.DRIFT_API, "children"),
        Output(ids.DRIFT_TABLE, "columns"),
        Input(ids.DRIFT_METRIC, "value"),
        Input(ids.timebar("range", PAGE), "value"),
        Input(ids.DRIFT_CATALOG, "data"),
        Input(ids.live_interval(PAGE), "n_intervals"),
        Input(ids.timebar("start", PAGE), "value"),
        Input(ids.timebar("end", PAGE), "value"),
        Input(ids.timebar("tz", PAGE), "value"),
        Input(ids.APP_TZ_OFFSET, "data"),
        State(ids.DRIFT_REFRESHED, "data"),
        running=[(Output(ids.live_interval(PAGE), "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def refresh(
        name: str | None,
        range_: str,
        catalog: list[dict[str, Any]] | None,
        n: int | None,
        start: str | None,
        end: str | None,
        tz: str | None,
        offset: int | None,
        refreshed: float | None,
    ) -> tuple[Any, ...]:
        found = next((m for m in catalog or [] if m["name"] == name), None)
        if found is None:
            raise PreventUpdate
        if dash.ctx.triggered_id == ids.live_interval(PAGE) and too_soon(refreshed, MIN_REFRESH_MS):
            raise PreventUpdate
        metric = MetricInfo.model_validate(found)
        now = datetime.now(UTC)
        t0, t1, problem = bounds(range_, start, end, now, DEFAULT_RANGE)
        command = curl(
            origin(),
            "/v1/drift",
            [("metric", metric.name), ("start", iso_utc(t0)), ("end", iso_utc(t1))],
        )
        with display_zone(tz, offset):
            try:
                drift = api.drift(metric.name, start=t0, end=t1)
            except ApiError as exc:
                message = f"{exc}. The numbers below are stale; retrying."
                return (
                    no_update,
                    no_update,
                    no_update,
                    banner(message),
                    f"failed at {fmt_clock(now)} {zone_name()}",
                    time.time(),
                    command,
                    table_columns(),
                )
            note = banner(f"{problem} Showing the last hour.", "warn") if problem else None
            return (
                drift_tiles(drift),
                drift_figure(drift, metric),
                drift_rows(drift, metric),
                note,
                f"updated {fmt_clock(now)} {zone_name()}",
                time.time(),
                command,
                table_columns(),
            )
