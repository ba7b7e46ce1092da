"""Admin: start a batch recompute and watch batch runs progress.

The admin token is typed into the page and sent as ``Authorization: Bearer`` with
each admin call; the dashboard stores no secret of its own. In development the field
is prefilled with the configured token, so a local run needs no copy and paste.

Dash imports this module itself (``use_pages``); ``create_dash`` then calls
:func:`register_callbacks` with the app's API client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_client import ApiClient
from dashboard.components import banner, card, page_header
from dashboard.errors import ApiConflictError, ApiError
from dashboard.formatting import fmt_clock
from dashboard.jobs_table import jobs_table

dash.register_page(__name__, path="/admin", name="Admin", title="Stratum · Admin", order=3)  # type: ignore[no-untyped-call]

REFRESH_MS = 2_000
JOBS_LIMIT = 20


def layout(**_query: str) -> Component:
    recompute = card(
        "Batch recompute",
        html.P(
            "Recomputes, from the archive, every window that changed since the last run, "
            "then moves the batch horizon forward. Runs also start on the scheduler.",
            className="card-text",
        ),
        html.Div(className="form-row", children=[
            html.Label("Admin token", htmlFor=ids.ADMIN_TOKEN_INPUT, className="field-label"),
            dcc.Input(id=ids.ADMIN_TOKEN_INPUT, type="password", placeholder="admin token",
                      autoComplete="off", className="input"),
            html.Button("Recompute now", id=ids.ADMIN_RECOMPUTE, n_clicks=0,
                        className="button button--primary"),
        ]),
        html.Div(id=ids.ADMIN_STATUS, className="action-status"),
        class_name="admin-action",
    )
    runs = card(
        "Batch runs",
        html.Div(id=ids.ADMIN_JOBS_TABLE, className="table-slot",
                 children=html.Div("Loading…", className="empty-state")),
        subtitle="Newest first · refreshes every 2 s · times in UTC",
        aside=html.Span(id=ids.ADMIN_JOBS_UPDATED, className="muted"),
    )
    return html.Div([
        page_header("Admin", "Batch recompute and the history of batch runs"),
        html.Div([recompute, runs], className="admin-grid"),
        dcc.Store(id=ids.ADMIN_LAST_JOB),
        dcc.Interval(id=ids.ADMIN_JOBS_INTERVAL, interval=REFRESH_MS),
    ])


def _job_message(prefix: str, job_id: str | None) -> list[Component | str]:
    """The job id sits in its own element (``.job-id``) so people and tests can copy it."""
    return [prefix, html.Code(job_id or "unknown job", className="job-id")]


def register_callbacks(app: Dash, api: ApiClient, *, token_prefill: str | None) -> None:
    if token_prefill:
        @app.callback(
            Output(ids.ADMIN_TOKEN_INPUT, "value"),
            Input(ids.ADMIN_TOKEN_INPUT, "id"),
            State(ids.ADMIN_TOKEN_INPUT, "value"),
        )
        def prefill_token(_id: str, current: str | None) -> str:
            """Development only: fill the field once, never over what was typed."""
            if current:
                raise PreventUpdate
            return token_prefill

    @app.callback(
        Output(ids.ADMIN_STATUS, "children"),
        Output(ids.ADMIN_LAST_JOB, "data"),
        Input(ids.ADMIN_RECOMPUTE, "n_clicks"),
        State(ids.ADMIN_TOKEN_INPUT, "value"),
        prevent_initial_call=True,
        running=[(Output(ids.ADMIN_RECOMPUTE, "disabled"), True, False)],
    )
    def recompute(_clicks: int, token: str | None) -> tuple[Any, Any]:
        if not token:
            return banner("Enter the admin token first.", "warn"), no_update
        try:
            job_id = api.start_batch(token)
        except ApiConflictError as exc:
            message = _job_message("Batch recompute already running: ", exc.job_id)
            return banner(message, "warn"), exc.job_id or no_update
        except ApiError as exc:
            return banner(str(exc)), no_update
        return banner(_job_message("Started batch job ", job_id), "ok"), job_id

    @app.callback(
        Output(ids.ADMIN_JOBS_TABLE, "children"),
        Output(ids.ADMIN_JOBS_UPDATED, "children"),
        Input(ids.ADMIN_JOBS_INTERVAL, "n_intervals"),
        Input(ids.ADMIN_LAST_JOB, "data"),
        State(ids.ADMIN_TOKEN_INPUT, "value"),
        running=[(Output(ids.ADMIN_JOBS_INTERVAL, "disabled"), True, False)],
    )
    def list_jobs(_n: int | None, last_job: str | None, token: str | None) -> tuple[Any, str]:
        now = datetime.now(UTC)
        if not token:
            hint = html.Div("Enter the admin token to list batch runs.", className="empty-state")
            return hint, ""
        try:
            page = api.batch_jobs(token, limit=JOBS_LIMIT)
        except ApiError as exc:
            return banner(str(exc)), f"failed at {fmt_clock(now)} UTC"
        shown = f"{len(page.jobs)} of {page.total}" if page.total > len(page.jobs) else ""
        updated = f"updated {fmt_clock(now)} UTC"
        return jobs_table(page, now=now, highlight=last_job), " · ".join(
            part for part in (shown, updated) if part
        )
