"""Event-time correctness on the real stack, stage by stage: out-of-order, late within the
allowed lateness, too late, duplicate; then a batch run, then a late event just before
the horizon corrected by the next (incremental) run. Every event goes to one log
partition, so the watermark each one meets is known."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from stratum.producer import partition_for
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000
_ids: Iterator[str] = (f"et-{i}" for i in itertools.count() if partition_for(f"et-{i}", 4) == 0)


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("eventtime")  # allowed lateness 60 s


_posted: list[dict[str, Any]] = []  # every event made here, to wait for in the archive


def _event(ts: int, **extra: Any) -> dict[str, Any]:
    event = {"event_id": next(_ids), "ts": ts, "type": "x", "country": "DE", **extra}
    _posted.append(event)
    return event


def _windows(stack: Stack, start: int, end: int) -> dict[int, tuple[float, str]]:
    body = stack.client.get("/v1/metrics/events", params={"start": start, "end": end}).json()
    return {p["t_ms"]: (p["value"], p["source"]) for s in body["series"] for p in s["points"]}


def _late_count(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("stratum_speed_late_events_total "))
    return float(line.split()[1])


def test_windows_through_their_life(stack: Stack) -> None:
    t = int(time.time() * 1000) - 3 * 3_600_000
    t -= t % 3_600_000  # an hour boundary, three hours ago
    w0, w1, w2 = t, t + MINUTE, t + 2 * MINUTE
    span = (t, t + 12 * MINUTE)

    # Open: out of order within one window.
    first = [_event(t + 10_000), _event(t + 20_000), _event(t + 5_000)]
    stack.post_events(first)
    assert _windows(stack, *span) == {w0: (3.0, "speed")}

    # The watermark passes W0 (newest t+150 s minus 60 s lateness = t+90 s).
    stack.post_events([_event(t + 150_000)])
    late_before = _late_count(stack.client)
    stack.post_events([_event(t + 70_000)])  # late but within lateness
    too_late = _event(t + 30_000)
    stack.post_events([too_late], wait=False)  # too late for W0
    stack.post_events([dict(first[0])], wait=False)  # a duplicate of a W0 event
    wait_until(lambda: _late_count(stack.client) >= late_before + 1, 30, "the late event")
    time.sleep(1.0)  # the duplicate, dropped, leaves no trace to wait on
    listed = wait_until(
        lambda: [
            e
            for e in stack.client.get("/v1/late-events", params={"limit": 500}).json()["items"]
            if e["event_id"] == too_late["event_id"]
        ],
        10,
        "the late event listed",
    )
    assert listed[0]["reason"].startswith("its window had closed")
    assert listed[0]["ts_ms"] == too_late["ts"]
    assert _windows(stack, *span) == {w0: (3.0, "speed"), w1: (1.0, "speed"), w2: (1.0, "speed")}

    # A batch run: the too-late event is in W0, the duplicate is not; a current event
    # after the horizon stays with speed.
    clock = t + 10 * MINUTE
    stack.post_events([_event(clock + 1_000)])
    stack.wait_archived(_posted)
    job = stack.run_batch()
    assert job["horizon"] is not None
    after_batch = _windows(stack, *span)
    assert after_batch == {
        w0: (4.0, "batch"),
        w1: (1.0, "batch"),
        w2: (1.0, "batch"),
        clock: (1.0, "speed"),
    }

    drift = stack.client.get(
        "/v1/drift", params={"metric": "events", "start": t, "end": t + 3 * MINUTE}
    ).json()
    by_t = {p["t_ms"]: p for p in drift["points"]}
    assert by_t[w0]["speed"] == 3.0 and by_t[w0]["batch"] == 4.0
    assert by_t[w0]["reason"] == "late events: 1 arrived after the watermark"
    assert by_t[w1]["reason"] == "none"

    # A late event just before the horizon: speed leaves it, the next incremental run
    # recomputes that hour only and serves the corrected W1. No gap, no double count.
    just_before = _event(t + 80_000)
    stack.post_events([just_before], wait=False)
    stack.wait_archived([just_before])
    second = stack.run_batch()
    assert second["rows_in"] < job["rows_in"] + 10  # one dirty hour, not the history
    assert _windows(stack, *span) == {
        w0: (4.0, "batch"),
        w1: (2.0, "batch"),
        w2: (1.0, "batch"),
        clock: (1.0, "speed"),
    }
    total = stack.client.get(
        "/v1/metrics/events", params={"start": t, "end": t + 12 * MINUTE, "step": "1h"}
    ).json()
    points = [p for s in total["series"] for p in s["points"]]
    assert [(p["value"], p["source"]) for p in points] == [(8.0, "mixed")]
