"""ClickHouse refuses writes for a while: the speed layer's flushes back off and retry,
no offset is committed to Kafka for events that are not in ClickHouse yet, /v1/health
shows the worker down during the outage and ok after, and the windows come out exact.

The fault is injected at the storage boundary the speed layer writes through: a
:class:`Storage` whose inserts raise :class:`StorageUnavailableError` (what a dropped
connection to a ClickHouse server becomes) while the outage lasts. Everything around it,
Faust, the broker, chDB, the retry and commit logic, is the real thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import stratum.app.roles
from stratum.settings import Settings
from stratum.storage import Storage, StorageUnavailableError, open_storage
from tests.faults.conftest import BrokerStack
from tests.processes import committed_offsets
from tests.stack import Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
MINUTE = 60_000
OUTAGE_S = 6.0


class Outage:
    """When writes fail, and every insert refused meanwhile."""

    def __init__(self) -> None:
        self.until = 0.0
        self.refused: list[float] = []

    @property
    def active(self) -> bool:
        return time.monotonic() < self.until


class FlakyStorage(Storage):
    """The real Storage, except that every write fails while ``outage`` is active."""

    outage: Outage

    def _refuse(self, table: str) -> None:
        if self.outage.active:
            self.outage.refused.append(time.monotonic())
            raise StorageUnavailableError(
                f"ClickHouse unreachable during insert into {table} (injected)"
            )

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        if rows:
            self._refuse(table)
        super().insert(table, rows, columns)

    def insert_arrow(self, table: str, arrow_table: Any) -> None:
        self._refuse(table)
        super().insert_arrow(table, arrow_table)


def _events(prefix: str, t0: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "ts": t0 + (i * 331) % MINUTE,
            "type": "chdown",
            "country": "FR" if i % 2 else "DE",
        }
        for i in range(n)
    ]


def _worker(stack: Stack) -> dict[str, str]:
    found: dict[str, str] = stack.client.get("/v1/health").json()["components"]["worker"]
    return found


def test_flushes_back_off_and_nothing_is_committed_before_it_is_stored(
    broker_stack: Callable[..., BrokerStack], monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    outage = Outage()

    def flaky_open(settings: Settings, **kwargs: Any) -> Storage:
        real = open_storage(settings, **kwargs)  # creates the schema once
        storage = FlakyStorage(real.url, real.database)
        storage.outage = outage
        return storage

    monkeypatch.setattr(stratum.app.roles, "open_storage", flaky_open)
    running = broker_stack("chdown")
    stack = running.stack
    kafka = stack.settings.kafka
    group = stack.settings.speed.consumer_group

    def commits() -> int:
        offsets = asyncio.run(
            committed_offsets(running.broker.bootstrap, group, kafka.topic, kafka.partitions)
        )
        return sum(offsets.values())

    t0 = int(time.time() * 1000) - 20 * MINUTE
    t0 -= t0 % MINUTE
    span = (t0, t0 + MINUTE)
    first = _events("a", t0, 200)
    stack.post_events(first)

    def settled() -> bool:
        current = commits()
        time.sleep(1.5)  # longer than Faust's commit interval
        return commits() == current

    wait_until(settled, 30, "the commits of the first events to settle")
    baseline = commits()

    second = _events("b", t0, 300)
    outage.until = time.monotonic() + OUTAGE_S
    response = stack.client.post("/v1/events", json=second)
    assert response.status_code == 202, response.text  # ingest needs Kafka only
    seen_down = False
    while outage.active:
        worker = _worker(stack)
        seen_down = seen_down or (
            worker["status"] == "down" and "flush failing" in worker["detail"]
        )
        assert commits() == baseline, "offsets were committed for events not in ClickHouse"
        assert stack.total("events", *span, type="chdown") == len(first)
        time.sleep(0.5)
    assert seen_down, "/v1/health never showed the worker down during the outage"

    wait_until(
        lambda: stack.total("events", *span, type="chdown") == len(first) + len(second),
        60,
        "the retried flush to store the second batch",
    )
    wait_until(lambda: _worker(stack)["status"] == "ok", 30, "the worker to be ok again")
    wait_until(lambda: commits() > baseline, 30, "the offsets to be committed after the flush")
    time.sleep(1.5)
    assert stack.total("events", *span, type="chdown") == len(first) + len(second)

    gaps = [round(b - a, 1) for a, b in zip(outage.refused, outage.refused[1:], strict=False)]
    figures(
        "clickhouse outage",
        f"outage={OUTAGE_S:.0f}s refused inserts="
        f"{len(outage.refused)} gaps between attempts={gaps}s commits during outage=0 "
        f"counted={len(first) + len(second)} of {len(first) + len(second)}",
    )
    assert 2 <= len(outage.refused) <= 5, "flushes were not retried with back-off"
    assert gaps == sorted(gaps) and gaps[-1] >= 1.5 * gaps[0]
