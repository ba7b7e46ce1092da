"""Overview: KPI tiles (events/s, each metric, freshness) and every metric's chart over the
time bar's range (30 minutes by default), refreshed every 2 s unless the time bar says
otherwise (see :mod:`dashboard.timebar`).

Two callbacks. The first loads the metric list once (retrying while the API is down)
and lays out the tiles and one card per metric; the second, on the page's live interval,
replaces only figures and texts inside them: no layout is rebuilt, so nothing flickers.
See :mod:`dashboard.live` for why refreshes never pile up and how pause works. An
unreachable API greys the cards and says so instead of leaving old numbers looking live.

Dash imports this module itself (``use_pages``); ``create_dash`` then calls
:func:`register_callbacks` with the app's API client.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient, series_params, series_path
from dashboard.api_models import MetricInfo, Pipeline, SeriesResponse, Status
from dashboard.api_query import curl, origin
from dashboard.components import banner, page_header
from dashboard.errors import ApiError, ApiUnavailableError
from dashboard.explorer_state import default_step
from dashboard.figures import PALETTE, message_figure, metric_figure, sparkline
from dashboard.formatting import INGEST_WINDOW, display_zone, fmt_rate
from dashboard.kpi_tiles import (
    TileValue,
    freshness,
    freshness_tile,
    metric_tile,
    metric_tile_text,
    rate_text,
    rate_tile,
    spark_points,
    throughput_metric,
)
from dashboard.live import live_interval, too_soon
from dashboard.metric_cards import kpi, last_point_text, legend_key, metric_card
from dashboard.series import group_by_for, has_values, lines_of, run_marks
from dashboard.timebar import bounds, from_params, interval_ms, time_bar

dash.register_page(__name__, path="/", name="Overview", title="Stratum · Overview", order=0)

PAGE = "overview"
RANGES = ("15m", "30m", "1h", "6h", "24h")
DEFAULT_RANGE = "30m"
REFRESH_MS = 2_000
MIN_REFRESH_MS = 2_000  # the time bar's fastest choice: the throttle's reference
CATALOG_RETRY_MS = 5_000
FETCH_THREADS = 6
NO_DATA = "No data in this range yet"


def layout(**params: Any) -> Component:
    view = from_params(params, ranges=RANGES, default_range=DEFAULT_RANGE, default_refresh="2s")
    return html.Div(
        [
            page_header(
                "Overview",
                "Every metric the API serves, at the finest window that keeps the range readable",
            ),
            html.Div([time_bar(PAGE, view, ranges=RANGES), legend_key()], className="page-tools"),
            html.Div(id=ids.OVERVIEW_STATUS),
            html.Div(id=ids.OVERVIEW_TILES, className="tile-row"),
            html.Div(
                id=ids.OVERVIEW_GRID,
                className="metric-grid",
                children=html.Div("Loading metrics…", className="empty-state"),
            ),
            dcc.Store(id=ids.OVERVIEW_CATALOG),
            dcc.Store(id=ids.OVERVIEW_REFRESHED),
            dcc.Interval(id=ids.OVERVIEW_CATALOG_INTERVAL, interval=CATALOG_RETRY_MS),
            live_interval(PAGE, interval_ms(view.refresh, REFRESH_MS)),
        ]
    )


Fetched = SeriesResponse | Status | Pipeline | ApiError


def register_callbacks(app: Dash, api: ApiClient) -> None:
    # One request per metric, side by side: a refresh then takes as long as the slowest.
    pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="overview-fetch")

    @app.callback(
        Output(ids.OVERVIEW_GRID, "children"),
        Output(ids.OVERVIEW_TILES, "children"),
        Output(ids.OVERVIEW_CATALOG, "data"),
        Output(ids.OVERVIEW_CATALOG_INTERVAL, "disabled"),
        Input(ids.OVERVIEW_CATALOG_INTERVAL, "n_intervals"),
    )
    def load_catalog(_n: int | None) -> tuple[Any, Any, Any, bool]:
        """Lay out tiles and cards once; keep retrying (interval on) while the API is down."""
        try:
            metrics = api.metrics()
        except ApiError as exc:
            retry = f"{exc} · retrying every {CATALOG_RETRY_MS // 1000} s"
            return banner(retry), [], None, False
        if not metrics:
            empty = html.Div(
                "The API lists no metrics; define some in metrics.toml.", className="empty-state"
            )
            return empty, [], [], True
        catalog = [m.model_dump(mode="json") for m in metrics]
        tiles = [rate_tile(), *(metric_tile(m) for m in metrics), freshness_tile()]
        return [metric_card(m) for m in metrics], tiles, catalog, True

    @app.callback(
        Output(ids.metric_id(ids.OVERVIEW_GRAPH, ALL), "figure"),
        Output(ids.metric_id(ids.OVERVIEW_LAST_POINT, ALL), "children"),
        Output(ids.metric_id(ids.OVERVIEW_KPI, ALL), "children"),
        Output(ids.metric_id(ids.OVERVIEW_TILE_VALUE, ALL), "children"),
        Output(ids.metric_id(ids.OVERVIEW_TILE_NOTE, ALL), "children"),
        Output(ids.metric_id(ids.OVERVIEW_TILE_SPARK, ALL), "figure"),
        Output(ids.OVERVIEW_RATE_VALUE, "children"),
        Output(ids.OVERVIEW_RATE_NOTE, "children"),
        Output(ids.OVERVIEW_RATE_SPARK, "figure"),
        Output(ids.OVERVIEW_FRESHNESS, "children"),
        Output(ids.OVERVIEW_FRESHNESS, "className"),
        Output(ids.OVERVIEW_STATUS, "children"),
        Output(ids.OVERVIEW_GRID, "className"),
        Output(ids.metric_id(ids.OVERVIEW_API, ALL), "children"),
        Output(ids.OVERVIEW_REFRESHED, "data"),
        Input(ids.live_interval(PAGE), "n_intervals"),
        Input(ids.OVERVIEW_CATALOG, "data"),
        Input(ids.timebar("range", PAGE), "value"),
        Input(ids.timebar("start", PAGE), "value"),
        Input(ids.timebar("end", PAGE), "value"),
        Input(ids.timebar("tz", PAGE), "value"),
        Input(ids.APP_TZ_OFFSET, "data"),
        State(ids.metric_id(ids.OVERVIEW_GRAPH, ALL), "id"),
        State(ids.OVERVIEW_REFRESHED, "data"),
        running=[(Output(ids.live_interval(PAGE), "disabled"), True, False)],
    )
    def refresh(
        _n: int | None,
        catalog: list[dict[str, Any]] | None,
        range_: str | None,
        start: str | None,
        end: str | None,
        tz: str | None,
        offset: int | None,
        graph_ids: list[dict[str, str]],
        refreshed: float | None,
    ) -> tuple[Any, ...]:
        """Fetch every series, the status and the pipeline in parallel; swap contents."""
        if not graph_ids or not catalog:
            raise PreventUpdate
        if ctx.triggered_id == ids.live_interval(PAGE) and too_soon(refreshed, MIN_REFRESH_MS):
            raise PreventUpdate
        known = {m["name"]: MetricInfo.model_validate(m) for m in catalog}
        metrics = [
            known[graph_id["metric"]] for graph_id in graph_ids if graph_id["metric"] in known
        ]
        if len(metrics) != len(graph_ids):
            raise PreventUpdate  # the cards are from an older catalog; the next tick fixes it
        now = datetime.now(UTC)
        t0, t1, problem = bounds(range_, start, end, now, DEFAULT_RANGE)
        steps = [default_step(m, t1 - t0) for m in metrics]
        # The pool's threads have no request: they call with this person's credential.
        results = _fetch_all(pool, api.as_current_person(), metrics, steps, t0, t1)
        base = origin()
        queries = [
            curl(
                base,
                series_path(m.name),
                series_params(start=t0, end=t1, step=step, group_by=group_by_for(m)),
            )
            for m, step in zip(metrics, steps, strict=True)
        ]
        with display_zone(tz, offset):
            shown = _render(metrics, results, now)
        if problem is not None and shown[11] is None:
            shown = (
                *shown[:11],
                banner(f"{problem} Showing the last 30 min.", "warn"),
                *shown[12:],
            )
        return (*shown, queries, time.time())


def _fetch_all(
    pool: ThreadPoolExecutor,
    api: ApiClient,
    metrics: list[MetricInfo],
    steps: list[str],
    t0: datetime,
    t1: datetime,
) -> list[Fetched]:
    def guarded(call: Any) -> Fetched:
        try:
            result: Fetched = call()
        except ApiError as exc:
            return exc
        return result

    calls: list[Any] = [
        (
            lambda m=m, step=step: api.series(
                m.name, start=t0, end=t1, step=step, group_by=group_by_for(m)
            )
        )
        for m, step in zip(metrics, steps, strict=True)
    ]
    calls += [api.status, lambda: api.pipeline(limit=20)]
    return list(pool.map(guarded, calls))


def _render(metrics: list[MetricInfo], results: list[Fetched], now: datetime) -> tuple[Any, ...]:
    series, (status, pipeline) = results[: len(metrics)], results[len(metrics) :]
    down = next((r for r in results if isinstance(r, ApiUnavailableError)), None)
    if down is not None:
        stale = [no_update] * len(metrics)
        message = f"{down}. The numbers below are stale; retrying every 2 s."
        return (
            stale,
            stale,
            stale,
            stale,
            stale,
            stale,
            no_update,
            no_update,
            no_update,
            *freshness(None, "API unreachable"),
            banner(message),
            "metric-grid is-stale",
        )
    runs = run_marks(pipeline.jobs) if isinstance(pipeline, Pipeline) else []
    figures, last_points, notes, sparks = [], [], [], []
    kpis: list[list[Component] | str] = []
    values: list[TileValue] = []
    for metric, result in zip(metrics, series, strict=True):
        if not isinstance(result, SeriesResponse):
            figures.append(message_figure(f"Cannot load {metric.name}: {result}"))
            last_points.append("–")
            kpis.append("–")
            values.append("–")
            notes.append(str(result))
            sparks.append(message_figure(""))
            continue
        lines = lines_of(result, additive=metric.additive)
        figures.append(
            metric_figure(
                metric,
                lines,
                start=result.start,
                end=result.end,
                step=result.step,
                horizon=result.horizon,
                runs=runs,
                now=now,
            )
            if has_values(lines)
            else message_figure(NO_DATA)
        )
        last_points.append(last_point_text(result, now))
        kpis.append(kpi(metric, result, now))
        value, note = metric_tile_text(metric, result, now)
        values.append(value)
        notes.append(note)
        xs, ys = spark_points(metric, result)
        sparks.append(
            sparkline(
                xs,
                ys,
                start=result.start,
                end=result.end,
                horizon=result.horizon,
                step=result.step,
                now=now,
            )
        )
    rate = _rate_tile(metrics, series, pipeline, now)
    fresh = freshness(
        status if isinstance(status, Status) else None,
        str(status) if isinstance(status, ApiError) else None,
    )
    return (figures, last_points, kpis, values, notes, sparks, *rate, *fresh, None, "metric-grid")


def _rate_tile(
    metrics: list[MetricInfo], series: list[Fetched], pipeline: Fetched, now: datetime
) -> tuple[Any, Any, Any]:
    counter = throughput_metric(metrics)
    ingest = pipeline.stage("ingest_accepted").per_s if isinstance(pipeline, Pipeline) else None
    if counter is None:
        note = (
            f"ingest {fmt_rate(ingest)} ({INGEST_WINDOW})"
            if ingest is not None
            else "no count metric"
        )
        return "–", note, message_figure("")
    response = series[metrics.index(counter)]
    if not isinstance(response, SeriesResponse):
        return "–", str(response), message_figure("")
    value, note, xs, rates = rate_text(counter, response, now, ingest)
    spark = sparkline(
        xs,
        list(rates),
        start=response.start,
        end=response.end,
        horizon=response.horizon,
        step=response.step,
        now=now,
        colour=PALETTE[4],
    )
    return value, note, spark
