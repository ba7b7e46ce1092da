"""What the admin page's buttons do, without Dash: build the action the operator is asked
to confirm, say it in words, send it, and turn every API answer into a message that says
what happened and what to do next.

Why apart from the page: these are the rules worth unit-testing (which fields a range
needs, what a 401 or a 409 says), and the page module stays layout plus wiring.
"""

from __future__ import annotations

from typing import Literal

from dash import html
from dash.development.base_component import Component
from pydantic import BaseModel, ConfigDict

from dashboard.api_client import ApiClient
from dashboard.components import banner
from dashboard.errors import ApiConflictError, ApiError, ApiUnavailableError
from stratum.timeparse import JobTimeError, batch_range_ms, replay_from_ms

TRIGGER = "admin"
TIMES = "Times: ISO-8601 such as 2026-11-21T10:00:00Z (UTC), epoch ms, or now-6h."
AUTH_HINT = (
    "Enter the admin token in the “Admin token” field above: it is the API's "
    "STRATUM_API__ADMIN_TOKEN setting, and the page sends it as "
    "“Authorization: Bearer <token>” with each admin call."
)


class Action(BaseModel):
    """A request waiting for confirmation; kept in a dcc.Store as its dict."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["batch", "replay"]
    mode: Literal["incremental", "full"] = "incremental"
    start: str | None = None
    end: str | None = None
    from_time: str | None = None

    @property
    def noun(self) -> str:
        return "batch recompute" if self.kind == "batch" else "replay"


def recompute_action(mode: str | None, start: str | None, end: str | None) -> Action | str:
    """The recompute to confirm, or what is missing from the form."""
    if mode == "range":
        start, end = (start or "").strip() or None, (end or "").strip() or None
        if not start and not end:
            return "Give the range a start, an end or both (ISO-8601, epoch ms or now-6h)."
        try:  # the API's own checks, before the confirm step rather than after it
            batch_range_ms(start, end)
        except JobTimeError as exc:
            return f"{_sentence(exc)} {TIMES}"
        return Action(kind="batch", mode="full", start=start, end=end)
    return Action(kind="batch", mode="full" if mode == "full" else "incremental")


def replay_action(from_time: str | None, *, from_start: bool) -> Action | str:
    if from_start:
        return Action(kind="replay")
    text = (from_time or "").strip()
    if not text:
        return "Enter the time to replay from (ISO-8601 such as 2026-11-21T10:00:00Z, or now-6h)."
    try:  # "last tuesday" is refused here, not after the operator confirmed
        replay_from_ms(text)
    except JobTimeError as exc:
        return f"{_sentence(exc)} {TIMES}"
    return Action(kind="replay", from_time=text)


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def describe(action: Action) -> str:
    """The confirmation question: what will happen, and what the operator risks."""
    safe = "Served values change only when it completes; a failed run changes nothing."
    if action.kind == "batch":
        if action.start or action.end:
            span = f"from {action.start or 'the first event'} to {action.end or 'now'} (UTC)"
            return (
                f"Recompute every event hour {span} from the archive and move the batch "
                f"horizon forward? {safe}"
            )
        if action.mode == "full":
            return (
                "Recompute every event hour in the archive (full)? It reads the whole "
                f"archive and can take a while. {safe}"
            )
        return (
            "Recompute the event hours changed since the last run (incremental), then "
            f"move the batch horizon forward? {safe}"
        )
    span = f"from {action.from_time}" if action.from_time else "from the start of the log"
    kept = (
        "It rebuilds the windows from that time (aligned down to a window start); the "
        "older windows stay served, from batch or carried over from the current "
        "generation. "
        if action.from_time
        else ""
    )
    return (
        f"Replay {span} into a new generation of the speed views? {kept}Queries keep "
        "reading the current generation until the new one has caught up, then switch "
        "at once and the old one is dropped. Cancel at any time leaves the current one "
        "untouched."
    )


def confirm_label(action: Action) -> str:
    if action.kind == "replay":
        return "Start replay"
    return "Start full recompute" if action.mode == "full" else "Start recompute"


def send(api: ApiClient, token: str, action: Action) -> str:
    """Start the job; returns its id. Raises ApiError (ApiConflictError on 409)."""
    if action.kind == "batch":
        return api.start_batch(
            token, mode=action.mode, start=action.start, end=action.end, trigger=TRIGGER
        )
    return api.start_replay(token, from_time=action.from_time, trigger=TRIGGER)


def job_message(prefix: str, job_id: str | None) -> list[Component | str]:
    """The job id sits in its own element (``.job-id``) so people and tests can copy it."""
    return [prefix, html.Code(job_id or "unknown job", className="job-id")]


def started_banner(action: Action, job_id: str) -> html.Div:
    return banner(job_message(f"Started {action.kind} job ", job_id), "ok")


def error_banner(exc: ApiError, doing: str) -> html.Div:
    """One message per kind of failure, each saying what to do next."""
    if exc.status == 401:
        return banner(f"The API refused the admin token while {doing}. {AUTH_HINT}", "warn")
    if isinstance(exc, ApiConflictError) and exc.job_id:
        noun = "A replay" if "replay" in doing else "A batch recompute"
        return banner(
            job_message(f"{noun} is already running: ", exc.job_id)
            + [". Wait for it to finish (progress below) or cancel it."],
            "warn",
        )
    if isinstance(exc, ApiUnavailableError):
        return banner(
            f"{exc}. Nothing is known to have happened while {doing}: check the "
            "job history below before trying again."
        )
    if exc.status == 422:
        return banner(f"The API could not read the request while {doing}: {exc}", "warn")
    return banner(f"Failed while {doing}: {exc}")


def start_failed_banner(exc: ApiError, noun: str) -> html.Div | None:
    """What the status line says when starting a job failed; None for a refused token,
    which the page-wide alert above already says (the same alert twice read as two
    problems)."""
    if exc.status == 401:
        return None
    return error_banner(exc, f"starting a {noun}")


def refresh_error_banner(exc: ApiError) -> html.Div:
    """A failed refresh: the figures on screen are stale, and why."""
    if exc.status == 401:
        return banner(f"The API refused the admin token. {AUTH_HINT}", "warn")
    return banner(f"{exc}. The jobs and generation below are stale; retrying every second.")


def cancel(api: ApiClient, token: str, job_id: str) -> html.Div:
    """Ask the API to cancel; a finished or running batch job answers 409 with why."""
    try:
        state = api.cancel_job(token, job_id)
    except ApiConflictError as exc:
        return banner(job_message("Could not cancel ", job_id) + [f": {exc}"], "warn")
    except ApiError as exc:
        return error_banner(exc, "cancelling the job")
    if state == "cancelled":
        return banner(job_message("Cancelled ", job_id), "info")
    return banner(
        job_message("Cancel requested for ", job_id)
        + [": it stops at its next check, and the live generation stays as it is."],
        "info",
    )
