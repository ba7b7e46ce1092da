"""The table of batch runs and replays (admin and pipeline pages), as plain HTML.

Why an HTML table over dash_table.DataTable: read-only rows need no editing or sorting
machinery, and plain rows carry ``data-job-id`` / ``data-state`` for tests and styling
(progress bars, state badges). On the admin page rows are clickable (``row_id`` gives
each a pattern-matching id) and the selected one opens the details panel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboard.api_models import Job, JobPage
from dashboard.components import badge
from dashboard.formatting import fmt_count, fmt_duration, fmt_when
from dashboard.job_view import generation_of, params_summary, progress_bar

COLUMNS = (
    "Job",
    "Kind",
    "Trigger",
    "State",
    "Progress",
    "Events in",
    "Rows out",
    "Horizon",
    "Generation",
    "Started",
    "Finished",
    "Duration",
)
NUMERIC = {"Events in", "Rows out", "Generation"}
RowId = Callable[[str, str], dict[str, Any]]  # (job id, "main" or "error") -> component id


def jobs_table(
    page: JobPage,
    *,
    now: datetime,
    highlight: str | None = None,
    selected: str | None = None,
    row_id: RowId | None = None,
    empty: str = "No jobs yet. Start a recompute or a replay from the admin page.",
) -> Component:
    """A job with an error gets a second row under it with the error's first line: the
    table stays narrow, and the full text is one click away (admin) or on hover."""
    if not page.jobs:
        return html.Div(empty, className="empty-state")
    head = html.Thead(
        html.Tr(
            [html.Th(column, className="num" if column in NUMERIC else None) for column in COLUMNS]
        )
    )
    rows = [row for job in page.jobs for row in _rows(job, now, highlight, selected, row_id)]
    table_class = "table table--jobs" + (" is-selectable" if row_id else "")
    return html.Div(
        html.Table([head, html.Tbody(rows)], className=table_class), className="table-wrap"
    )


def _rows(
    job: Job, now: datetime, highlight: str | None, selected: str | None, row_id: RowId | None
) -> list[html.Tr]:
    generation = generation_of(job)
    cells = [
        html.Td(html.Code(job.job_id[:8]), className="job-id", title=job.job_id),
        html.Td(
            [
                html.Span(job.kind, className=f"kind kind--{job.kind}"),
                html.Span(params_summary(job, now), className="kind-detail"),
            ]
        ),
        html.Td(job.trigger or "–"),
        html.Td(badge(job.state)),
        html.Td(progress_bar(job, now)),
        html.Td(fmt_count(job.rows_in), className="num"),
        html.Td(fmt_count(job.rows_out) if job.kind == "batch" else "–", className="num"),
        html.Td(fmt_when(job.horizon, now)),
        html.Td(str(generation) if generation is not None else "–", className="num"),
        html.Td(fmt_when(job.started_at, now)),
        html.Td(fmt_when(job.finished_at, now)),
        _duration_cell(job, now),
    ]
    classes = [
        name
        for name, on in (
            ("is-highlighted", job.job_id == highlight),
            ("is-selected", job.job_id == selected),
        )
        if on
    ]
    error = (job.error or "").strip()
    main: dict[str, Any] = {
        "data-job-id": job.job_id,
        "data-state": job.state,
        "data-kind": job.kind,
    }
    if row_id is not None:
        main.update(id=row_id(job.job_id, "main"), n_clicks=0, title="Show this job's details")
    rows = [
        html.Tr(
            cells, className=" ".join([*classes, "has-error"] if error else classes) or None, **main
        )
    ]
    if error:
        extra: dict[str, Any] = {"data-error-of": job.job_id}
        if row_id is not None:
            extra.update(id=row_id(job.job_id, "error"), n_clicks=0, title="Show the full error")
        else:
            extra["title"] = error
        more = html.Span("details ›", className="error-more") if row_id else None
        line = html.Div(
            [html.Span(error.splitlines()[0], className="error-line"), more],
            className="error-preview",
        )
        rows.append(
            html.Tr(
                html.Td(line, colSpan=len(COLUMNS)),
                className=" ".join(["error-row", f"is-{job.state}", *classes]),
                **extra,
            )
        )
    return rows


def _duration_cell(job: Job, now: datetime) -> html.Td:
    """Finished: how long it took. Running: how long so far, marked as such."""
    if job.finished_at is not None:
        return html.Td(fmt_duration(job.started_at, job.finished_at) or "–")
    if job.state == "running" and job.started_at is not None:
        return html.Td(html.Span(f"{fmt_duration(job.started_at, now)} so far", className="muted"))
    return html.Td("–")
