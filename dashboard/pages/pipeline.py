"""Pipeline health: throughput per stage, each partition's progress and event-time lag,
late and dead-letter counts, the batch horizon, and a timeline of batch runs and replays.

One ``GET /v1/pipeline`` per refresh (every 2 s, pausable, never overlapping: see
:mod:`dashboard.live`). Stage counters are the API process's own, which the page says.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient
from dashboard.api_models import JobPage
from dashboard.api_query import curl, origin, query_details
from dashboard.components import banner, card, page_header
from dashboard.errors import ApiError
from dashboard.figures import GRAPH_CONFIG, message_figure
from dashboard.formatting import INGEST_WINDOW, display_zone, fmt_clock, zone_name
from dashboard.jobs_table import jobs_table
from dashboard.live import live_interval, too_soon
from dashboard.pipeline_view import (
    partitions_table,
    stage_tiles,
    throughput_figure,
    timeline_figure,
)
from dashboard.timebar import from_params, interval_ms, time_bar

dash.register_page(__name__, path="/pipeline", name="Pipeline", title="Stratum · Pipeline", order=2)

PAGE = "pipeline"
REFRESH_MS = 2_000
JOBS_SHOWN = 20


def _graph(graph_id: str, height: str) -> dcc.Graph:
    return dcc.Graph(
        id=graph_id,
        figure=message_figure("Loading…"),
        config=GRAPH_CONFIG,
        style={"height": height},
    )


def layout(**params: Any) -> Component:
    view = from_params(params, ranges=(), default_range="1h", default_refresh="2s")
    return html.Div(
        [
            page_header(
                "Pipeline health",
                "Ingest → log → speed layer and archive → batch · "
                "stage rates are this API process's counters over "
                f"the {INGEST_WINDOW}",
                html.Span(id=ids.PIPELINE_UPDATED, className="muted"),
            ),
            html.Div(time_bar(PAGE, view, ranges=None), className="page-tools"),
            html.Div(id=ids.PIPELINE_STATUS),
            html.Div(
                id=ids.PIPELINE_TILES,
                className="tile-row tile-row--pipeline",
                children=html.Div("Loading…", className="empty-state"),
            ),
            html.Div(
                className="pipeline-grid",
                children=[
                    card(
                        "Throughput per stage",
                        _graph(ids.PIPELINE_THROUGHPUT, "280px"),
                        query_details(ids.PIPELINE_API),
                        subtitle="events per second between samples taken when the API is asked "
                        "(at least 5 s apart); the range is the API's sample history",
                    ),
                    card(
                        "Partitions",
                        html.Div(id=ids.PIPELINE_PARTITIONS, className="table-slot"),
                        subtitle="speed-layer progress per log partition; lag = now − newest event",
                    ),
                ],
            ),
            card(
                "Batch runs and replays",
                _graph(ids.PIPELINE_TIMELINE, "200px"),
                html.Div(id=ids.PIPELINE_JOBS, className="table-slot"),
                subtitle="when each job ran (wall clock) and the current batch horizon",
            ),
            dcc.Store(id=ids.PIPELINE_REFRESHED),
            live_interval(PAGE, interval_ms(view.refresh, REFRESH_MS)),
        ]
    )


def register_callbacks(app: Dash, api: ApiClient) -> None:
    @app.callback(
        Output(ids.PIPELINE_TILES, "children"),
        Output(ids.PIPELINE_THROUGHPUT, "figure"),
        Output(ids.PIPELINE_PARTITIONS, "children"),
        Output(ids.PIPELINE_TIMELINE, "figure"),
        Output(ids.PIPELINE_JOBS, "children"),
        Output(ids.PIPELINE_STATUS, "children"),
        Output(ids.PIPELINE_UPDATED, "children"),
        Output(ids.PIPELINE_REFRESHED, "data"),
        Output(ids.PIPELINE_API, "children"),
        Input(ids.live_interval(PAGE), "n_intervals"),
        Input(ids.timebar("tz", PAGE), "value"),
        Input(ids.APP_TZ_OFFSET, "data"),
        State(ids.PIPELINE_REFRESHED, "data"),
        running=[(Output(ids.live_interval(PAGE), "disabled"), True, False)],
    )
    def refresh(
        n: int | None, tz: str | None, offset: int | None, refreshed: float | None
    ) -> tuple[Any, ...]:
        if ctx.triggered_id == ids.live_interval(PAGE) and n and too_soon(refreshed, 2_000):
            raise PreventUpdate
        command = curl(origin(), "/v1/pipeline", [("limit", str(JOBS_SHOWN))])
        with display_zone(tz, offset):
            return (*_draw(api), command)


def _draw(api: ApiClient) -> tuple[Any, ...]:
    """Tiles, throughput, partitions, timeline, jobs, status, updated, refreshed."""
    now = datetime.now(UTC)
    try:
        state = api.pipeline(limit=JOBS_SHOWN)
    except ApiError as exc:
        message = f"{exc}. The numbers below are stale; retrying."
        return (
            *[no_update] * 5,
            banner(message),
            f"failed at {fmt_clock(now)} {zone_name()}",
            time.time(),
        )
    jobs = jobs_table(JobPage(jobs=state.jobs, total=state.jobs_total), now=now)
    return (
        stage_tiles(state),
        throughput_figure(state),
        partitions_table(state),
        timeline_figure(state, now),
        jobs,
        None,
        f"updated {fmt_clock(now)} {zone_name()}",
        time.time(),
    )
