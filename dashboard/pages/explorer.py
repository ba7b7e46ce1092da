"""Explorer: one metric, any range, step, grouping and filter; chart, table and CSV.

The whole view lives in the URL's query string (:mod:`dashboard.explorer_state`): the
layout reads it, and every change is written back with ``history.replaceState`` from a
clientside callback. Not through a ``dcc.Location``: Dash's page router listens to the
location and would rebuild the page (and flicker) on every control change.

Callbacks: the catalog fills the metric picker; the metric and range settle the step,
group-by and filter choices; the filter dimension lists the values seen in the range;
one refresh callback draws chart, table and summary (preset ranges also refresh live).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.dash_table.DataTable import DataTable  # the class; dash_table hides it from mypy
from dash.dcc.express import send_string  # dcc re-exports it without __all__
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient, series_params, series_path
from dashboard.api_models import MetricInfo
from dashboard.api_query import curl, origin, query_details
from dashboard.components import banner, card, page_header
from dashboard.errors import ApiError
from dashboard.explorer_state import (
    CUSTOM,
    PRESET_LABELS,
    ExplorerQuery,
    bounds,
    csv_text,
    dropped_note,
    from_params,
    settle,
    table_rows,
    to_search,
)
from dashboard.explorer_view import summary_text, table_columns, view_figure
from dashboard.figures import GRAPH_CONFIG, message_figure
from dashboard.formatting import display_zone
from dashboard.live import live_interval, too_soon
from dashboard.metric_cards import legend_key
from dashboard.metric_picker import register_metric_picker
from dashboard.timebar import from_params as timebar_params
from dashboard.timebar import interval_ms, time_bar

dash.register_page(__name__, path="/explorer", name="Explorer", title="Stratum · Explorer", order=1)

PAGE = "explorer"
REFRESH_MS = 5_000
MIN_REFRESH_MS = 2_000  # the time bar's fastest choice: the throttle's reference
CATALOG_RETRY_MS = 5_000
CUSTOM_SHOWN = {"display": "flex"}
HIDDEN = {"display": "none"}


def _field(label: str, control: Component, class_name: str = "") -> html.Div:
    return html.Div(
        [html.Label(label, className="field-label"), control],
        className=f"field {class_name}".strip(),
    )


def _opts(*values: str | None) -> list[str]:
    return [v for v in values if v]


def layout(**params: Any) -> Component:
    q = from_params(params)
    view = timebar_params(params, ranges=(), default_range="1h", default_refresh="5s")
    controls = html.Div(
        className="explorer-controls",
        children=[
            _field(
                "Metric",
                dcc.Dropdown(
                    id=ids.EXPLORER_METRIC,
                    value=q.metric,
                    options=_opts(q.metric),
                    clearable=False,
                    placeholder="Loading metrics…",
                ),
            ),
            _field(
                "Range",
                dcc.RadioItems(
                    id=ids.EXPLORER_RANGE,
                    value=q.range,
                    inline=True,
                    className="segmented",
                    options=[{"label": text, "value": key} for key, text in PRESET_LABELS.items()],
                ),
            ),
            html.Div(
                id=ids.EXPLORER_CUSTOM,
                className="custom-range",
                style=CUSTOM_SHOWN if q.range == CUSTOM else HIDDEN,
                children=[
                    _field(
                        "From (UTC)",
                        dcc.Input(
                            id=ids.EXPLORER_START,
                            value=q.start,
                            debounce=True,
                            placeholder="2026-11-21T10:00 or epoch ms",
                            className="input",
                        ),
                    ),
                    _field(
                        "To (UTC)",
                        dcc.Input(
                            id=ids.EXPLORER_END,
                            value=q.end,
                            debounce=True,
                            placeholder="now",
                            className="input",
                        ),
                    ),
                ],
            ),
            _field(
                "Step",
                dcc.Dropdown(
                    id=ids.EXPLORER_STEP, value=q.step, options=_opts(q.step), clearable=False
                ),
                "field--narrow",
            ),
            _field(
                "Group by",
                dcc.Dropdown(
                    id=ids.EXPLORER_GROUP_BY,
                    value=q.group_by,
                    options=_opts(q.group_by),
                    placeholder="no grouping",
                ),
            ),
            _field(
                "Filter on",
                dcc.Dropdown(
                    id=ids.EXPLORER_FILTER_DIM,
                    value=q.filter_dim,
                    options=_opts(q.filter_dim),
                    placeholder="dimension",
                ),
            ),
            _field(
                "Values",
                dcc.Dropdown(
                    id=ids.EXPLORER_FILTER_VALUES,
                    multi=True,
                    value=list(q.filter_values),
                    options=list(q.filter_values),
                    placeholder="any value",
                ),
                "field--wide",
            ),
        ],
    )
    chart = card(
        "Series",
        dcc.Graph(
            id=ids.EXPLORER_GRAPH,
            figure=message_figure("Loading…"),
            config=GRAPH_CONFIG,
            style={"height": "380px"},
            className="metric-graph",
        ),
        query_details(ids.EXPLORER_API),
        subtitle=html.Span(id=ids.EXPLORER_SUMMARY),
        class_name="explorer-chart",
    )
    table = card(
        "Windows",
        DataTable(
            id=ids.EXPLORER_TABLE,
            columns=table_columns(None),
            data=[],
            page_size=12,
            sort_action="native",
            style_as_list_view=True,
            style_table={"overflowX": "auto"},
            style_cell={
                "fontFamily": "inherit",
                "fontSize": "13px",
                "padding": "6px 10px",
                "textAlign": "left",
            },
            style_cell_conditional=[
                {"if": {"column_id": c}, "textAlign": "right"} for c in ("value", "events")
            ],
            style_header={"fontWeight": "600", "backgroundColor": "#f8fafc"},
        ),
        aside=html.Div(
            [
                html.Button(
                    "Download CSV",
                    id=ids.EXPLORER_DOWNLOAD_BUTTON,
                    className="button button--ghost",
                ),
                dcc.Download(id=ids.EXPLORER_DOWNLOAD),
            ]
        ),
    )
    return html.Div(
        [
            page_header(
                "Explorer",
                "One metric, any range, step, grouping and filter · the URL holds the view",
            ),
            html.Div([time_bar(PAGE, view, ranges=None), legend_key()], className="page-tools"),
            card("View", controls, class_name="explorer-card"),
            html.Div(id=ids.EXPLORER_DROPPED, className="muted form-note", role="status"),
            html.Div(id=ids.EXPLORER_STATUS),
            chart,
            table,
            dcc.Store(id=ids.EXPLORER_CATALOG),
            dcc.Store(id=ids.EXPLORER_QUERY),
            dcc.Store(id=ids.EXPLORER_REFRESHED),
            dcc.Store(id=ids.EXPLORER_VALUES_DIM, data=q.filter_dim),
            html.Div(id=ids.EXPLORER_URL_SINK, hidden=True),
            dcc.Interval(id=ids.EXPLORER_CATALOG_INTERVAL, interval=CATALOG_RETRY_MS),
            live_interval(PAGE, interval_ms(view.refresh, REFRESH_MS)),
        ],
        className="explorer",
    )


def _metric(catalog: list[dict[str, Any]] | None, name: str | None) -> MetricInfo | None:
    found = next((m for m in catalog or [] if m["name"] == name), None)
    return MetricInfo.model_validate(found) if found else None


def _query(
    metric: str | None,
    range_: str,
    start: str | None,
    end: str | None,
    step: str | None,
    group_by: str | None,
    filter_dim: str | None,
    values: list[str] | None,
) -> ExplorerQuery:
    return ExplorerQuery(
        metric=metric,
        range=range_ or "1h",
        start=start or "",
        end=end or "",
        step=step,
        group_by=group_by,
        filter_dim=filter_dim,
        filter_values=tuple(values or ()),
    )


def _bounds_or(query: ExplorerQuery, fallback: str) -> tuple[datetime, datetime]:
    """The view's bounds, or the ``fallback`` preset while a custom range is unusable."""
    now = datetime.now(UTC)
    try:
        return bounds(query, now)
    except ValueError:
        return bounds(replace(query, range=fallback), now)


