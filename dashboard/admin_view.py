"""The admin page's pieces: the action cards, the confirmation step, live progress of
active jobs, the served generation and a job's details.

Kept out of ``pages/`` (Dash executes every module there as a page); the page module
arranges these and wires the callbacks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dash import dcc, html
from dash.development.base_component import Component

from dashboard import ids
from dashboard.api_models import Generation, Job
from dashboard.components import attrs, badge, card
from dashboard.formatting import fmt_count, fmt_duration, fmt_iso, fmt_rate, fmt_seconds, fmt_when
from dashboard.job_view import (
    PHASES,
    elapsed_s,
    generation_of,
    params_summary,
    progress_bar,
    progress_of,
)
from stratum import replay_range
from stratum.job_progress import split_params

MODES = {"incremental": "Incremental", "full": "Full", "range": "Time range"}
TIME_HINT = "ISO-8601 (2026-11-21T10:00:00Z), epoch ms or now-6h; UTC"


def _field(label: str, control: Component, html_for: str) -> html.Div:
    return html.Div(
        [html.Label(label, htmlFor=html_for, className="field-label"), control], className="field"
    )


def _text_input(input_id: str, placeholder: str) -> dcc.Input:
    return dcc.Input(
        id=input_id,
        type="text",
        placeholder=placeholder,
        autoComplete="off",
        className="input",
        debounce=False,
    )


def token_card() -> html.Section:
    return card(
        "Admin token",
        html.Div(
            className="form-row",
            children=[
                dcc.Input(
                    id=ids.ADMIN_TOKEN_INPUT,
                    type="password",
                    placeholder="admin token",
                    autoComplete="off",
                    className="input",
                    persistence=True,
                    persistence_type="session",
                ),
                html.Span(
                    "Sent as “Authorization: Bearer …” with each admin call; only this "
                    "browser tab keeps it, until it closes. It is the API's "
                    "STRATUM_API__ADMIN_TOKEN.",
                    className="muted form-note",
                ),
            ],
        ),
        html.Div(id=ids.ADMIN_ALERT, className="admin-alert"),
        class_name="admin-token",
    )


def recompute_card() -> html.Section:
    return card(
        "Batch recompute",
        html.P(
            "Recomputes windows from the archive, writes them as a new version and only "
            "then moves the batch horizon; runs also start on the scheduler.",
            className="card-text",
        ),
        html.Div(
            className="form-row",
            children=[
                dcc.RadioItems(
                    id=ids.ADMIN_MODE,
                    value="incremental",
                    inline=True,
                    className="segmented",
                    options=[{"label": text, "value": key} for key, text in MODES.items()],
                ),
                html.Button(
                    "Recompute now",
                    id=ids.ADMIN_RECOMPUTE,
                    n_clicks=0,
                    className="button button--primary",
                ),
            ],
        ),
        html.Div(
            id=ids.ADMIN_RANGE,
            className="form-row range-row",
            hidden=True,
            children=[
                _field("From (UTC)", _text_input(ids.ADMIN_START, "now-6h"), ids.ADMIN_START),
                _field("To (UTC)", _text_input(ids.ADMIN_END, "now"), ids.ADMIN_END),
            ],
        ),
        html.P(id=ids.ADMIN_MODE_NOTE, className="muted form-note"),
        class_name="admin-action",
    )


def mode_note(mode: str | None) -> str:
    return {
        "full": "Full: every event hour in the archive.",
        "range": f"Time range: every event hour in it. Times: {TIME_HINT}.",
    }.get(mode or "", "Incremental: only event hours changed since the last run.")


def replay_card() -> html.Section:
    return card(
        "Kappa replay",
        html.P(
            "Rebuilds the speed views into a new generation with the speed layer's own "
            "code, from the archive and then the log; readers switch once it has caught "
            "up. Use it after changing a metric definition.",
            className="card-text",
        ),
        html.Div(
            className="form-row",
            children=[
                html.Button(
                    "Replay from the start",
                    id=ids.ADMIN_REPLAY_ALL,
                    n_clicks=0,
                    className="button button--primary",
                ),
            ],
        ),
        html.Div(
            className="form-row replay-from",
            children=[
                _text_input(ids.ADMIN_REPLAY_FROM, "2026-11-21T10:00:00Z or now-6h"),
                html.Button(
                    "Replay from time",
                    id=ids.ADMIN_REPLAY_FROM_BUTTON,
                    n_clicks=0,
                    className="button button--secondary",
                ),
            ],
        ),
        html.P(f"From time: {TIME_HINT}.", className="muted form-note"),
        class_name="admin-action",
    )


def confirm_panel() -> html.Div:
    """The inline confirmation step: hidden until an action waits for a yes or no."""
    return html.Div(
        id=ids.ADMIN_CONFIRM,
        className="confirm",
        hidden=True,
        role="alertdialog",
        children=[
            html.Div(id=ids.ADMIN_CONFIRM_TEXT, className="confirm-text"),
            html.Div(
                className="confirm-buttons",
                children=[
                    html.Button(
                        "Start",
                        id=ids.ADMIN_CONFIRM_YES,
                        n_clicks=0,
                        className="button button--primary",
                    ),
                    html.Button(
                        "Cancel",
                        id=ids.ADMIN_CONFIRM_NO,
                        n_clicks=0,
                        className="button button--ghost",
                    ),
                ],
            ),
        ],
    )


def generation_view(generation: Generation | None, building: int | None) -> list[Component]:
    """ "Generation currently served: N", plus the hand-off or replay under way."""
    if generation is None:
        return [
            html.Span("Generation currently served: ", className="generation-label"),
            html.Span("–", className="generation-value", **attrs({"data-generation": ""})),
        ]
    parts: list[Component] = [
        html.Span("Generation currently served: ", className="generation-label"),
        html.Span(
            str(generation.live),
            className="generation-value",
            **attrs({"data-generation": str(generation.live)}),
        ),
    ]
    if generation.handoff is not None:
        parts.append(
            html.Span(
                f"hand-off to {generation.handoff} in progress",
                className="generation-note is-handoff",
            )
        )
    elif building is not None:
        parts.append(
            html.Span(f"replay building generation {building}", className="generation-note")
        )
    return parts


def active_jobs(jobs: Sequence[Job], now: datetime) -> Component:
    if not jobs:
        return html.Div(
            "No job is running. Start one above; its progress shows here.",
            className="empty-state empty-state--slim",
        )
    return html.Div([_active_job(job, now) for job in jobs], className="active-jobs")


def _active_job(job: Job, now: datetime) -> html.Div:
    progress = progress_of(job, now)
    stats: list[Component] = [
        _stat("phase", PHASES.get(progress.phase or "", progress.label)),
        _stat("events processed" if job.kind == "replay" else "events in", fmt_count(job.rows_in)),
        _stat("rate", fmt_rate(progress.rate_per_s)),
        _stat("ETA", fmt_seconds(progress.eta_s) if progress.eta_s is not None else "–"),
    ]
    generation = generation_of(job)
    if generation is not None:
        stats.append(_stat("building generation", str(generation)))
    head = html.Div(
        className="active-job-head",
        children=[
            html.Span(job.kind, className=f"kind kind--{job.kind}"),
            html.Code(job.job_id, className="job-id"),
            badge(job.state),
            html.Span(
                f"{job.trigger or '–'} · {params_summary(job, now)} · {_since(job, now)}",
                className="muted",
            ),
            _cancel_control(job),
        ],
    )
    data: dict[str, Any] = {
        "data-job-id": job.job_id,
        "data-state": job.state,
        "data-phase": progress.phase or "",
    }
    return html.Div(
        [head, progress_bar(job, now, wide=True), html.Div(stats, className="stats")],
        className="active-job",
        **data,
    )


def _since(job: Job, now: datetime) -> str:
    elapsed = elapsed_s(job, now)
    if elapsed is None:
        return f"created {fmt_when(job.created_at, now)}, waiting to start"
    return f"started {fmt_when(job.started_at, now)} ({fmt_seconds(elapsed)} ago)"


def _cancel_control(job: Job) -> Component:
    if job.kind == "batch" and job.state == "running":
        return html.Span(
            "a running recompute cannot be cancelled; it changes nothing served until it completes",
            className="muted cancel-note",
        )
    return html.Button(
        "Cancel",
        id=ids.job_id(ids.ADMIN_CANCEL, job.job_id),
        n_clicks=0,
        className="button button--danger",
    )


def _stat(label: str, value: str) -> html.Span:
    return html.Span(
        [html.Span(label, className="stat-label"), html.Span(value, className="stat-value")],
        className="stat",
    )


def job_details(job: Job | None, now: datetime) -> Component:
    if job is None:
        return html.Div(
            "Select a job in the table to see its parameters and, for a failed "
            "job, its full error.",
            className="muted details-hint",
        )
    progress = progress_of(job, now)
    generation = generation_of(job)
    replay = job.kind == "replay"
    rows: list[tuple[str, Component | str]] = [  # pairs: a left and a right column
        ("Job", html.Code(job.job_id)),
        ("State", badge(job.state)),
        ("Kind", f"{job.kind} ({params_summary(job)})"),
        ("Trigger", job.trigger or "–"),
        ("Progress", f"{progress.label} ({job.units_done or 0} of {job.units_total or 0} units)"),
        ("Phase", PHASES.get(progress.phase or "", progress.label) if replay else progress.label),
        (
            "Generation" if replay else "Horizon",
            str(generation) if generation is not None else fmt_iso(job.horizon),
        ),
        ("Events in", fmt_count(job.rows_in)),
        ("Rows out", "–" if replay else fmt_count(job.rows_out)),
        ("Created", fmt_iso(job.created_at)),
        ("Started", fmt_iso(job.started_at)),
        ("Finished", fmt_iso(job.finished_at)),
        ("Duration", fmt_duration(job.started_at, job.finished_at) or "–"),
    ]
    if replay:
        rows.append(
            ("Range", html.Span(replay_range.describe(job.params or {}), className="replay-range"))
        )
    asked, _state = split_params(job.params or {})  # phase, generation: shown above
    params = html.Div(
        [
            html.Span("Parameters ", className="stat-label"),
            html.Code(json.dumps(asked, sort_keys=True)),
        ],
        className="details-params",
    )
    grid = html.Dl(
        [part for label, value in rows for part in (html.Dt(label), html.Dd(value))],
        className="details-grid",
    )
    error = (
        html.Div(
            [
                html.H3("Error", className="details-title"),
                html.Pre(job.error, className="error-text"),
            ]
        )
        if job.error
        else html.P("No error.", className="muted")
    )
    head = html.Div(
        [
            html.H3(f"Job {job.job_id[:8]}", className="details-title"),
            html.Span("click its row again to close", className="muted"),
        ],
        className="details-head",
    )
    return html.Div(
        [head, grid, params, error], className="details", **attrs({"data-job-id": job.job_id})
    )
