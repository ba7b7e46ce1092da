"""The admin page's rules without a browser: how a job's progress reads per phase, what
each button asks to confirm and sends, what each failure says, and the admin calls of
the API client (against an httpx transport stand-in)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dash.development.base_component import Component

from dashboard import ids
from dashboard.admin_actions import (
    Action,
    cancel,
    describe,
    error_banner,
    recompute_action,
    replay_action,
    send,
    start_failed_banner,
)
from dashboard.admin_state import fetch_snapshot, view_key
from dashboard.admin_view import generation_view, job_details
from dashboard.api_client import ApiClient
from dashboard.api_models import Generation, Job, JobPage
from dashboard.errors import ApiConflictError, ApiError, ApiUnavailableError
from dashboard.job_view import params_summary, progress_of
from dashboard.jobs_table import COLUMNS, jobs_table

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def job(**fields: Any) -> Job:
    base: dict[str, Any] = {
        "job_id": "j1",
        "kind": "batch",
        "state": "running",
        "trigger": "admin",
        "params": {},
        "started_at": NOW - timedelta(seconds=10),
    }
    return Job.model_validate({**base, **fields})


def text_of(node: Any) -> str:
    """Every string in a component tree, in order, as the browser runs them together."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return "".join(text_of(child) for child in node)
    if isinstance(node, Component):
        return text_of(getattr(node, "children", None))
    return ""


def find_all(node: Any, predicate: Any) -> list[Component]:
    found: list[Component] = []
    if isinstance(node, list | tuple):
        for child in node:
            found += find_all(child, predicate)
    elif isinstance(node, Component):
        if predicate(node):
            found.append(node)
        found += find_all(getattr(node, "children", None), predicate)
    return found


@pytest.mark.parametrize(
    ("fields", "percent", "label"),
    [
        ({"units_done": 3, "units_total": 6}, 50.0, "3/6 · computing metrics"),
        ({"units_done": 0, "units_total": 6}, 0.0, "0/6 · reading archive"),
        ({"units_done": 5, "units_total": 6}, 100 * 5 / 6, "5/6 · writing coverage"),
        (
            {
                "kind": "replay",
                "units_done": 12,
                "units_total": 40,
                "params": {"phase": "archive", "generation": 2},
            },
            30.0,
            "archive 12/40",
        ),
        # The runner reports 1 of 1 while it follows the log: not 100 % yet.
        (
            {
                "kind": "replay",
                "units_done": 1,
                "units_total": 1,
                "params": {"phase": "log", "generation": 2},
            },
            None,
            "catching up on the log",
        ),
        (
            {
                "kind": "replay",
                "state": "succeeded",
                "units_done": 1,
                "units_total": 1,
                "finished_at": NOW,
                "params": {"phase": "switched"},
            },
            100.0,
            "switched",
        ),
        ({"state": "queued", "started_at": None}, 0.0, "queued"),
        ({"state": "failed", "units_done": 2, "units_total": 4, "finished_at": NOW}, 50.0, "2/4"),
        ({"units_done": 0, "units_total": 0}, None, "starting"),
    ],
)
def test_progress_reads_the_replay_phase(
    fields: dict[str, Any], percent: float | None, label: str
) -> None:
    progress = progress_of(job(**fields), NOW)
    assert (progress.percent, progress.label) == (percent, label)


def test_rate_and_eta_come_from_elapsed_time() -> None:
    progress = progress_of(job(units_done=1, units_total=4, rows_in=5_000), NOW)
    assert progress.rate_per_s == pytest.approx(500.0)
    assert progress.eta_s == pytest.approx(30.0)  # a quarter took 10 s


@pytest.mark.parametrize(
    ("fields", "summary"),
    [
        ({}, "incremental"),
        ({"params": {"mode": "full"}}, "full"),
        (
            {
                "params": {
                    "mode": "full",
                    "start_ms": int((NOW - timedelta(hours=2)).timestamp() * 1000),
                }
            },
            "full, 08:00 → now",
        ),
        ({"kind": "replay"}, "whole history"),
        (
            {
                "kind": "replay",
                "params": {"from_ms": int((NOW - timedelta(days=1)).timestamp() * 1000)},
            },
            "from 11-20 10:00",
        ),
        (
            {
                "kind": "replay",
                "params": {"rebuild_from_ms": int((NOW - timedelta(hours=1)).timestamp() * 1000)},
            },
            "rebuilds from 09:00, keeps older windows",
        ),
    ],
)
def test_params_summary(fields: dict[str, Any], summary: str) -> None:
    assert params_summary(job(**fields), NOW) == summary


