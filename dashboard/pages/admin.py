"""Admin: batch recompute (incremental / full / time range) and Kappa replay (from the
start / from a time), each confirmed before it is sent; live progress of active jobs with
a Cancel button; the paginated history of both kinds with a job's full details; and the
speed-view generation readers use.

The admin token is typed into the page and sent as ``Authorization: Bearer`` with each
admin call; it lives only in the browser's page state for the session. The dashboard
never sends a configured token to a browser (not even the development default).

One refresh callback a second (progress bars), pausable and never overlapping (see
:mod:`dashboard.live`). A part whose data did not change is not sent again, so a row
being clicked or text being selected is not swept away by the next tick.

Dash imports this module itself (``use_pages``); ``create_dash`` then calls
:func:`register_callbacks` with the app's API client.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import admin_actions as actions
from dashboard import ids
from dashboard.admin_state import fetch_snapshot, view_key
from dashboard.admin_view import (
    active_jobs,
    confirm_panel,
    generation_view,
    job_details,
    mode_note,
    recompute_card,
    replay_card,
    token_card,
)
from dashboard.api_client import ApiClient
from dashboard.components import banner, card, page_header
from dashboard.errors import ApiConflictError, ApiError
from dashboard.formatting import fmt_clock
from dashboard.jobs_table import jobs_table
from dashboard.live import live_interval, too_soon
from dashboard.metric_editor import editor_card, register_editor_callbacks

dash.register_page(__name__, path="/admin", name="Admin", title="Stratum · Admin", order=4)

PAGE = "admin"
REFRESH_MS = 1_000
JOBS_LIMIT = 10
KINDS = {"all": "All", "batch": "Batch", "replay": "Replay"}
# The job of the pattern-matching component really clicked (n_clicks > 0), or null.
CLICKED_JOB_JS = """
    const hit = (dash_clientside.callback_context.triggered || []).find(t => t.value);
    const job = hit ? JSON.parse(hit.prop_id.slice(0, hit.prop_id.lastIndexOf("."))).job
                    : null;"""


def layout(**_query: str) -> Component:
    history = card(
        "Job history",
        html.Div(
            id=ids.ADMIN_JOBS_TABLE,
            className="table-slot",
            children=html.Div("Loading…", className="empty-state"),
        ),
        html.Div(
            className="pager",
            children=[
                html.Button(
                    "‹ Newer",
                    id=ids.ADMIN_PAGE_PREV,
                    n_clicks=0,
                    disabled=True,
                    className="button button--ghost",
                ),
                html.Span(id=ids.ADMIN_PAGE_INFO, className="muted"),
                html.Button(
                    "Older ›",
                    id=ids.ADMIN_PAGE_NEXT,
                    n_clicks=0,
                    disabled=True,
                    className="button button--ghost",
                ),
            ],
        ),
        html.Div(id=ids.ADMIN_DETAILS, className="details-slot"),
        subtitle="Batch runs and replays, newest first · click a row for its details and "
        "full error · times in UTC",
        aside=html.Div(
            className="card-aside",
            children=[
                dcc.RadioItems(
                    id=ids.ADMIN_KIND_FILTER,
                    value="all",
                    inline=True,
                    className="segmented segmented--small",
                    options=[{"label": text, "value": key} for key, text in KINDS.items()],
                ),
                html.Span(id=ids.ADMIN_JOBS_UPDATED, className="muted"),
            ],
        ),
    )
    active = card(
        "Active jobs",
        html.Div(id=ids.ADMIN_ACTIVE, className="active-slot"),
        subtitle="Queued and running jobs · refreshes every second",
    )
    return html.Div(
        className="admin-grid",
        children=[
            page_header(
                "Admin",
                "Batch recompute, Kappa replay and the history of both",
                html.Div(
                    generation_view(None, None), id=ids.ADMIN_GENERATION, className="generation"
                ),
            ),
            token_card(),
            html.Div([recompute_card(), replay_card()], className="admin-actions"),
            confirm_panel(),
            editor_card(),
            html.Div(id=ids.ADMIN_STATUS, className="action-status"),
            active,
            history,
            dcc.Store(id=ids.ADMIN_PENDING),
            dcc.Store(id=ids.ADMIN_LAST_JOB),
            dcc.Store(id=ids.ADMIN_OFFSET, data=0),
            dcc.Store(id=ids.ADMIN_SELECTED),
            dcc.Store(id=ids.ADMIN_CANCEL_REQUEST),
            dcc.Store(id=ids.ADMIN_REFRESHED),
            dcc.Store(id=ids.ADMIN_VIEW_KEYS, data={}),
            live_interval(PAGE, REFRESH_MS),
        ],
    )


def register_callbacks(app: Dash, api: ApiClient) -> None:
    register_editor_callbacks(app, api)

    @app.callback(
        Output(ids.ADMIN_RANGE, "hidden"),
        Output(ids.ADMIN_MODE_NOTE, "children"),
        Input(ids.ADMIN_MODE, "value"),
    )
    def show_mode(mode: str | None) -> tuple[bool, str]:
        return mode != "range", mode_note(mode)

    @app.callback(
        Output(ids.ADMIN_CONFIRM, "hidden"),
        Output(ids.ADMIN_CONFIRM_TEXT, "children"),
        Output(ids.ADMIN_CONFIRM_YES, "children"),
        Output(ids.ADMIN_PENDING, "data"),
        Output(ids.ADMIN_STATUS, "children"),
        Output(ids.ADMIN_LAST_JOB, "data"),
        Input(ids.ADMIN_RECOMPUTE, "n_clicks"),
        Input(ids.ADMIN_REPLAY_ALL, "n_clicks"),
        Input(ids.ADMIN_REPLAY_FROM_BUTTON, "n_clicks"),
        Input(ids.ADMIN_CONFIRM_YES, "n_clicks"),
        Input(ids.ADMIN_CONFIRM_NO, "n_clicks"),
        Input(ids.ADMIN_CANCEL_REQUEST, "data"),
        State(ids.ADMIN_PENDING, "data"),
        State(ids.ADMIN_TOKEN_INPUT, "value"),
        State(ids.ADMIN_MODE, "value"),
        State(ids.ADMIN_START, "value"),
        State(ids.ADMIN_END, "value"),
        State(ids.ADMIN_REPLAY_FROM, "value"),
        prevent_initial_call=True,
        running=[(Output(ids.ADMIN_CONFIRM_YES, "disabled"), True, False)],
    )
    def act(
        _recompute: int,
        _replay_all: int,
        _replay_from: int,
        _yes: int,
        _no: int,
        cancel: dict[str, Any] | None,
        pending: dict[str, Any] | None,
        token: str | None,
        mode: str | None,
        start: str | None,
        end: str | None,
        from_time: str | None,
    ) -> tuple[Any, ...]:
        """Ask, confirm or drop, send; and cancel an active job. One callback, because
        all of these write the confirmation step and the status line."""
        trigger = ctx.triggered_id
        closed = (True, None, no_update, None)
        if trigger == ids.ADMIN_CONFIRM_NO:
            return (*closed, banner("Nothing was sent.", "info"), no_update)
        if trigger == ids.ADMIN_CANCEL_REQUEST:
            if not cancel:
                raise PreventUpdate
            if not token:
                return (*[no_update] * 4, banner(actions.AUTH_HINT, "warn"), no_update)
            return (*[no_update] * 4, actions.cancel(api, token, str(cancel["job"])), no_update)
        if trigger == ids.ADMIN_CONFIRM_YES:
            if not pending:
                raise PreventUpdate
            action = actions.Action.model_validate(pending)
            if not token:
                return (*closed, banner(actions.AUTH_HINT, "warn"), no_update)
            try:
                job_id = actions.send(api, token, action)
            except ApiConflictError as exc:
                return (
                    *closed,
                    actions.start_failed_banner(exc, action.noun),
                    exc.job_id or no_update,
                )
            except ApiError as exc:
                return (*closed, actions.start_failed_banner(exc, action.noun), no_update)
            return (*closed, actions.started_banner(action, job_id), job_id)
        if trigger == ids.ADMIN_RECOMPUTE:
            asked = actions.recompute_action(mode, start, end)
        else:
            asked = actions.replay_action(from_time, from_start=trigger == ids.ADMIN_REPLAY_ALL)
        if isinstance(asked, str):
            return (*closed, banner(asked, "warn"), no_update)
        if not token:
            return (
                *closed,
                banner(f"Enter the admin token first. {actions.AUTH_HINT}", "warn"),
                no_update,
            )
        return (
            False,
            actions.describe(asked),
            actions.confirm_label(asked),
            asked.model_dump(),
            None,
            no_update,
        )

    @app.callback(
        Output(ids.ADMIN_OFFSET, "data"),
        Input(ids.ADMIN_PAGE_PREV, "n_clicks"),
        Input(ids.ADMIN_PAGE_NEXT, "n_clicks"),
        Input(ids.ADMIN_KIND_FILTER, "value"),
        Input(ids.ADMIN_LAST_JOB, "data"),
        State(ids.ADMIN_OFFSET, "data"),
        prevent_initial_call=True,
    )
    def turn_page(_prev: int, _next: int, _kind: str, _last: str | None, offset: int | None) -> int:
        """Newer / older; a new filter or a job just started goes back to the newest."""
        if ctx.triggered_id == ids.ADMIN_PAGE_PREV:
            return max(0, (offset or 0) - JOBS_LIMIT)
        if ctx.triggered_id == ids.ADMIN_PAGE_NEXT:
            return (offset or 0) + JOBS_LIMIT
        return 0

    # Clientside: the table and the Cancel buttons are re-rendered every second while a
    # job runs, and Dash fires pattern-matching callbacks for every re-render; in the
    # browser those calls cost nothing, and only a real click gets through.
    app.clientside_callback(
        "function(clicks, selected) {"
        + CLICKED_JOB_JS
        + """
            if (job === null) { return dash_clientside.no_update; }
            return job === selected ? null : job;  // a second click closes the details
        }""",
        Output(ids.ADMIN_SELECTED, "data"),
        Input(ids.job_row(ALL, ALL), "n_clicks"),
        State(ids.ADMIN_SELECTED, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        "function(clicks) {"
        + CLICKED_JOB_JS
        + """
            return job === null ? dash_clientside.no_update : {job: job, at: Date.now()};
        }""",
        Output(ids.ADMIN_CANCEL_REQUEST, "data"),
        Input(ids.job_id(ids.ADMIN_CANCEL, ALL), "n_clicks"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.ADMIN_ALERT, "children"),
        Output(ids.ADMIN_GENERATION, "children"),
        Output(ids.ADMIN_ACTIVE, "children"),
        Output(ids.ADMIN_JOBS_TABLE, "children"),
        Output(ids.ADMIN_DETAILS, "children"),
        Output(ids.ADMIN_PAGE_INFO, "children"),
        Output(ids.ADMIN_PAGE_PREV, "disabled"),
        Output(ids.ADMIN_PAGE_NEXT, "disabled"),
        Output(ids.ADMIN_JOBS_UPDATED, "children"),
        Output(ids.ADMIN_REFRESHED, "data"),
        Output(ids.ADMIN_VIEW_KEYS, "data"),
        Input(ids.live_interval(PAGE), "n_intervals"),
        Input(ids.ADMIN_OFFSET, "data"),
        Input(ids.ADMIN_KIND_FILTER, "value"),
        Input(ids.ADMIN_SELECTED, "data"),
        Input(ids.ADMIN_LAST_JOB, "data"),
        State(ids.ADMIN_TOKEN_INPUT, "value"),
        State(ids.ADMIN_REFRESHED, "data"),
        State(ids.ADMIN_VIEW_KEYS, "data"),
        running=[(Output(ids.live_interval(PAGE), "disabled"), True, False)],
    )
    def refresh(
        n: int | None,
        offset: int | None,
        kind: str | None,
        selected: str | None,
        last_job: str | None,
        token: str | None,
        refreshed: float | None,
        keys: dict[str, str] | None,
    ) -> tuple[Any, ...]:
        ticked = isinstance(ctx.triggered_id, dict)
        if ticked and n and too_soon(refreshed, REFRESH_MS):
            raise PreventUpdate
        now = datetime.now(UTC)
        if not token:
            hint = "Enter the admin token above to see jobs and the served generation."
            return (
                banner(hint, "info"),
                generation_view(None, None),
                active_jobs([], now),
                html.Div("Enter the admin token to list jobs.", className="empty-state"),
                job_details(None, now),
                "",
                True,
                True,
                "",
                time.time(),
                {},
            )
        try:
            shot = fetch_snapshot(
                api,
                token,
                kind=None if kind in (None, "all") else kind,
                offset=offset or 0,
                limit=JOBS_LIMIT,
                selected=selected,
            )
        except ApiError as exc:
            return (
                actions.refresh_error_banner(exc),
                *[no_update] * 7,
                f"failed at {fmt_clock(now)} UTC",
                time.time(),
                no_update,
            )
        building = shot.building
        parts: dict[str, tuple[str, Callable[[], Any]]] = {
            "generation": (
                view_key(shot.generation, building),
                lambda: generation_view(shot.generation, building),
            ),
            # Elapsed time and ETA move every second while a job is active.
            "active": (
                view_key(shot.active, int(now.timestamp()) if shot.active else 0),
                lambda: active_jobs(shot.active, now),
            ),
            "table": (
                view_key(shot.page, selected, last_job, now.date().isoformat()),
                lambda: jobs_table(
                    shot.page, now=now, highlight=last_job, selected=selected, row_id=ids.job_row
                ),
            ),
            "details": (
                view_key(shot.selected, now.date().isoformat()),
                lambda: job_details(shot.selected, now),
            ),
        }
        old = keys or {}
        shown = [
            render() if old.get(name) != key else no_update for name, (key, render) in parts.items()
        ]
        first, total = (offset or 0) + 1, shot.page.total
        last = (offset or 0) + len(shot.page.jobs)
        info = f"{first}–{last} of {total}" if shot.page.jobs else f"0 of {total}"
        return (
            None,
            *shown,
            info,
            (offset or 0) == 0,
            last >= total,
            f"updated {fmt_clock(now)} UTC",
            time.time(),
            {name: key for name, (key, _) in parts.items()},
        )
