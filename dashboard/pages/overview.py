"""Overview: every metric the API lists, the last 30 minutes, refreshed every 2 s.

Two callbacks. The first loads the metric list once (retrying while the API is down)
and lays out one card per metric; the second, on a 2 s interval, replaces only the
figures and the small texts in those cards. The interval is disabled while a refresh
runs (``running=``), so a slow API never piles refreshes on top of each other; an
unreachable API greys the cards and says so instead of leaving old numbers looking live.

Dash imports this module itself (``use_pages``); ``create_dash`` then calls
:func:`register_callbacks` with the app's API client.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient
from dashboard.api_models import MetricInfo, SeriesResponse
from dashboard.components import banner, page_header
from dashboard.errors import ApiError, ApiUnavailableError
from dashboard.figures import message_figure, metric_figure
from dashboard.metric_cards import kpi, last_point_text, legend_key, metric_card
from dashboard.series import group_by_for, has_values, lines_of

dash.register_page(__name__, path="/", name="Overview", title="Stratum · Overview", order=0)  # type: ignore[no-untyped-call]

RANGE = timedelta(minutes=30)
REFRESH_MS = 2_000
CATALOG_RETRY_MS = 5_000
FETCH_THREADS = 4
NO_DATA = "No data yet: no events in the last 30 minutes"


def layout(**_query: str) -> Component:
    return html.Div([
        page_header(
            "Overview",
            "Every metric the API serves · last 30 minutes at its finest window · times in UTC",
            legend_key(),
        ),
        html.Div(id=ids.OVERVIEW_STATUS),
        html.Div(id=ids.OVERVIEW_GRID, className="metric-grid",
                 children=html.Div("Loading metrics…", className="empty-state")),
        dcc.Store(id=ids.OVERVIEW_CATALOG),
        dcc.Interval(id=ids.OVERVIEW_CATALOG_INTERVAL, interval=CATALOG_RETRY_MS),
        dcc.Interval(id=ids.OVERVIEW_REFRESH_INTERVAL, interval=REFRESH_MS),
    ])


def register_callbacks(app: Dash, api: ApiClient) -> None:
    # One request per metric, side by side: a refresh then takes as long as the slowest.
    pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="overview-fetch")

    @app.callback(
        Output(ids.OVERVIEW_GRID, "children"),
        Output(ids.OVERVIEW_CATALOG, "data"),
        Output(ids.OVERVIEW_CATALOG_INTERVAL, "disabled"),
        Input(ids.OVERVIEW_CATALOG_INTERVAL, "n_intervals"),
    )
    def load_catalog(_n: int | None) -> tuple[Any, Any, bool]:
        """Lay out the cards once; keep retrying (interval on) while the API is down."""
        try:
            metrics = api.metrics()
        except ApiError as exc:
            retry = f"{exc} · retrying every {CATALOG_RETRY_MS // 1000} s"
            return banner(retry), None, False
        if not metrics:
            empty = html.Div("The API lists no metrics; define some in metrics.toml.",
                             className="empty-state")
            return empty, [], True
        catalog = [m.model_dump(mode="json") for m in metrics]
        return [metric_card(m) for m in metrics], catalog, True

    @app.callback(
        Output(ids.metric_id(ids.OVERVIEW_GRAPH, ALL), "figure"),
        Output(ids.metric_id(ids.OVERVIEW_LAST_POINT, ALL), "children"),
        Output(ids.metric_id(ids.OVERVIEW_KPI, ALL), "children"),
        Output(ids.OVERVIEW_STATUS, "children"),
        Output(ids.OVERVIEW_GRID, "className"),
        Input(ids.OVERVIEW_REFRESH_INTERVAL, "n_intervals"),
        State(ids.metric_id(ids.OVERVIEW_GRAPH, ALL), "id"),
        State(ids.OVERVIEW_CATALOG, "data"),
        running=[(Output(ids.OVERVIEW_REFRESH_INTERVAL, "disabled"), True, False)],
    )
    def refresh(
        _n: int | None, graph_ids: list[dict[str, str]], catalog: list[dict[str, Any]] | None
    ) -> tuple[Any, ...]:
        """Fetch every card's series (in parallel) and swap the figures; layout untouched."""
        if not graph_ids or not catalog:
            raise PreventUpdate
        known = {m["name"]: MetricInfo.model_validate(m) for m in catalog}
        metrics = [known[graph_id["metric"]] for graph_id in graph_ids]
        now = datetime.now(UTC)

        def fetch(metric: MetricInfo) -> SeriesResponse | ApiError:
            try:
                return api.series(metric.name, start=now - RANGE, end=now,
                                  step=metric.finest_window, group_by=group_by_for(metric))
            except ApiError as exc:
                return exc

        results = list(pool.map(fetch, metrics))
        down = next((r for r in results if isinstance(r, ApiUnavailableError)), None)
        if down is not None:
            stale = [no_update] * len(metrics)
            message = f"{down}. The charts below are stale; retrying every 2 s."
            return stale, stale, stale, banner(message), "metric-grid is-stale"
        figures: list[Any] = []
        last_points: list[Any] = []
        kpis: list[Any] = []
        for metric, result in zip(metrics, results, strict=True):
            if isinstance(result, ApiError):
                figures.append(message_figure(f"Cannot load {metric.name}: {result}"))
                last_points.append("–")
                kpis.append("–")
                continue
            lines = lines_of(result, additive=metric.additive)
            figures.append(
                metric_figure(metric, lines, start=result.start, end=result.end,
                              step=result.step, horizon=result.horizon)
                if has_values(lines) else message_figure(NO_DATA)
            )
            last_points.append(last_point_text(result, now))
            kpis.append(kpi(metric, result))
        return figures, last_points, kpis, None, "metric-grid"
