"""Issue 17 on a real stack with a read token and an ingest token (``guarded_stack``):
the dashboard and /metrics honour the read token (finding 2), ingest has doors
(finding 4). The reproductions are the issue's."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import INGEST_TOKEN, READ_TOKEN
from tests.stack import Stack

pytestmark = pytest.mark.integration
EVIL = "http://evil.example"
# The callback body (any callback: the door is in front of all of them).
CALLBACK = {
    "output": "admin-token-input.value",
    "outputs": {"id": "admin-token-input", "property": "value"},
    "inputs": [{"id": "admin-token-input", "property": "id", "value": "admin-token-input"}],
    "changedPropIds": ["admin-token-input.id"],
    "state": [{"id": "admin-token-input", "property": "value", "value": None}],
}


@pytest.fixture
def anonymous(guarded_stack: Stack) -> Any:
    with httpx.Client(base_url=guarded_stack.base_url, timeout=30) as client:
        yield client


def test_the_dashboard_and_prometheus_need_the_read_token(
    guarded_stack: Stack, anonymous: httpx.Client
) -> None:
    page = anonymous.get("/dashboard/explorer")
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/sign-in"
    for path in ("/dashboard/_dash-update-component", "/dashboard/_dash-layout"):
        answer = anonymous.post(path, json=CALLBACK)
        assert answer.status_code == 401, (path, answer.text[:300])
        assert READ_TOKEN not in answer.text
    assert anonymous.get("/dashboard/sign-in").status_code == 200
    assert anonymous.get("/metrics").status_code == 401
    prometheus = anonymous.get("/metrics", headers={"authorization": f"Bearer {READ_TOKEN}"})
    assert prometheus.status_code == 200 and "stratum_jobs" in prometheus.text


def test_signing_in_opens_the_dashboard_for_that_browser_only(
    guarded_stack: Stack, anonymous: httpx.Client
) -> None:
    refused = anonymous.post("/dashboard/sign-in", data={"token": "guess"})
    assert "not the read token" in refused.text and "set-cookie" not in refused.headers
    signed = anonymous.post("/dashboard/sign-in", data={"token": READ_TOKEN})
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert anonymous.get("/dashboard/explorer").status_code == 200
    assert anonymous.get("/dashboard/_dash-layout").status_code == 200
    # The cookie is scoped to the dashboard: the API itself still wants a bearer token.
    assert anonymous.get("/v1/metrics").status_code == 401


def test_health_stays_open_but_shows_details_only_with_the_read_token(
    guarded_stack: Stack, anonymous: httpx.Client
) -> None:
    open_body = anonymous.get("/v1/health").json()
    assert open_body["status"] in ("ok", "degraded", "down")
    assert open_body["components"] and all(
        c["detail"] == "" for c in open_body["components"].values()
    ), open_body
    full = guarded_stack.client.get("/v1/health").json()
    assert any(c["detail"] for c in full["components"].values()), full


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'[{"event_id":"csrf-1","ts":0,"type":"t"}]'),
        ("application/x-www-form-urlencoded", b'[{"event_id":"csrf-2","ts":0,"type":"t"}]='),
        ("text/xml", b"<events/>"),
        (None, b'[{"event_id":"csrf-3","ts":0,"type":"t"}]'),
    ],
)
def test_ingest_takes_only_json_and_ndjson(
    guarded_stack: Stack, content_type: str | None, body: bytes
) -> None:
    """Finding 4: what a page on another site can send without asking first is 415."""
    headers = {"origin": EVIL, **guarded_stack.ingest_headers}
    if content_type:
        headers["content-type"] = content_type
    answer = guarded_stack.client.post("/v1/events", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"]["code"] == "unsupported_media_type"
    assert "access-control-allow-origin" not in answer.headers


def test_ingest_needs_the_ingest_token_when_one_is_set(
    guarded_stack: Stack, anonymous: httpx.Client
) -> None:
    event = [{"event_id": f"door-{time.time_ns()}", "ts": int(time.time() * 1000), "type": "door"}]
    assert anonymous.post("/v1/events", json=event).status_code == 401
    read_only = anonymous.post(
        "/v1/events", json=event, headers={"authorization": f"Bearer {READ_TOKEN}"}
    )
    assert read_only.status_code == 401
    answer = anonymous.post(
        "/v1/events", json=event, headers={"authorization": f"Bearer {INGEST_TOKEN}"}
    )
    assert answer.status_code == 202 and answer.json()["accepted"] == 1


def test_cors_is_off_unless_origins_are_configured(anonymous: httpx.Client) -> None:
    preflight = anonymous.options(
        "/v1/events",
        headers={
            "origin": EVIL,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400
