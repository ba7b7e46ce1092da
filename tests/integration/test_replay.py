"""Kappa replay on the real stack: a new generation rebuilt from archive + log while
readers keep the live one, an atomic switch, nothing lost or counted twice, cancel,
a killed replay, concurrent triggers, and a changed definition over all of history."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from serving.queries import MetricReader, SeriesRequest
from speed_layer.replay import ReplayRunner
from speed_layer.replay_service import ReplayService
from stratum.metrics import load_catalog, parse_catalog
from stratum.storage import generations, open_storage
from stratum.storage.jobs import JobStore
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("replay")


def _history(t0: int, n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "ts": t0 + (i * 7_919) % (20 * MINUTE),
            "type": "view",
            "country": "DE" if i % 3 else "FR",
            "amount": float(i % 50),
            "user_id": f"u{i % 37}",
        }
        for i in range(n)
    ]


def _counts(stack: Stack, start: int, end: int) -> dict[int, float]:
    body = stack.client.get("/v1/metrics/events", params={"start": start, "end": end}).json()
    out: dict[int, float] = {}
    for series in body["series"]:
        for p in series["points"]:
            out[p["t_ms"]] = out.get(p["t_ms"], 0) + p["value"]
    return out


def _expected(events: list[dict[str, Any]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for e in events:
        start = e["ts"] - e["ts"] % MINUTE
        out[start] = out.get(start, 0) + 1
    return out


def _wait_job(stack: Stack, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = stack.client.get(f"/v1/admin/jobs/{job_id}", headers=stack.admin_headers).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(done, timeout_s, f"replay job {job_id}")
    return result


def test_replay_switches_generations_without_losing_or_double_counting(stack: Stack) -> None:
    t0 = int(time.time() * 1000) - 4 * 3_600_000
    t0 -= t0 % 3_600_000
    history = _history(t0, 600, "h")
    stack.post_events(history)
    stack.wait_archived(history)
    span = (t0, t0 + 30 * MINUTE)
    expected = _expected(history)
    assert _counts(stack, *span) == expected
    live_before = stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()

    response = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json={})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    second = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json={})
    assert second.status_code == 409
    assert second.json()["error"]["details"]["job_id"] == job_id

    # Readers never see a half-built generation; events arriving meanwhile count once.
    # (They are current: events for the history windows would now be too late.)
    now = int(time.time() * 1000)
    during = [
        {"event_id": f"d-{i}", "ts": now - 30_000 + i * 100, "type": "view", "country": "DE"}
        for i in range(300)
    ]
    now_span = (now - 120_000, now + 120_000)
    stop = threading.Event()
    seen: list[dict[int, float]] = []

    def poll() -> None:
        while not stop.is_set():
            seen.append(_counts(stack, *span))
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for chunk in (during[:150], during[150:]):
            stack.post_events(chunk, wait=False)
            time.sleep(0.5)
        job = _wait_job(stack, job_id)
    finally:
        stop.set()
        poller.join()
    assert job["state"] == "succeeded", job
    generation = stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()
    assert generation["live"] == job["params"]["generation"] > live_before["live"]
    assert generation["handoff"] is None

    assert all(snapshot == expected for snapshot in seen)  # history: always whole
    wait_until(
        lambda: sum(_counts(stack, *now_span).values()) == len(during),
        30,
        "every event posted during the replay, exactly once",
    )
    assert _counts(stack, *span) == expected
    # The live worker carries on in the new generation.
    stack.post_events([{"event_id": "after-switch", "ts": now, "type": "view"}])
    assert sum(_counts(stack, *now_span).values()) == len(during) + 1


def test_a_replay_right_after_a_switch_hands_off_with_quiet_partitions(stack: Stack) -> None:
    """After a switch the live worker reloads a partition only when a message arrives;
    the next hand-off must still get a position for every partition (it once waited for
    the quiet ones until its deadline and failed)."""
    live = [stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()["live"]]
    for _ in range(2):
        job_id = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json={}).json()[
            "job_id"
        ]
        job = _wait_job(stack, job_id)
        assert job["state"] == "succeeded", job
        live.append(
            stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()["live"]
        )
    assert live[0] < live[1] < live[2]


def test_cancel_leaves_the_live_generation_untouched(stack: Stack) -> None:
    before = stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()
    job_id = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json={}).json()[
        "job_id"
    ]
    cancel = stack.client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=stack.admin_headers)
    assert cancel.status_code == 200
    job = _wait_job(stack, job_id)
    assert job["state"] in ("cancelled", "succeeded")  # a very quick replay may win the race
    after = stack.client.get("/v1/admin/generation", headers=stack.admin_headers).json()
    if job["state"] == "cancelled":
        assert after == before


def test_a_killed_replay_is_failed_and_its_generation_dropped(stack: Stack) -> None:
    storage = open_storage(stack.settings)
    jobs = JobStore(storage)
    live = generations.live_generation(storage)
    orphan = live + 50
    storage.insert(
        "speed_checkpoints",
        [[orphan, "x:0", 1, 0, 0, datetime.now(tz=UTC)]],
        ("generation", "source_id", "through_offset", "watermark_ms", "max_event_ms", "updated_at"),
    )
    job = jobs.save(
        jobs.create("replay", "api", {}).model_copy(
            update={"state": "running", "params": {"generation": orphan}}
        )
    )
    generations.request_handoff(storage, orphan)
    service = ReplayService(
        stack.settings,
        load_catalog(stack.settings.metrics_file),
        storage,
        stack.bootstrap,
        stack.log_epoch,
    )
    service._recover()  # what a restarted worker does first
    found = jobs.get(job.job_id)
    assert found is not None and found.state == "failed" and "interrupted" in found.error
    assert generations.read_state(storage) == generations.GenerationState(live, None)
    wait_until(
        lambda: (
            not storage.query(
                f"SELECT count() FROM {storage.database}.speed_checkpoints "
                "WHERE generation = {g:UInt32}",
                {"g": orphan},
            )[0][0]
        ),
        20,
        "the orphan dropped",
    )


def test_a_changed_definition_gets_its_values_over_all_history(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack("replay_definition")  # history must be on time for its speed layer
    t0 = int(time.time() * 1000) - 6 * 3_600_000
    t0 -= t0 % 3_600_000
    history = _history(t0, 300, "c")
    stack.post_events(history)
    stack.wait_archived(history)
    catalog = parse_catalog(
        {
            "metric": [
                *[m.model_dump() for m in load_catalog(stack.settings.metrics_file).metrics],
                {
                    "name": "fr_amount",
                    "aggregation": "sum",
                    "field": "amount",
                    "where": {"country": "FR"},
                },
            ]
        }
    )
    storage = open_storage(stack.settings)
    runner = ReplayRunner(stack.settings, catalog, storage, stack.bootstrap, stack.log_epoch)
    generation = asyncio.run(runner.run(None, lambda _: None, lambda: False))
    assert generations.live_generation(storage) == generation
    metric = catalog.get("fr_amount")
    assert metric is not None
    series, _ = MetricReader(storage).series(SeriesRequest(metric, t0, t0 + 3_600_000, 3_600_000))
    want = sum(e["amount"] for e in history if e["country"] == "FR")
    assert series[0].points[0].value == pytest.approx(want)
