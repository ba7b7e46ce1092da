"""The admin page's table of batch runs, as plain HTML.

Why an HTML table over dash_table.DataTable: ten read-only columns need no editing,
sorting or paging machinery, and plain rows carry ``data-job-id`` for tests and
styling (progress bars, state badges) with a few CSS classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboard.api_models import Job, JobPage
from dashboard.components import badge
from dashboard.formatting import fmt_count, fmt_duration, fmt_when

COLUMNS = ("Job", "Trigger", "State", "Progress", "Rows in", "Rows out", "Horizon",
           "Started", "Finished", "Error")
NUMERIC = {"Rows in", "Rows out"}


def jobs_table(page: JobPage, *, now: datetime, highlight: str | None = None) -> Component:
    if not page.jobs:
        return html.Div("No batch runs yet. Press “Recompute now” to start one.",
                        className="empty-state")
    head = html.Thead(html.Tr([
        html.Th(column, className="num" if column in NUMERIC else None) for column in COLUMNS
    ]))
    body = html.Tbody([_row(job, now, highlight) for job in page.jobs])
    return html.Div(html.Table([head, body], className="table"), className="table-wrap")


def _row(job: Job, now: datetime, highlight: str | None) -> html.Tr:
    error = job.error or ""
    finished = fmt_when(job.finished_at, now)
    duration = fmt_duration(job.started_at, job.finished_at)
    cells = [
        html.Td(html.Code(job.job_id), className="job-id"),
        html.Td(job.trigger or "–"),
        html.Td(badge(job.state)),
        html.Td(_progress(job)),
        html.Td(fmt_count(job.rows_in), className="num"),
        html.Td(fmt_count(job.rows_out), className="num"),
        html.Td(fmt_when(job.horizon, now)),
        html.Td(fmt_when(job.started_at, now)),
        html.Td([finished, html.Span(f" ({duration})", className="muted") if duration else None]),
        html.Td(error[:80] + ("…" if len(error) > 80 else ""), title=error or None,
                className="error-cell" if error else None),
    ]
    class_name = "is-highlighted" if job.job_id == highlight else None
    data: dict[str, Any] = {"data-job-id": job.job_id, "data-state": job.state}
    return html.Tr(cells, className=class_name, **data)


def _progress(job: Job) -> Component:
    done, total = job.units_done, job.units_total
    if not total:
        return html.Span(fmt_count(done) if done else "–", className="muted")
    done = min(done or 0, total)
    percent = 100 * done / total
    return html.Div(
        className="progress",
        title=f"{done} of {total} units",
        children=[
            html.Div(html.Div(className="progress-fill", style={"width": f"{percent:.0f}%"}),
                     className="progress-track"),
            html.Span(f"{done}/{total}", className="progress-text"),
        ],
    )
