"""The log becomes unreachable mid-stream, then comes back.

Why SIGSTOP/SIGCONT and not a restart: the embedded broker (tansu) keeps its log in
memory, so a restarted one is a new, empty log (a new epoch: offsets start at 0 again,
the consumer group's commits are gone). That tests data loss by the broker, which no
client can prevent; a real Kafka cluster keeps its log across restarts. Pausing the
process is what a network partition or a stalled broker looks like to clients: open
connections that stop answering.

While it is paused, ingest must answer 503 with Retry-After within its timeout (never
202 for events the log did not take) and /v1/health must say the log is down; after
it resumes, the speed layer must pick up again by itself, and every event a client got
a 202 for (directly, or on a retry after a 503) must be counted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.conftest import BrokerStack
from tests.processes import broker_pid
from tests.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
MINUTE = 60_000
INGEST_TIMEOUT_S = 2.0
PAUSE_S = 8.0  # longer than the consumer session timeout (4 s): the group must re-form


def _batch(prefix: str, t0: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "ts": t0 + (i * 613) % MINUTE,
            "type": "outage",
            "country": "DE",
        }
        for i in range(n)
    ]


def test_ingest_answers_503_while_the_log_is_away_and_the_worker_recovers(
    broker_stack: Callable[..., BrokerStack], figures: Any
) -> None:
    running = broker_stack("outage", ingest_timeout_s=INGEST_TIMEOUT_S)
    stack, pid = running.stack, broker_pid(running.broker)
    now = int(time.time() * 1000)
    t0 = now - 30 * MINUTE
    t0 -= t0 % MINUTE
    span = (t0, t0 + MINUTE)
    accepted: set[str] = set()

    before = _batch("before", t0, 100)
    assert stack.post_events(before)["accepted"] == len(before)
    accepted.update(e["event_id"] for e in before)

    refused: list[list[dict[str, Any]]] = []
    latencies: list[float] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        paused_at = time.monotonic()
        for n in range(3):
            batch = _batch(f"during{n}", t0, 50)
            started = time.monotonic()
            response = stack.client.post("/v1/events", json=batch)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "log_unavailable"
            refused.append(batch)
        health = stack.client.get("/v1/health").json()
        assert health["components"]["broker"]["status"] == "down", health
        time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
    finally:
        os.kill(pid, signal.SIGCONT)

    # Clients retry what got a 503, with the same event ids, as Retry-After asks.
    retries = 0
    for batch in refused:

        def retried(batch: list[dict[str, Any]] = batch) -> bool:
            nonlocal retries
            retries += 1
            return stack.client.post("/v1/events", json=batch).status_code == 202

        wait_until(retried, 60, "ingest to accept again after the log came back", 1.0)
        accepted.update(e["event_id"] for e in batch)
    after = _batch("after", t0, 100)
    response = stack.client.post("/v1/events", json=after)
    assert response.status_code == 202, response.text
    accepted.update(e["event_id"] for e in after)

    started = time.monotonic()
    wait_until(
        lambda: stack.total("events", *span, type="outage") >= len(accepted),
        90,
        "the speed layer to count every accepted event after the outage",
    )
    recovered_s = time.monotonic() - started
    wait_until(
        lambda: stack.client.get("/v1/health").json()["status"] == "ok",
        30,
        "/v1/health to be ok again",
    )
    time.sleep(2)  # anything counted twice would show up in the next flushes
    counted = stack.total("events", *span, type="outage")
    figures(
        "broker outage",
        f"pause={PAUSE_S:.0f}s 503s={len(latencies)} 503 latency "
        f"max={max(latencies):.2f}s (ingest timeout {INGEST_TIMEOUT_S:.0f}s) "
        f"retries until 202={retries} accepted={len(accepted)} counted={counted:.0f} "
        f"lost={max(0, len(accepted) - counted):.0f} "
        f"extra={max(0, counted - len(accepted)):.0f} caught up {recovered_s:.1f}s "
        "after the last post",
    )
    assert max(latencies) < INGEST_TIMEOUT_S + 1.5
    assert counted == len(accepted)
