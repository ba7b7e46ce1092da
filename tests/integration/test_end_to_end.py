"""The walking skeleton end to end on real parts: HTTP ingest → tansu → Faust speed layer →
chDB, archive → Polars batch → chDB, and the merged API read switching from speed to
batch with the same numbers."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from stratum.archive import archive_root
from tests.reference import weighted_quantile
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000


@pytest.fixture(scope="module")
def e2e(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("e2e")


def _events(t0: int) -> list[dict[str, Any]]:
    """Two minutes of history: page views and purchases in DE and FR."""
    events = []
    for i in range(120):
        minute = i % 2
        country = "DE" if i % 3 else "FR"
        event: dict[str, Any] = {
            "event_id": f"e2e-{i}",
            "ts": t0 + minute * MINUTE + (i * 397) % MINUTE,
            "type": "purchase" if i % 4 == 0 else "page_view",
            "country": country,
            "device": "ios" if i % 2 else "desktop",
            "latency_ms": 50 + (i * 37) % 400,
        }
        if event["type"] == "purchase":
            event["amount"] = round(5 + (i * 13) % 90 + 0.25, 2)
        events.append(event)
    return events


def _series(
    stack: Stack, metric: str, start: int, end: int, group_by: str = ""
) -> dict[tuple[tuple[str, str], ...], dict[int, tuple[float, str]]]:
    response = stack.client.get(
        f"/v1/metrics/{metric}", params={"start": start, "end": end, "group_by": group_by}
    )
    assert response.status_code == 200, response.text
    out: dict[tuple[tuple[str, str], ...], dict[int, tuple[float, str]]] = {}
    for series in response.json()["series"]:
        key = tuple(sorted(series["group"].items()))
        out[key] = {p["t_ms"]: (p["value"], p["source"]) for p in series["points"]}
    return out


def _expected(events: list[dict[str, Any]], t0: int) -> dict[str, Any]:
    counts: Counter[tuple[str, str, int]] = Counter()
    revenue: defaultdict[tuple[str, int], float] = defaultdict(float)
    latencies: defaultdict[int, list[float]] = defaultdict(list)
    for e in events:
        start = e["ts"] - e["ts"] % MINUTE
        counts[(e["type"], e["country"], start)] += 1
        if e["type"] == "purchase":
            revenue[(e["country"], start)] += e["amount"]
        latencies[start].append(float(e["latency_ms"]))
    p95 = {start: weighted_quantile(v, [1] * len(v), 0.95) for start, v in latencies.items()}
    return {"counts": counts, "revenue": revenue, "p95": p95}


def _check(stack: Stack, expected: dict[str, Any], t0: int, source: str) -> None:
    end = t0 + 2 * MINUTE
    counts = _series(stack, "events", t0, end, "type,country")
    got = {
        (dict(k)["type"], dict(k)["country"], t): v
        for k, points in counts.items()
        for t, v in points.items()
    }
    assert {k: v[0] for k, v in got.items()} == {k: float(n) for k, n in expected["counts"].items()}
    assert {v[1] for v in got.values()} == {source}
    revenue = _series(stack, "revenue", t0, end, "country")
    got_revenue = {(dict(k)["country"], t): v for k, pts in revenue.items() for t, v in pts.items()}
    assert set(got_revenue) == set(expected["revenue"])
    for key, value in expected["revenue"].items():
        assert got_revenue[key][0] == pytest.approx(value)
        assert got_revenue[key][1] == source
    p95 = _series(stack, "latency_p95", t0, end)[()]
    assert {t: v for t, (v, _) in p95.items()} == expected["p95"]
    assert {s for _, s in p95.values()} == {source}


def test_events_flow_from_speed_to_batch_with_the_same_numbers(e2e: Stack) -> None:
    now = int(time.time() * 1000)
    t0 = now - 2 * 3_600_000
    t0 -= t0 % MINUTE
    events = _events(t0)
    bad = [
        {"event_id": "no-ts", "type": "click"},
        ["not", "an", "object"],
        {"event_id": "x", "ts": t0, "type": "click", "nested": {"a": 1}},
    ]

    body = e2e.post_events(events[:60] + bad + events[60:])
    assert body["accepted"] == len(events)
    assert [(r["index"], r["error"].split(":")[0]) for r in body["rejected"]] == [
        (60, "ts"),
        (61, "an event must be a JSON object, got array"),
        (62, "nested"),
    ]

    expected = _expected(events, t0)
    _check(e2e, expected, t0, "speed")

    # A current event moves the watermark and the batch horizon past the history.
    e2e.post_events([{"event_id": "e2e-clock", "ts": now, "type": "tick"}])
    files = archive_root(e2e.settings.data_dir)

    def archived() -> int:
        paths = list(files.glob("date=*/hour=*/*.parquet"))
        if not paths:
            return 0
        frame = pl.concat([pl.read_parquet(p, columns=["event_id"]) for p in paths])
        return frame.filter(pl.col("event_id").str.starts_with("e2e-")).height

    wait_until(lambda: archived() >= len(events) + 1, 30, "the archive to hold the events")

    job = e2e.run_batch()
    assert job["rows_in"] >= len(events) + 1
    horizon = e2e.client.get("/v1/metrics/events", params={"start": t0}).json()["horizon"]
    assert horizon is not None
    _check(e2e, expected, t0, "batch")


def test_unreadable_and_all_bad_bodies_get_specific_errors(e2e: Stack) -> None:
    response = e2e.client.post(
        "/v1/events",
        content=b"\xff\xfe not utf-8",
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unreadable_body"
    response = e2e.client.post("/v1/events", json=[{"event_id": "a", "type": "t"}])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_valid_events"
    assert error["details"]["rejected"][0]["error"].startswith("ts: is required")


def test_admin_needs_the_token(e2e: Stack) -> None:
    response = e2e.client.post("/v1/admin/batch")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["error"]["message"]
