"""One request cannot stall the API (issue 17, finding 5): the worst ingest bodies that fit
the limits, sent together, while a second client polls ``/v1/health``.

Before: ``[0,0,...]`` with 4,000,000 items took 42.5 s on the event loop, stalled health
for 41.5 s and grew the server by 4 GB. Now parsing runs in a worker thread, one body at
a time, behind a cheap bound on JSON values and a cap on events per body, and the answer
lists at most a few rejections. The stack runs in this process, so this process's RSS
is the server's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import psutil
import pytest

from ingest.parsing import BodyLimits
from tests.faults.conftest import BrokerStack

pytestmark = [pytest.mark.faults, pytest.mark.integration]
HEALTH_BOUND_S = 1.0  # the requirement; typical answers take a few ms
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


def _array(unit: bytes, count: int) -> bytes:
    return b"[" + b",".join([unit] * count) + b"]"


def hostile_bodies(max_body: int, limits: BodyLimits) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each of the shapes that cost most, at the largest size the limits let through to
    the step that refuses it (or answers it)."""
    # Empty objects: the most Python objects per byte a parse can be made to build; as
    # many as the value bound allows (each costs a comma and a brace).
    empties = (limits.max_values - 1) // 2
    # Events that are all rejected, as many as a body may hold: the longest answer.
    bad = orjson.dumps({"event_id": 1, "ts": 0, "type": "t"})
    return {
        "issue repro [0,...] 4 M items": (_array(b"0", 4_000_000), JSON),
        "[0,...] to the body limit": (_array(b"0", (max_body - 2) // 2), JSON),
        f"[{{}},...] {empties:,} items": (_array(b"{}", empties), JSON),
        f"{limits.max_items:,} rejected events": (_array(bad, limits.max_items), JSON),
        f"NDJSON {limits.max_items:,} rejected lines": (
            b"\n".join([bad] * limits.max_items),
            NDJSON,
        ),
    }


def test_worst_bodies_at_the_limits_leave_health_responsive_and_memory_bounded(
    broker_stack: Callable[..., BrokerStack], figures: Callable[[str, str], None]
) -> None:
    stack = broker_stack("bounds").stack
    api = stack.settings.api
    limits = BodyLimits(max_items=api.max_events_per_body)
    bodies = hostile_bodies(api.max_body_bytes, limits)
    assert all(len(body) <= api.max_body_bytes for body, _ in bodies.values())
    process = psutil.Process()
    baseline_mb = process.memory_info().rss / 2**20
    latencies: list[float] = []
    peak_mb = baseline_mb
    answers: dict[str, tuple[int, float, dict[str, Any], int]] = {}
    done = threading.Event()

    def poll_health() -> None:
        nonlocal peak_mb
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            while not done.is_set():
                started = time.monotonic()
                assert client.get("/v1/health").status_code == 200
                latencies.append(time.monotonic() - started)
                peak_mb = max(peak_mb, process.memory_info().rss / 2**20)
                time.sleep(0.05)

    def post(name: str, body: bytes, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=stack.base_url, timeout=120) as client:
            started = time.monotonic()
            response = client.post("/v1/events", content=body, headers=headers)
            answers[name] = (
                response.status_code,
                time.monotonic() - started,
                response.json(),
                len(response.content),
            )

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    time.sleep(0.3)  # a few quiet samples first
    senders = [
        threading.Thread(target=post, args=(name, body, headers), daemon=True)
        for name, (body, headers) in bodies.items()
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=180)
    done.set()
    poller.join(timeout=30)

    assert set(answers) == set(bodies), answers.keys()
    for name, (status, _, body, size) in answers.items():
        if "rejected" in name:
            assert status == 422, (name, body)
            details = body["error"]["details"]
            assert details["rejected_count"] == limits.max_items
            assert len(details["rejected"]) == api.max_rejections_listed
            assert "event_id" in details["rejected"][0]["error"]
            assert size < 64 * 1024, (name, size)
        else:
            assert status == 413, (name, body)
            assert body["error"]["code"] == "too_many_events", body
    worst_s = max(latencies)
    lines = [
        f"{name}: HTTP {status} in {took:.2f} s, answer {size:,} B"
        for name, (status, took, _, size) in answers.items()
    ]
    figures("request bounds", "; ".join(lines))
    figures(
        "request bounds",
        f"/v1/health during them: {len(latencies)} polls, max "
        f"{worst_s * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f}"
        f" ms; process RSS {baseline_mb:.0f} MB -> peak {peak_mb:.0f} MB "
        f"(+{peak_mb - baseline_mb:.0f} MB)",
    )
    assert worst_s < HEALTH_BOUND_S, latencies
    assert peak_mb - baseline_mb < 1024, (baseline_mb, peak_mb)