def test_recompute_and_replay_actions_check_the_form() -> None:
    assert recompute_action("incremental", "now-1h", None) == Action(kind="batch")
    assert recompute_action("full", None, None) == Action(kind="batch", mode="full")
    assert recompute_action("range", " now-6h ", "") == Action(
        kind="batch", mode="full", start="now-6h"
    )
    assert "start, an end or both" in str(recompute_action("range", "", None))
    assert replay_action(None, from_start=True) == Action(kind="replay")
    assert replay_action("now-6h", from_start=False) == Action(kind="replay", from_time="now-6h")
    assert "time to replay from" in str(replay_action("  ", from_start=False))


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (Action(kind="batch"), "incremental"),
        (Action(kind="batch", mode="full"), "whole archive"),
        (Action(kind="batch", mode="full", start="now-6h"), "from now-6h to now"),
        (Action(kind="replay"), "from the start of the log"),
        (Action(kind="replay", from_time="2026-11-21T10:00:00Z"), "from 2026-11-21T10:00:00Z"),
    ],
)
def test_confirmation_says_what_will_happen(action: Action, words: str) -> None:
    assert words in describe(action)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            ApiError("admin endpoints need the admin token", status=401),
            ["refused the admin token", "STRATUM_API__ADMIN_TOKEN", "Authorization: Bearer"],
        ),
        (
            ApiConflictError("busy", status=409, details={"job_id": "abc123"}),
            ["A replay is already running:", "abc123"],
        ),
        (
            ApiUnavailableError("API unreachable at http://x: connection refused"),
            ["API unreachable", "check the job history"],
        ),
        (ApiError("'soon' is not a time", status=422), ["could not read", "'soon'"]),
    ],
)
def test_every_failure_says_what_to_do(error: ApiError, words: list[str]) -> None:
    text = text_of(error_banner(error, "starting a replay"))
    for word in words:
        assert word in text


def admin_api(answers: dict[str, Any], seen: list[httpx.Request]) -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        key = f"{request.method} {request.url.path}"
        if request.url.params.get("kind"):
            key += f"?kind={request.url.params['kind']}"
        status, body = answers[key]
        return httpx.Response(status, json=body)

    return ApiClient("http://api.test", transport=httpx.MockTransport(handler))


def test_send_posts_the_confirmed_action_as_json() -> None:
    seen: list[httpx.Request] = []
    api = admin_api(
        {
            "POST /v1/admin/batch": (202, {"job_id": "b1", "state": "queued"}),
            "POST /v1/admin/replay": (202, {"job_id": "r1", "state": "queued"}),
            "POST /v1/admin/jobs/r1/cancel": (200, {"job_id": "r1", "state": "cancelling"}),
        },
        seen,
    )
    assert send(api, "tok", Action(kind="batch", mode="full", start="now-6h")) == "b1"
    assert send(api, "tok", Action(kind="replay", from_time="now-1h")) == "r1"
    assert send(api, "tok", Action(kind="replay")) == "r1"
    assert api.cancel_job("tok", "r1") == "cancelling"
    bodies = [json.loads(r.content) if r.content else None for r in seen]
    assert bodies[:3] == [
        {"mode": "full", "start": "now-6h", "trigger": "admin"},
        {"from": "now-1h", "trigger": "admin"},
        {"trigger": "admin"},
    ]
    assert {r.headers["authorization"] for r in seen} == {"Bearer tok"}


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (200, {"job_id": "r1", "state": "cancelling"}, "Cancel requested for r1"),
        (200, {"job_id": "r1", "state": "cancelled"}, "Cancelled r1"),
        (
            409,
            {
                "error": {
                    "code": "not_cancellable",
                    "message": "a running batch recompute cannot be cancelled",
                    "details": {},
                }
            },
            "Could not cancel r1: a running batch recompute cannot be cancelled",
        ),
        (
            401,
            {"error": {"code": "unauthorized", "message": "no", "details": {}}},
            "STRATUM_API__ADMIN_TOKEN",
        ),
    ],
)
def test_cancel_says_what_became_of_the_job(status: int, body: dict[str, Any], words: str) -> None:
    api = admin_api({"POST /v1/admin/jobs/r1/cancel": (status, body)}, [])
    assert words in text_of(cancel(api, "tok", "r1"))


def test_snapshot_finds_active_jobs_and_a_selected_job_off_the_page() -> None:
    def page(*jobs: Job) -> dict[str, Any]:
        return {"jobs": [j.model_dump(mode="json") for j in jobs], "total": len(jobs)}

    running = job(job_id="r1", kind="replay", params={"generation": 4})
    seen: list[httpx.Request] = []
    api = admin_api(
        {
            "GET /v1/admin/jobs?kind=batch": (200, page(job(job_id="b1", state="succeeded"))),
            "GET /v1/admin/jobs?kind=replay": (200, page(running)),
            "GET /v1/admin/jobs": (200, page(running)),
            "GET /v1/admin/jobs/old": (
                200,
                job(job_id="old", state="failed", error="boom").model_dump(mode="json"),
            ),
            "GET /v1/admin/generation": (200, {"live": 3, "handoff": None}),
        },
        seen,
    )
    shot = fetch_snapshot(api, "tok", kind=None, offset=0, limit=10, selected="old")
    assert [j.job_id for j in shot.active] == ["r1"]
    assert shot.building == 4 and shot.generation.live == 3
    assert shot.selected is not None and shot.selected.error == "boom"
    assert "kind" not in seen[2].url.params