VIEW_INPUTS = [
    Input(ids.EXPLORER_METRIC, "value"),
    Input(ids.EXPLORER_RANGE, "value"),
    Input(ids.EXPLORER_START, "value"),
    Input(ids.EXPLORER_END, "value"),
    Input(ids.EXPLORER_STEP, "value"),
    Input(ids.EXPLORER_GROUP_BY, "value"),
    Input(ids.EXPLORER_FILTER_DIM, "value"),
    Input(ids.EXPLORER_FILTER_VALUES, "value"),
]


def register_callbacks(app: Dash, api: ApiClient) -> None:
    register_metric_picker(
        app,
        api,
        picker=ids.EXPLORER_METRIC,
        catalog=ids.EXPLORER_CATALOG,
        retry=ids.EXPLORER_CATALOG_INTERVAL,
        status=ids.EXPLORER_STATUS,
    )

    @app.callback(
        Output(ids.EXPLORER_STEP, "options"),
        Output(ids.EXPLORER_STEP, "value"),
        Output(ids.EXPLORER_GROUP_BY, "options"),
        Output(ids.EXPLORER_GROUP_BY, "value"),
        Output(ids.EXPLORER_FILTER_DIM, "options"),
        Output(ids.EXPLORER_FILTER_DIM, "value"),
        Output(ids.EXPLORER_CUSTOM, "style"),
        Output(ids.EXPLORER_DROPPED, "children"),
        Input(ids.EXPLORER_METRIC, "value"),
        Input(ids.EXPLORER_RANGE, "value"),
        Input(ids.EXPLORER_CATALOG, "data"),
        State(ids.EXPLORER_START, "value"),
        State(ids.EXPLORER_END, "value"),
        State(ids.EXPLORER_STEP, "value"),
        State(ids.EXPLORER_GROUP_BY, "value"),
        State(ids.EXPLORER_FILTER_DIM, "value"),
        State(ids.EXPLORER_FILTER_VALUES, "value"),
    )
    def settle_choices(
        name: str | None,
        range_: str,
        catalog: list[dict[str, Any]] | None,
        start: str | None,
        end: str | None,
        step: str | None,
        group_by: str | None,
        filter_dim: str | None,
        values: list[str] | None,
    ) -> tuple[Any, ...]:
        """A new range picks its default step; a new metric keeps what still applies and
        says what it removed."""
        style = CUSTOM_SHOWN if range_ == CUSTOM else HIDDEN
        metric = _metric(catalog, name)
        if metric is None:
            return (*[no_update] * 6, style, no_update)
        query = _query(name, range_, start, end, step, group_by, filter_dim, values)
        t0, t1 = _bounds_or(query, "1h")
        settled = settle(query, metric, t1 - t0, keep_step=ctx.triggered_id != ids.EXPLORER_RANGE)
        dims = list(metric.dimensions)
        note = (
            dropped_note(query, settled, metric)
            if ctx.triggered_id == ids.EXPLORER_METRIC
            else no_update
        )
        return (
            list(metric.windows),
            settled.step,
            dims,
            settled.group_by,
            dims,
            settled.filter_dim,
            style,
            note,
        )

    @app.callback(
        Output(ids.EXPLORER_FILTER_VALUES, "options"),
        Output(ids.EXPLORER_FILTER_VALUES, "value"),
        Output(ids.EXPLORER_VALUES_DIM, "data"),
        Input(ids.EXPLORER_FILTER_DIM, "value"),
        Input(ids.EXPLORER_METRIC, "value"),
        Input(ids.EXPLORER_RANGE, "value"),
        State(ids.EXPLORER_START, "value"),
        State(ids.EXPLORER_END, "value"),
        State(ids.EXPLORER_FILTER_VALUES, "value"),
        State(ids.EXPLORER_VALUES_DIM, "data"),
        State(ids.EXPLORER_CATALOG, "data"),
    )
    def list_values(
        filter_dim: str | None,
        name: str | None,
        range_: str,
        start: str | None,
        end: str | None,
        current: list[str] | None,
        values_dim: str | None,
        catalog: list[dict[str, Any]] | None,
    ) -> tuple[Any, ...]:
        """The values of the filter dimension seen in the range (plus those selected)."""
        kept = list(current or []) if filter_dim == values_dim else []
        metric = _metric(catalog, name)
        if not filter_dim or metric is None or filter_dim not in metric.dimensions:
            return kept, kept, filter_dim
        t0, t1 = _bounds_or(_query(name, range_, start, end, None, None, None, None), "24h")
        try:
            response = api.series(
                metric.name, start=t0, end=t1, step=metric.windows[-1], group_by=(filter_dim,)
            )
        except ApiError:
            return kept, kept, filter_dim
        seen = {s.group.get(filter_dim, "") for s in response.series}
        return sorted(seen | set(kept)), kept, filter_dim

    @app.callback(
        Output(ids.EXPLORER_GRAPH, "figure"),
        Output(ids.EXPLORER_TABLE, "data"),
        Output(ids.EXPLORER_TABLE, "columns"),
        Output(ids.EXPLORER_SUMMARY, "children"),
        Output(ids.EXPLORER_STATUS, "children"),
        Output(ids.EXPLORER_QUERY, "data"),
        Output(ids.EXPLORER_REFRESHED, "data"),
        Output(ids.EXPLORER_API, "children"),
        *VIEW_INPUTS,
        Input(ids.live_interval(PAGE), "n_intervals"),
        Input(ids.timebar("tz", PAGE), "value"),
        Input(ids.APP_TZ_OFFSET, "data"),
        State(ids.EXPLORER_CATALOG, "data"),
        State(ids.EXPLORER_REFRESHED, "data"),
        running=[(Output(ids.live_interval(PAGE), "disabled"), True, False)],
    )
    def refresh(
        name: str | None,
        range_: str,
        start: str | None,
        end: str | None,
        step: str | None,
        group_by: str | None,
        filter_dim: str | None,
        values: list[str] | None,
        _n: int | None,
        tz: str | None,
        offset: int | None,
        catalog: list[dict[str, Any]] | None,
        refreshed: float | None,
    ) -> tuple[Any, ...]:
        metric = _metric(catalog, name)
        if metric is None:
            raise PreventUpdate
        ticked = ctx.triggered_id == ids.live_interval(PAGE)
        if ticked and (range_ == CUSTOM or too_soon(refreshed, MIN_REFRESH_MS)):
            raise PreventUpdate
        with display_zone(tz, offset):
            return _draw(api, metric, name, range_, start, end, step, group_by, filter_dim, values)

    app.clientside_callback(  # the time bar's refresh and tz stay in the URL
        "function(view) {"
        "  if (!view || !view.search) { return ''; }"
        "  const kept = new URLSearchParams(window.location.search);"
        "  const next = new URLSearchParams(view.search);"
        "  ['refresh', 'tz'].forEach(k => { if (kept.get(k)) next.set(k, kept.get(k)); });"
        "  const search = '?' + next.toString();"
        "  if (window.location.search !== search) {"
        "    window.history.replaceState(window.history.state, '',"
        "                                window.location.pathname + search);"
        "  }"
        "  return search;"
        "}",
        Output(ids.EXPLORER_URL_SINK, "children"),
        Input(ids.EXPLORER_QUERY, "data"),
    )

    @app.callback(
        Output(ids.EXPLORER_DOWNLOAD, "data"),
        Input(ids.EXPLORER_DOWNLOAD_BUTTON, "n_clicks"),
        State(ids.EXPLORER_QUERY, "data"),
        State(ids.EXPLORER_CATALOG, "data"),
        prevent_initial_call=True,
    )
    def download(
        _clicks: int, view: dict[str, Any] | None, catalog: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """The view as shown, fetched again: the CSV matches what the table holds."""
        if not view or "query" not in view:
            raise PreventUpdate
        saved = view["query"]
        query = ExplorerQuery(**{**saved, "filter_values": tuple(saved["filter_values"])})
        metric = _metric(catalog, query.metric)
        if metric is None:
            raise PreventUpdate
        t0, t1 = bounds(query, datetime.now(UTC))
        response = api.series(
            metric.name,
            start=t0,
            end=t1,
            step=query.step or "1m",
            group_by=(query.group_by,) if query.group_by else (),
            filters=query.filters,
        )
        dims = [query.group_by] if query.group_by else []
        name = f"stratum-{metric.name}-{t0:%Y%m%dT%H%M}-{t1:%Y%m%dT%H%M}.csv"
        download: dict[str, Any] = send_string(csv_text(response, dims), name)
        return download


def _draw(
    api: ApiClient,
    metric: MetricInfo,
    name: str | None,
    range_: str,
    start: str | None,
    end: str | None,
    step: str | None,
    group_by: str | None,
    filter_dim: str | None,
    values: list[str] | None,
) -> tuple[Any, ...]:
    """Fetch and draw the view: figure, table, summary, status, URL state, curl."""
    query = _query(name, range_, start, end, step, group_by, filter_dim, values)
    now = datetime.now(UTC)
    try:
        t0, t1 = bounds(query, now)
    except ValueError as exc:
        return (
            no_update,
            no_update,
            no_update,
            "",
            banner(str(exc), "warn"),
            {"search": to_search(query)},
            time.time(),
            no_update,
        )
    query = settle(query, metric, t1 - t0, keep_step=True)
    params = series_params(
        start=t0,
        end=t1,
        step=query.step or "1m",
        group_by=(query.group_by,) if query.group_by else (),
        filters=query.filters,
    )
    command = curl(origin(), series_path(metric.name), params)
    try:
        response = api.series(
            metric.name,
            start=t0,
            end=t1,
            step=query.step or "1m",
            group_by=(query.group_by,) if query.group_by else (),
            filters=query.filters,
        )
        jobs = api.pipeline(limit=20).jobs
    except ApiError as exc:
        return (
            no_update,
            no_update,
            no_update,
            "",
            banner(str(exc)),
            {"search": to_search(query)},
            time.time(),
            command,
        )
    return (
        view_figure(metric, response, jobs, now),
        table_rows(response, additive=metric.additive, now=now),
        table_columns(metric),
        summary_text(metric, response, now),
        None,
        {"search": to_search(query), "query": asdict(query)},
        time.time(),
        command,
    )
