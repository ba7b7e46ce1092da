"""Issue 20's API findings on the shared real stack: comma-separated filters, values
without float noise, error details that say what would work, and job times refused with
422 before anything is queued."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import pytest

from tests.integration.test_api import error_of
from tests.stack import Stack, this_minute

pytestmark = pytest.mark.integration
MINUTE = 60_000


def purchases(ts_ms: int, country: str, amounts: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"inputs-{uuid4().hex}",
            "ts": ts_ms,
            "type": "purchase",
            "country": country,
            "amount": amount,
        }
        for amount in amounts
    ]


def test_a_comma_separated_filter_means_any_of_its_values(stack: Stack) -> None:
    ts, t0 = this_minute()
    stack.post_events(
        [
            *purchases(ts, "Q1", [1, 2]),
            *purchases(ts, "Q2", [5]),
            *purchases(ts, "Q3", [7]),
            *purchases(ts, "Q,4", [11]),
        ]
    )
    window = {"start": t0, "end": t0 + MINUTE, "group_by": "country"}

    def totals(params: Any) -> dict[str, float]:
        response = stack.client.get("/v1/metrics/revenue", params=params)
        assert response.status_code == 200, response.text
        return {s["group"]["country"]: s["points"][0]["value"] for s in response.json()["series"]}

    by_comma = totals({**window, "country": "Q1,Q2"})
    assert by_comma == {"Q1": 3, "Q2": 5}
    assert totals([*window.items(), ("country", "Q1"), ("country", "Q2")]) == by_comma
    [series] = stack.client.get(
        "/v1/metrics/revenue", params={"start": t0, "end": t0 + MINUTE, "country": "Q2,Q3"}
    ).json()["series"]
    assert series["points"][0]["value"] == 12
    assert totals({**window, "country": "Q\\,4"}) == {"Q,4": 11}


def test_values_have_no_float_noise_and_counts_stay_exact(stack: Stack) -> None:
    ts, t0 = this_minute()
    stack.post_events(purchases(ts, "Q5", [1.1, 2.2]))
    body = stack.client.get(
        "/v1/metrics/revenue", params={"start": t0, "end": t0 + MINUTE, "country": "Q5"}
    ).json()
    [point] = body["series"][0]["points"]
    assert point["value"] == 3.3  # 1.1 + 2.2 is 3.3000000000000003 in float64, either order
    assert point["count"] == 2
    counted = stack.client.get(
        "/v1/metrics/events", params={"start": t0, "end": t0 + MINUTE, "country": "Q5"}
    ).json()
    assert counted["series"][0]["points"][0]["value"] == 2


def test_too_many_points_says_how_many_steps_and_which_step_fits(stack: Stack) -> None:
    error = error_of(
        stack.client.get(
            "/v1/metrics/events",
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-31T00:00:00Z", "step": "1m"},
        ),
        422,
        "too_many_points",
    )
    assert error["details"] == {
        "steps": 43_200,
        "max_points": 20_000,
        "step": "1m",
        "fitting_step": "3m",
    }
    assert "43200 steps" in error["message"] and "step=3m" in error["message"]
    fits = stack.client.get(
        "/v1/metrics/events",
        params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-31T00:00:00Z", "step": "3m"},
    )
    assert fits.status_code == 200, fits.text


def test_an_empty_batch_is_a_clear_422(stack: Stack) -> None:
    error = error_of(stack.client.post("/v1/events", json=[]), 422, "empty_batch")
    assert "no events" in error["message"]


def test_an_event_with_several_problems_reports_all_of_them(stack: Stack) -> None:
    error = error_of(
        stack.client.post(
            "/v1/events", json=[{"event_id": "", "ts": "yesterday", "amount": "NaN"}]
        ),
        422,
        "no_valid_events",
    )
    [rejected] = error["details"]["rejected"]
    assert re.fullmatch(
        r"event_id: must not be empty; ts: 'yesterday' is not ISO-8601.*; "
        r"type: is required; amount: 'NaN' reads as a number that is not "
        r"finite.*",
        rejected["error"],
    ), rejected


def jobs_total(stack: Stack, kind: str) -> int:
    page = stack.client.get(
        "/v1/admin/jobs", headers=stack.admin_headers, params={"kind": kind, "limit": 1}
    ).json()
    return int(page["total"])


@pytest.mark.parametrize(
    ("body", "parameter", "code"),
    [
        ({"start": "now", "end": "now-1h"}, "start", "invalid_range"),
        ({"start": "now+1h"}, "start", "invalid_parameter"),
        ({"start": "now-1h", "end": "now-1h"}, "start", "invalid_range"),
        ({"start": "2300-01-01T00:00:00Z"}, "start", "invalid_parameter"),
        ({"end": "last tuesday"}, "end", "invalid_parameter"),
    ],
)
def test_a_batch_job_with_bad_times_is_refused_before_anything_is_queued(
    stack: Stack, body: dict[str, str], parameter: str, code: str
) -> None:
    before = jobs_total(stack, "batch")
    error = error_of(
        stack.client.post("/v1/admin/batch", json=body, headers=stack.admin_headers), 422, code
    )
    assert error["details"]["parameter"] == parameter
    assert jobs_total(stack, "batch") == before


@pytest.mark.parametrize(
    ("from_time", "code"),
    [
        ("last tuesday", "invalid_parameter"),
        ("2300-01-01T00:00:00Z", "invalid_parameter"),
        ("7000000000000", "invalid_range"),  # 2191: readable, but in the future
    ],
)
def test_a_replay_with_a_bad_time_is_refused_before_anything_is_queued(
    stack: Stack, from_time: str, code: str
) -> None:
    before = jobs_total(stack, "replay")
    error = error_of(
        stack.client.post(
            "/v1/admin/replay", json={"from": from_time}, headers=stack.admin_headers
        ),
        422,
        code,
    )
    assert error["details"]["parameter"] == "from"
    assert jobs_total(stack, "replay") == before
