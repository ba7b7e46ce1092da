"""The REST API on the shared real stack: status codes, the one error body shape, times in
both forms, pagination, and the status / pipeline / Prometheus views of real events."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.stack import Stack, this_minute, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the status and the ``{"error": {code, message, details}}`` shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    if code is not None:
        assert error["code"] == code, error
    return error


def fresh_events(n: int, ts_ms: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"api-{uuid4().hex}",
            "ts": ts_ms,
            "type": "page_view",
            "country": "DE",
            "device": "mobile",
            "latency_ms": 100 + i,
        }
        for i in range(n)
    ]


def test_unknown_route_and_wrong_method_have_the_error_body(stack: Stack) -> None:
    error = error_of(stack.client.get("/v1/nope"), 404, "not_found")
    assert error["details"]["path"] == "/v1/nope"
    response = stack.client.delete("/v1/metrics")
    error = error_of(response, 405, "method_not_allowed")
    assert error["details"]["allow"] == ["GET"]
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "yesterday"}, "invalid_parameter"),
        ({"start": "-5"}, "invalid_parameter"),
        ({"end": "99999999999999999"}, "invalid_parameter"),
        ({"step": "7s"}, "invalid_step"),
        ({"step": "5x"}, "invalid_parameter"),
        ({"start": "now", "end": "now-1h"}, "invalid_range"),
        ({"group_by": "planet"}, "unknown_dimension"),
        ({"planet": "mars"}, "unknown_dimension"),
        ({"start": "now-30d", "step": "1m"}, "too_many_points"),
    ],
)
def test_bad_series_parameters_are_422_with_a_code(
    stack: Stack, params: dict[str, str], code: str
) -> None:
    error_of(stack.client.get("/v1/metrics/events", params=params), 422, code)


def test_unknown_metric_and_job_are_404(stack: Stack) -> None:
    error = error_of(stack.client.get("/v1/metrics/nope"), 404, "unknown_metric")
    assert "events" in error["details"]["metrics"]
    error_of(
        stack.client.get("/v1/admin/jobs/nope", headers=stack.admin_headers), 404, "unknown_job"
    )


def test_validation_errors_name_each_problem(stack: Stack) -> None:
    response = stack.client.get(
        "/v1/admin/jobs", headers=stack.admin_headers, params={"limit": 0, "kind": "other"}
    )
    error = error_of(response, 422, "invalid_request")
    assert {p["where"] for p in error["details"]["problems"]} == {"query.limit", "query.kind"}
    error_of(stack.client.get("/v1/pipeline", params={"limit": "many"}), 422, "invalid_request")


def test_admin_routes_need_the_token(stack: Stack) -> None:
    for response in (
        stack.client.get("/v1/admin/jobs"),
        stack.client.post("/v1/admin/batch"),
        stack.client.get("/v1/admin/jobs", headers={"authorization": "Bearer x"}),
    ):
        error = error_of(response, 401, "unauthorized")
        assert "Authorization: Bearer" in error["message"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_ingest_errors_have_the_error_body(stack: Stack) -> None:
    error_of(
        stack.client.post(
            "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "unreadable_body",
    )
    error = error_of(stack.client.post("/v1/events", json=[{"ts": 1}]), 422, "no_valid_events")
    assert error["details"]["rejected"][0]["index"] == 0


def test_iso_and_epoch_ms_times_give_the_same_answer_in_both_forms(stack: Stack) -> None:
    ts_ms, t0 = this_minute()
    stack.post_events(fresh_events(3, ts_ms))
    by_ms = stack.client.get(
        "/v1/metrics/events", params={"start": t0, "end": t0 + MINUTE, "country": "DE"}
    ).json()
    iso_start = by_ms["start"]
    by_iso = stack.client.get(
        "/v1/metrics/events",
        params={"start": iso_start, "end": by_ms["end"].replace("Z", "+00:00"), "country": "DE"},
    ).json()
    assert by_iso == by_ms
    assert by_ms["start_ms"] == t0 and by_ms["end_ms"] == t0 + MINUTE
    assert iso_start.endswith("Z")
    [series] = by_ms["series"]
    [point] = series["points"]
    assert point["t_ms"] == t0 and point["t"] == iso_start and point["value"] >= 3


def test_jobs_are_paginated_with_a_total(stack: Stack) -> None:
    stack.run_batch()
    first = stack.client.get(
        "/v1/admin/jobs", headers=stack.admin_headers, params={"limit": 1}
    ).json()
    assert first["limit"] == 1 and first["offset"] == 0 and len(first["jobs"]) == 1
    assert first["total"] >= 1
    job = first["jobs"][0]
    assert job["created_at_ms"] > 0 and job["finished_at_ms"] >= job["started_at_ms"]
    beyond = stack.client.get(
        "/v1/admin/jobs", headers=stack.admin_headers, params={"limit": 5, "offset": first["total"]}
    ).json()
    assert beyond["jobs"] == [] and beyond["total"] == first["total"]


def test_a_second_batch_request_while_one_is_active_is_409(stack: Stack) -> None:
    responses = [
        stack.client.post("/v1/admin/batch", headers=stack.admin_headers) for _ in range(2)
    ]
    assert responses[0].status_code in (202, 409), responses[0].text
    conflict = next(r for r in responses if r.status_code == 409)
    job_id = error_of(conflict, 409, "job_conflict")["details"]["job_id"]

    def done() -> bool:
        job = stack.client.get(f"/v1/admin/jobs/{job_id}", headers=stack.admin_headers).json()
        return job["state"] in ("succeeded", "failed", "cancelled")

    wait_until(done, 60, f"batch job {job_id} to finish")


def test_status_shows_speed_freshness_lag_and_horizon(stack: Stack) -> None:
    now_ms = int(time.time() * 1000)
    stack.post_events(fresh_events(2, now_ms))
    status = stack.client.get("/v1/status").json()
    assert abs(status["now_ms"] - now_ms) < 60_000
    speed = status["speed"]
    assert speed["partitions"] >= 1
    assert speed["newest_event_ms"] >= now_ms and 0 <= speed["lag_s"] < 60
    assert speed["watermark_ms"] is not None and speed["last_flush_ms"] is not None
    events = next(m for m in status["metrics"] if m["name"] == "events")
    assert events["window"] == "1m"
    assert events["newest_window_ms"] >= now_ms - now_ms % MINUTE
    assert events["source"] == "speed"
    assert events["newest_window"].endswith(":00Z")
    stack.run_batch()
    batch = stack.client.get("/v1/status").json()["batch"]
    assert batch["horizon_ms"] is not None and batch["horizon_age_s"] >= 0
    assert batch["last_run"]["state"] == "succeeded"


def test_pipeline_reports_stages_partitions_and_jobs(stack: Stack) -> None:
    stack.client.get("/v1/pipeline")
    before = {s["stage"]: s["total"] for s in stack.client.get("/v1/pipeline").json()["stages"]}
    stack.post_events(fresh_events(5, int(time.time() * 1000)))

    def with_rates() -> dict[str, Any] | None:  # two samples at least a second apart
        body = stack.client.get("/v1/pipeline", params={"limit": 2}).json()
        stages = {s["stage"]: s for s in body["stages"]}
        return body if stages["ingest_accepted"]["per_s"] is not None else None

    body = wait_until(with_rates, 10, "a rate for ingest_accepted")
    stages = {s["stage"]: s for s in body["stages"]}
    assert stages["ingest_accepted"]["total"] >= before["ingest_accepted"] + 5
    assert stages["speed_events"]["total"] >= before["speed_events"] + 5
    assert stages["ingest_accepted"]["per_s"] is not None
    assert {"speed_late", "dead_letters", "archive_events", "batch_runs"} <= set(stages)
    partitions = body["partitions"]
    assert partitions and all(p["through_offset"] >= 0 for p in partitions)
    assert min(p["lag_s"] for p in partitions if p["lag_s"] is not None) < 60
    assert len(body["jobs"]) <= 2 and body["limit"] == 2 and body["jobs_total"] >= 0


def test_prometheus_text_lists_the_pipeline_counters_and_state(stack: Stack) -> None:
    response = stack.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "stratum_ingest_events_accepted_total",
        "stratum_ingest_events_rejected_total",
        "stratum_speed_events_total",
        "stratum_speed_late_events_total",
        "stratum_dead_letters_total",
        "stratum_archive_events_total",
        "stratum_speed_flush_seconds_count",
        "stratum_batch_duration_seconds_count",
        "stratum_speed_event_time_lag_seconds",
        "stratum_speed_through_offset",
        "stratum_serving_read_seconds_count",
        "stratum_serving_tail_buckets_total",
        "stratum_jobs{",
        "stratum_pipeline_state_up 1.0",
    ):
        assert name in text, name


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "-99999999999999999"}, "invalid_parameter"),
        ({"start": "now-99999999d"}, "invalid_parameter"),
        ({"end": "99999999999999999"}, "invalid_parameter"),
        ({"start": "now", "end": "now-1h"}, "invalid_range"),
        ({"start": "now-365d"}, "too_many_points"),
    ],
)
def test_drift_validates_its_range_like_metrics(
    stack: Stack, params: dict[str, str], code: str
) -> None:
    """Issue 17, finding 6: these were 500 internal_error, and points had no cap."""
    response = stack.client.get("/v1/drift", params={"metric": "events", **params})
    error_of(response, 422, code)


@pytest.mark.parametrize("path", ["/v1/drift", "/v1/metrics/events"])
def test_errors_cite_only_a_prefix_of_the_input(stack: Stack, path: str) -> None:
    """A 60 KB parameter gave a 60 KB error body."""
    cases = [{"start": "x" * 60_000}, {"start": "now-" + "9" * 60_000 + "d"}]
    if path.startswith("/v1/metrics"):
        cases.append({"step": "7" * 60_000 + "m"})
    for params in cases:
        response = stack.client.get(path, params={"metric": "events", **params})
        error = error_of(response, 422)
        assert len(response.content) < 1_000, (params.keys(), response.text[:300])
        assert "characters" in error["message"] or "too long" in error["message"], error
    long_name = stack.client.get("/v1/metrics/" + "m" * 5_000)
    assert len(error_of(long_name, 404, "unknown_metric")["message"]) < 200
    assert len(stack.client.get("/v1/" + "p" * 5_000).content) < 1_000


def test_an_idle_connection_is_kept_past_a_client_pools_expiry(stack: Stack) -> None:
    """uvicorn's default keeps an idle connection 5 s, httpx's pool 5 s too: a request
    sent on it as the server closes it failed with "Server disconnected without sending
    a response" (a CI run, a POST after a 5 s wait). The server outlasts the client."""
    idle_s = 6.0
    limits = httpx.Limits(keepalive_expiry=idle_s + 30)
    local = []
    with httpx.Client(base_url=stack.base_url, timeout=30, limits=limits) as client:
        for pause_s in (0.0, idle_s):
            time.sleep(pause_s)
            response = client.get("/v1/health")
            assert response.status_code == 200, response.text
            local.append(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert local[0] == local[1], f"the server closed the idle connection: {local}"