def test_generation_view_says_what_is_served_and_the_handoff() -> None:
    assert "currently served: 3" in text_of(generation_view(Generation(live=3), None))
    assert "hand-off to 4 in progress" in text_of(generation_view(Generation(live=3, handoff=4), 4))
    assert "building generation 4" in text_of(generation_view(Generation(live=3), 4))


def test_table_rows_are_clickable_and_a_failed_job_shows_its_error() -> None:
    failed = job(job_id="f1", state="failed", finished_at=NOW, error="ValueError: bad\nline 2")
    table = jobs_table(
        JobPage(jobs=(failed, job(job_id="ok")), total=2),
        now=NOW,
        selected="f1",
        row_id=ids.job_row,
    )
    rows = find_all(table, lambda c: getattr(c, "id", None) and isinstance(c.id, dict))
    assert [r.id for r in rows] == [
        ids.job_row("f1", "main"),
        ids.job_row("f1", "error"),
        ids.job_row("ok", "main"),
    ]
    assert "is-selected" in rows[0].className
    assert text_of(rows[1]).startswith("ValueError: bad")
    assert len(find_all(table, lambda c: type(c).__name__ == "Th")) == len(COLUMNS)
    details = text_of(job_details(failed, NOW))
    assert "ValueError: bad\nline 2" in details


def test_view_key_changes_only_with_what_is_shown() -> None:
    a, b = job(units_done=1), job(units_done=2)
    assert view_key([a], "x") == view_key([job(units_done=1)], "x")
    assert view_key([a], "x") != view_key([b], "x")


@pytest.mark.parametrize(
    ("from_time", "words"),
    [
        ("last tuesday", "'last tuesday' is not a time"),
        ("2999-01-01T00:00:00Z", "outside 1970-2200"),
        ("2100-01-01T00:00:00Z", "is in the future"),
    ],
)
def test_replay_from_a_bad_time_is_refused_before_the_confirm_step(
    from_time: str, words: str
) -> None:
    asked = replay_action(from_time, from_start=False)
    assert isinstance(asked, str) and words in asked and "now-6h" in asked


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        ("now", "now-1h", "must be before end"),
        ("now+1h", None, "is not a time"),
        ("yesterday", "now", "'yesterday' is not a time"),
    ],
)
def test_a_recompute_range_that_cannot_run_is_refused_before_the_confirm_step(
    start: str, end: str | None, words: str
) -> None:
    asked = recompute_action("range", start, end)
    assert isinstance(asked, str) and words in asked


def test_a_refused_token_is_said_once_by_the_page_alert_not_again_by_the_status() -> None:
    refused = ApiError("admin endpoints need the admin token", status=401)
    assert start_failed_banner(refused, "replay") is None
    assert "refused the admin token" in text_of(error_banner(refused, "starting a replay"))
    assert start_failed_banner(ApiError("boom", status=500), "replay") is not None


def test_table_card_and_details_show_the_same_moment_of_a_running_job() -> None:
    def page(*jobs: Job) -> dict[str, Any]:
        return {"jobs": [j.model_dump(mode="json") for j in jobs], "total": len(jobs)}

    earlier = job(job_id="b1", units_done=1, units_total=6)
    later = job(job_id="b1", units_done=2, units_total=6)
    api = admin_api(
        {
            "GET /v1/admin/jobs?kind=batch": (200, page(later)),
            "GET /v1/admin/jobs?kind=replay": (200, page()),
            "GET /v1/admin/jobs": (200, page(earlier)),  # read a moment before
            "GET /v1/admin/generation": (200, {"live": 3, "handoff": None}),
        },
        [],
    )
    shot = fetch_snapshot(api, "tok", kind=None, offset=0, limit=10, selected="b1")
    labels = {
        progress_of(j, NOW).label
        for j in (*shot.active, *shot.page.jobs, shot.selected)
        if j is not None
    }
    assert labels == {"2/6 · computing metrics"}


def test_job_details_keep_state_out_of_the_parameters() -> None:
    replay = job(job_id="r1", kind="replay", params={"from_ms": 5, "phase": "log", "generation": 4})
    details = job_details(replay, NOW)
    [code] = [
        c
        for c in find_all(
            details, lambda c: getattr(c, "className", None) is None and type(c).__name__ == "Code"
        )
        if str(getattr(c, "children", "")).startswith("{")
    ]
    assert json.loads(code.children) == {"from_ms": 5}
    text = text_of(details)
    assert "Phase" in text and "following the log" in text and "Generation" in text
