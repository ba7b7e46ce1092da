"""Ingest's memory stays bounded when what is downstream of it falls behind.

A lagging speed layer never reaches ingest: the log holds the backlog (that is what it
is for), and ingest waits only for the log's acknowledgement. So the worst case for
ingest is the log itself not acknowledging: every request then holds its body until
the ingest timeout. Here the log is paused and a burst of concurrent requests arrives;
ingest must hold at most ``max_in_flight_bytes`` of bodies and turn the rest away at
once with 429 and Retry-After, and take events again when the log is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.faults.conftest import BrokerStack
from tests.processes import broker_pid
from tests.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
LIMIT = 1024 * 1024
BODY_EVENTS = 800  # ~190 KB per request
REQUESTS = 16


def _body(n: int, t0: int) -> bytes:
    return orjson.dumps(
        [
            {
                "event_id": f"bp-{n}-{i}",
                "ts": t0 + i,
                "type": "pressure",
                "page": "/product/" + "x" * 150,
            }
            for i in range(BODY_EVENTS)
        ]
    )


async def _burst(base_url: str, bodies: list[bytes]) -> list[tuple[int, float, str | None]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(body: bytes) -> tuple[int, float, str | None]:
            started = time.monotonic()
            response = await client.post(
                "/v1/events", content=body, headers={"content-type": "application/json"}
            )
            return (
                response.status_code,
                time.monotonic() - started,
                response.headers.get("retry-after"),
            )

        return await asyncio.gather(*(one(b) for b in bodies))


def test_ingest_holds_at_most_its_budget_and_sheds_the_rest_with_429(
    broker_stack: Callable[..., BrokerStack], figures: Any
) -> None:
    running = broker_stack(
        "pressure", max_body_bytes=256 * 1024, max_in_flight_bytes=LIMIT, ingest_timeout_s=3.0
    )
    stack = running.stack
    budget_of = stack._server.config.app.state  # noqa: SLF001 - reading the budget's figures
    t0 = int(time.time() * 1000) - 600_000
    bodies = [_body(n, t0) for n in range(REQUESTS)]
    assert sum(map(len, bodies)) > 2 * LIMIT

    os.kill(broker_pid(running.broker), signal.SIGSTOP)
    try:
        results = asyncio.run(_burst(stack.base_url, bodies))
    finally:
        os.kill(broker_pid(running.broker), signal.SIGCONT)
    budget = budget_of.ingest_budget

    shed = [r for r in results if r[0] == 429]
    held = [r for r in results if r[0] == 503]
    assert {r[0] for r in results} <= {429, 503}, results
    assert shed and held, results
    assert all(r[2] == "1" for r in shed) and all(r[2] for r in held)
    assert max(r[1] for r in shed) < 1.5, "429 must be immediate, not after the timeout"
    assert budget.peak_bytes <= LIMIT
    assert budget.used_bytes == 0

    def accepted_again() -> bool:
        return (
            stack.client.post(
                "/v1/events", content=bodies[0], headers={"content-type": "application/json"}
            ).status_code
            == 202
        )

    wait_until(accepted_again, 60, "ingest to accept again once the log is back", 1.0)
    figures(
        "backpressure",
        f"burst={REQUESTS} x {len(bodies[0]) // 1024} KiB with the log "
        f"paused: held={len(held)} (503 after {max(r[1] for r in held):.1f}s) "
        f"shed={len(shed)} (429 in <= {max(r[1] for r in shed):.2f}s) peak held="
        f"{budget.peak_bytes // 1024} KiB of {LIMIT // 1024} KiB",
    )
