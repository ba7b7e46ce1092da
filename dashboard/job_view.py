"""How one job reads on screen: progress (with a replay's phase), rate, ETA, the
generation a replay builds and its parameters in a few words.

Why one module: the replay runner reports progress per phase (``archive``: archived
ranges done of total; ``log``: 1 of 1 while it follows the log until it has caught up;
``switched`` once readers moved to the new generation), so a bare units_done/units_total
would show a replay at 100 % long before it is done. Reading it once here keeps the
job table, the live progress bars and the tests in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dash import html
from dash.development.base_component import Component

from dashboard.api_models import Job
from dashboard.formatting import fmt_count, utc
from stratum.job_progress import progress_label

ACTIVE_STATES = ("queued", "running")
PHASES = {
    "archive": "reading the archive",
    "log": "following the log until caught up, then hand-off",
    "switched": "readers switched to the new generation",
}


@dataclass(frozen=True, slots=True)
class JobProgress:
    """``percent`` is None while a job is under way with no measurable fraction."""

    percent: float | None
    label: str
    phase: str | None
    rate_per_s: float | None
    eta_s: float | None


def is_active(job: Job) -> bool:
    return job.state in ACTIVE_STATES


def phase_of(job: Job) -> str | None:
    phase = (job.params or {}).get("phase")
    return str(phase) if job.kind == "replay" and phase else None


def generation_of(job: Job) -> int | None:
    """The generation a replay builds (or built); None for batch runs."""
    value = (job.params or {}).get("generation")
    return value if job.kind == "replay" and isinstance(value, int) else None


def elapsed_s(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at or now
    return max(0.0, (utc(end) - utc(job.started_at)).total_seconds())


def progress_of(job: Job, now: datetime) -> JobProgress:
    done, total = job.units_done or 0, job.units_total or 0
    phase = phase_of(job)
    elapsed = elapsed_s(job, now)
    rate = job.rows_in / elapsed if job.rows_in and elapsed else None
    percent: float | None
    if job.state == "succeeded":
        percent, label = 100.0, "switched" if phase else f"{done}/{total}" if total else "done"
    elif job.state == "queued":
        percent, label = 0.0, "queued"
    elif phase == "log" and job.state == "running":
        percent, label = None, "catching up on the log"
    elif total:
        percent = 100 * min(done, total) / total
        label = (
            f"archive {done}/{total}"
            if phase == "archive"
            else progress_label(job.kind, job.state, done, total, phase)
        )
    else:
        percent, label = None, "starting" if job.state == "running" else "–"
    eta = None
    if job.state == "running" and percent and 0 < percent < 100 and elapsed:
        eta = elapsed * (100 - percent) / percent
    return JobProgress(percent, label, phase, rate, eta)


def params_summary(job: Job, now: datetime | None = None) -> str:
    """ "full", "full, 08:00 → 10:00", "whole history", "from 11-20 10:00" (UTC; the date
    only when it is not ``now``'s day, or always without ``now``). A replay says from where
    it rebuilds (the asked time aligned down) and that it keeps the older windows."""
    params = job.params or {}
    if job.kind == "replay":
        start_ms = params.get("rebuild_from_ms")
        if isinstance(start_ms, int):
            return f"rebuilds from {_ms_text(start_ms, now)}, keeps older windows"
        from_ms = params.get("from_ms")
        return f"from {_ms_text(from_ms, now)}" if isinstance(from_ms, int) else "whole history"
    mode = str(params.get("mode") or "incremental")
    start_ms, end_ms = params.get("start_ms"), params.get("end_ms")
    if isinstance(start_ms, int) or isinstance(end_ms, int):
        start = _ms_text(start_ms, now) if isinstance(start_ms, int) else "…"
        end = _ms_text(end_ms, now) if isinstance(end_ms, int) else "now"
        return f"{mode}, {start} → {end}"
    return mode


def _ms_text(ms: int, now: datetime | None) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    if now is not None and moment.date() == utc(now).date():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M" if now is None else "%m-%d %H:%M")


def progress_bar(job: Job, now: datetime, *, wide: bool = False) -> Component:
    """A bar with ``data-percent`` (empty while not measurable) for tests and styling."""
    progress = progress_of(job, now)
    if progress.percent is None and progress.label in ("–", ""):
        return html.Span(fmt_count(job.units_done) if job.units_done else "–", className="muted")
    classes = ["progress"]
    if wide:
        classes.append("progress--wide")
    if progress.percent is None:
        classes.append("is-indeterminate")
    classes.append(f"progress--{job.state}")
    width = 100.0 if progress.percent is None else progress.percent
    text = progress.label
    if progress.percent is not None and progress.label != "queued":
        text = f"{progress.percent:.0f} % · {progress.label}"
    data: dict[str, Any] = {
        "data-percent": "" if progress.percent is None else f"{progress.percent:.0f}",
    }
    return html.Div(
        className=" ".join(classes),
        title=f"{job.units_done or 0} of {job.units_total or 0} units",
        children=[
            html.Div(
                html.Div(className="progress-fill", style={"width": f"{width:.1f}%"}),
                className="progress-track",
            ),
            html.Span(text, className="progress-text"),
        ],
        **data,
    )
