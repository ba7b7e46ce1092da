"""Kappa replay from a time, on the real stack: it never opens a hole (windows before its
start stay served, from batch or carried over), it finishes on an idle stream, and the
CLI and the job say what range it rebuilds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from stratum.app.cli import main
from stratum.storage import open_storage
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("replay_range")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _minutes(t0: int, first: int, last: int, prefix: str) -> list[dict[str, Any]]:
    """20 events a minute, in event-time order."""
    return [
        {
            "event_id": f"{prefix}-{m}-{i}",
            "ts": t0 + m * MINUTE + i * 2_900,
            "type": "view",
            "country": "DE" if i % 3 else "FR",
        }
        for m in range(first, last + 1)
        for i in range(20)
    ]


def _points(stack: Stack, start: int, end: int) -> dict[int, tuple[float, str]]:
    body = stack.client.get("/v1/metrics/events", params={"start": start, "end": end}).json()
    return {
        p["t_ms"]: (p["value"], p["source"]) for series in body["series"] for p in series["points"]
    }


def _replay(stack: Stack, body: dict[str, Any]) -> str:
    response = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _job(stack: Stack, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = stack.client.get(f"/v1/admin/jobs/{job_id}", headers=stack.admin_headers).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(done, timeout_s, f"replay job {job_id}")
    return result


def test_a_replay_after_the_batch_horizon_keeps_every_window(stack: Stack) -> None:
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    t0 -= t0 % 3_600_000
    stack.post_events(_minutes(t0, 0, 4, "a"))

    def batch_horizon() -> bool:  # once archived, batch serves minutes 0-2
        horizon = stack.run_batch()["horizon"]
        return (
            horizon is not None
            and datetime.fromisoformat(horizon).timestamp() * 1000 >= t0 + 3 * MINUTE
        )

    wait_until(batch_horizon, 30, "a batch horizon at minute 3", interval_s=1)
    stack.post_events(_minutes(t0, 5, 11, "b"))
    span = (t0, t0 + 12 * MINUTE)
    before = _points(stack, *span)
    assert {t: v for t, (v, _) in before.items()} == {
        t0 + m * MINUTE: 20.0 for m in (*range(5), *range(5, 12))
    }
    assert [before[t0 + m * MINUTE][1] for m in (2, 3)] == ["batch", "speed"]

    # From 8:30: rebuilt from 8:00 (a whole minute); 3-7 after the horizon are carried.
    job_id = _replay(stack, {"from": str(t0 + 8 * MINUTE + 30_000)})
    stop = threading.Event()
    seen: list[dict[int, tuple[float, str]]] = []

    def poll() -> None:
        while not stop.is_set():
            seen.append(_points(stack, *span))
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        job = _job(stack, job_id)
        for _ in range(10):  # and a moment after the switch
            seen.append(_points(stack, *span))
    finally:
        stop.set()
        poller.join()
    assert job["state"] == "succeeded", job
    changed = [(t, before.get(t), s.get(t)) for s in seen for t in before if s.get(t) != before[t]]
    assert not changed, f"windows changed during or after the replay: {changed[:5]}"
    assert job["params"]["rebuild_from_ms"] == t0 + 8 * MINUTE
    assert job["params"]["carried_rows"] > 0


def test_the_cli_and_the_job_name_the_rebuilt_range(stack: Stack) -> None:
    from_ms = int(time.time() * 1000) - 90_000
    from_ms = from_ms - from_ms % MINUTE + 15_250  # 15.25 s into a minute
    start = from_ms - from_ms % MINUTE
    result = CliRunner().invoke(
        main,
        [
            "replay",
            "--url",
            stack.base_url,
            "--token",
            stack.settings.api.admin_token,
            "--from",
            _iso(from_ms),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"rebuilds windows from {_iso(start)}" in result.output
    assert "carried over from the live generation" in result.output
    jobs = stack.client.get(
        "/v1/admin/jobs", params={"kind": "replay", "limit": 1}, headers=stack.admin_headers
    ).json()["jobs"]
    params = jobs[0]["params"]
    assert (params["from_ms"], params["rebuild_from_ms"]) == (from_ms, start)
    assert params["rebuilds"] == f"windows from {_iso(start)}"
    assert isinstance(params["carried_rows"], int)


def test_a_replay_on_an_idle_stream_finishes_within_seconds(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack("replay_idle", speed={"idle_timeout_s": 1})
    storage = open_storage(stack.settings)
    # The only event is the warm-up (a year old); the idle timeout has moved the live event-time
    # clock on to about now, ahead of any event the replay reads.
    wait_until(
        lambda: (
            storage.query(
                f"SELECT max(max_event_ms) FROM {storage.database}.speed_checkpoints FINAL"
            )[0][0]
            > time.time() * 1000 - 10_000
        ),
        20,
        "the idle clock in the live checkpoints",
    )
    started = time.monotonic()
    job = _job(stack, _replay(stack, {}), timeout_s=15)
    assert job["state"] == "succeeded", job
    assert time.monotonic() - started < 15
