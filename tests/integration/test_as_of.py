"""As-of reads on a running stack: ``/v1/metrics/{name}?as_of=T`` answers what was served
at T, before and after batch corrections of a window (late events the speed layer
never counted), with the superseded batch version kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.stack import Stack, stack_settings, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000
HOUR = 3_600_000


@pytest.fixture(scope="module")
def stack(session_dir: Path, clickhouse_url: str) -> Iterator[Stack]:
    """A stack that keeps superseded batch versions for an hour (the default keeps none)."""
    base = stack_settings(session_dir, "asof", clickhouse_url, free_port())
    settings = base.model_copy(
        update={"batch": base.batch.model_copy(update={"keep_versions_s": 3600.0})}
    )
    stack = Stack(settings, dashboard=False)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _read(stack: Stack, start: int, as_of: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start, "end": start + MINUTE}
    if as_of is not None:
        params["as_of"] = as_of
    response = stack.client.get("/v1/metrics/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _value(body: dict[str, Any]) -> tuple[float, str] | None:
    points = [p for s in body["series"] for p in s["points"]]
    if not points:
        return None
    return sum(p["value"] for p in points), points[0]["source"]


def _late(stack: Stack, window: int, tag: str) -> None:
    stack.post_events(
        [{"event_id": f"asof-late-{tag}", "ts": window + 30_000, "type": "view", "country": "DE"}],
        wait=False,
    )


def test_values_before_and_after_batch_corrections(stack: Stack) -> None:
    t0 = int(time.time() * 1000) - 2 * HOUR
    window = t0 - t0 % HOUR + MINUTE
    stack.post_events(
        [
            {"event_id": f"asof-{i}", "ts": window + i * 1_000, "type": "view", "country": "DE"}
            for i in range(5)
        ]
    )
    now = int(time.time() * 1000)  # every partition's watermark passes the window:
    stack.post_events(
        [
            {"event_id": f"asof-now-{i}", "ts": now, "type": "view", "country": "DE"}
            for i in range(40)
        ]
    )  # ids spread over partitions
    assert _value(_read(stack, window)) == (5.0, "speed")
    before_batch = int(time.time() * 1000)

    _late(stack, window, "1")  # late: speed never counts it; batch does, from the archive
    wait_until(
        lambda: stack.run_batch() and _value(_read(stack, window)) == (6.0, "batch"),
        60,
        "the first correction",
        interval_s=1.0,
    )
    after_first = int(time.time() * 1000)
    _late(stack, window, "2")
    wait_until(
        lambda: stack.run_batch() and _value(_read(stack, window)) == (7.0, "batch"),
        60,
        "the second correction",
        interval_s=1.0,
    )

    then = _read(stack, window, as_of=before_batch)
    assert _value(then) == (5.0, "speed")
    assert then["horizon_ms"] is None
    middle = _read(stack, window, as_of=after_first)
    assert _value(middle) == (6.0, "batch")  # the superseded version is still there
    assert middle["horizon_ms"] is not None and middle["horizon_ms"] <= after_first
    assert _value(_read(stack, window, as_of=int(time.time() * 1000))) == (7.0, "batch")

    too_old = stack.client.get(
        "/v1/metrics/events", params={"start": window, "end": window + MINUTE, "as_of": "now-2h"}
    )
    assert too_old.status_code == 422
    assert "STRATUM_BATCH__KEEP_VERSIONS_S" in too_old.json()["error"]["message"]
