"""Dashboard pieces without a server: the API client's error mapping (httpx transport
stand-ins for a dead or failing API), grouping and folding rules, two apps per process."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dashboard.api_client import ApiClient, iso_utc
from dashboard.api_models import MetricInfo, SeriesResponse
from dashboard.errors import ApiConflictError, ApiError, ApiUnavailableError
from dashboard.series import MAX_LINES, group_by_for, headline, latest_point, lines_of
from stratum.settings import Settings
from tests.served import metric_info


def client_for(handler) -> ApiClient:
    return ApiClient("http://api.test:8000/", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            "API unreachable at http://api.test:8000: connection refused",
        ),
        (httpx.ReadTimeout("timed out"), "no answer within 5 s"),
        (
            httpx.RemoteProtocolError("peer closed"),
            "API unreachable at http://api.test:8000: peer closed",
        ),
    ],
)
def test_transport_errors_become_unavailable(exc, fragment):
    def handler(request):
        raise exc

    with pytest.raises(ApiUnavailableError, match=fragment) as info:
        client_for(handler).health()
    assert info.value.__cause__ is exc


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message"),
    [
        (500, b"boom", ApiUnavailableError, re.escape("failed on GET /v1/health (HTTP 500): boom")),
        (
            503,
            json.dumps(
                {"error": {"code": "x", "message": "clickhouse down", "details": {}}}
            ).encode(),
            ApiUnavailableError,
            "clickhouse down",
        ),
        (
            401,
            json.dumps(
                {"error": {"code": "unauthorized", "message": "wrong token", "details": {}}}
            ).encode(),
            ApiError,
            "^wrong token$",
        ),
        (404, json.dumps({"detail": "Not Found"}).encode(), ApiError, "^Not Found$"),
        (
            409,
            json.dumps(
                {"error": {"code": "job_conflict", "message": "busy", "details": {"job_id": "j1"}}}
            ).encode(),
            ApiConflictError,
            "^busy$",
        ),
    ],
)
def test_http_errors_are_mapped(status, body, error_type, message):
    client = client_for(lambda request: httpx.Response(status, content=body))
    with pytest.raises(error_type, match=message) as info:
        client.health()
    assert info.value.status == status
    if status == 409:
        assert info.value.job_id == "j1"


def test_bad_body_is_a_contract_error():
    client = client_for(lambda request: httpx.Response(200, json={"metrics": [{"nom": 1}]}))
    with pytest.raises(ApiError, match="outside the contract"):
        client.metrics()


def test_admin_calls_send_bearer_and_params():
    seen = {}

    def handler(request):
        seen[request.url.path] = (request.headers.get("authorization"), dict(request.url.params))
        if request.method == "POST":
            return httpx.Response(202, json={"job_id": "j9"})
        return httpx.Response(200, json={"jobs": [], "total": 0})

    client = client_for(handler)
    assert client.start_batch("tok") == "j9"
    client.batch_jobs("tok", limit=5)
    assert seen["/v1/admin/batch"][0] == "Bearer tok"
    assert seen["/v1/admin/jobs"] == ("Bearer tok", {"kind": "batch", "limit": "5", "offset": "0"})


def test_read_token_and_series_params():
    seen = {}

    def handler(request):
        seen["auth"] = request.headers.get("authorization")
        seen["params"] = dict(request.url.params)
        return httpx.Response(
            200,
            json={
                "metric": "events",
                "step": "1m",
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-01T00:30:00Z",
                "horizon": None,
                "series": [],
            },
        )

    client = ApiClient("http://x", credential=lambda: "r", transport=httpx.MockTransport(handler))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    client.series(
        "events", start=start, end=start + timedelta(minutes=30), step="1m", group_by=("type",)
    )
    assert seen["auth"] == "Bearer r"
    assert seen["params"] == {
        "start": "2026-01-01T00:00:00.000Z",
        "end": "2026-01-01T00:30:00.000Z",
        "step": "1m",
        "group_by": "type",
    }


def test_iso_utc_naive_is_utc():
    assert iso_utc(datetime(2026, 1, 1, 12)) == "2026-01-01T12:00:00.000Z"


def metric(**kw) -> MetricInfo:
    base = {"name": "m", "aggregation": "count", "dimensions": ["type", "country"]}
    return metric_info(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, ("type",)),
        ({"aggregation": "sum", "field": "amount", "dimensions": ["country"]}, ("country",)),
        ({"aggregation": "quantile", "quantile": 0.95, "dimensions": ["country", "device"]}, ()),
        ({"dimensions": []}, ()),
    ],
)
def test_group_by_rule(kw, expected):
    assert group_by_for(metric(**kw)) == expected


def response(groups: dict[str, list[tuple[int, float | None, str]]]) -> SeriesResponse:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return SeriesResponse.model_validate(
        {
            "metric": "m",
            "step": "1m",
            "start": t0,
            "end": t0 + timedelta(minutes=30),
            "horizon": None,
            "series": [
                {
                    "group": {"type": g} if g else {},
                    "points": [
                        {"t": t0 + timedelta(minutes=m), "value": v, "source": s} for m, v, s in pts
                    ],
                }
                for g, pts in groups.items()
            ],
        }
    )


def test_lines_fold_many_groups_into_other():
    groups = {
        f"g{i:02d}": [(0, float(i), "batch"), (1, 1.0, "speed" if i % 2 else "batch")]
        for i in range(12)
    }
    lines = lines_of(response(groups), additive=True)
    assert len(lines) == MAX_LINES and lines[-1].label == "other"
    kept = {line.label for line in lines[:-1]}
    folded = 12 - (MAX_LINES - 1)  # the smallest groups
    assert kept == {f"g{i:02d}" for i in range(folded, 12)}
    other = lines[-1]
    assert other.y == [sum(range(folded)), float(folded)]
    assert other.source == ["batch", "mixed"] and other.folded == folded
    assert lines[0].x[0].tzinfo is None


def test_headline_and_latest():
    r = response({"a": [(0, 1.0, "batch"), (2, None, "speed")], "b": [(1, 4.0, "speed")]})
    assert headline(metric(), r).value == 5.0
    assert latest_point(r).value == 4.0
    q = metric(aggregation="quantile", quantile=0.5, dimensions=[])
    assert headline(q, r).label == "latest" and headline(q, r).value == 4.0


def test_two_apps_in_one_process_each_get_their_callbacks():
    from dashboard.app import create_dash
    from dashboard.auth import COOKIE

    a = create_dash(Settings(api={"port": 1}))
    read = "r" * 24
    b = create_dash(
        Settings(
            api={"port": 2, "admin_token": "s" * 24, "read_token": read, "ingest_token": "i" * 24},
            environment="production",
        ),
        requests_pathname_prefix="/ui/",
    )
    for app in (a, b):
        client = app.server.test_client()
        client.set_cookie(COOKIE, read)
        assert client.get("/").status_code == 200
        deps = client.get("/_dash-dependencies").get_json()
        outputs = [d["output"] for d in deps]
        assert len(outputs) == len(set(outputs)), outputs
        assert any("overview-grid.children" in o for o in outputs)
        assert any("admin-status.children" in o for o in outputs)

    # Only b has a read token: only b sends a visitor without it to its own sign-in page.
    assert a.server.test_client().get("/").status_code == 200
    away = b.server.test_client().get("/")
    assert away.status_code == 303 and away.headers["location"] == "/ui/sign-in"
    signed_in_b = b.server.test_client()
    signed_in_b.set_cookie(COOKIE, read)
    assert b"/ui/" in signed_in_b.get("/").data
