"""Live metric definitions on a running stack: add, change and delete a metric through
the admin API with no restart; the served values equal those of a stack started with
the equivalent file; a reader polling during a change never sees a mix of the two
definitions or a missing window."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serving.live_definitions import LiveDefinitions
from serving.queries import MetricReader, SeriesRequest
from stratum.definitions import catalog_document, document_toml, put_metric
from stratum.metrics import load_catalog
from stratum.storage import open_storage
from stratum.storage.definitions import DefinitionStore
from tests.conftest import free_port
from tests.stack import Stack, stack_settings, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000
HOUR = 3_600_000
NEW = {
    "aggregation": "count",
    "where": {"type": "purchase"},
    "dimensions": ["country"],
    "windows": ["1m", "1h"],
    "unit": "purchases",
}
CHANGED = {
    "aggregation": "max",
    "field": "amount",
    "where": {"type": "purchase"},
    "dimensions": ["country"],
    "windows": ["1m", "5m", "1h"],
    "unit": "EUR",
}


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack("livedefs")


def _history(t0: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"ld-{i}",
            "ts": t0 + (i * 7_919) % (20 * MINUTE),
            "type": "purchase" if i % 2 else "view",
            "country": "DE" if i % 3 else "FR",
            "amount": float(i % 50),
        }
        for i in range(n)
    ]


def _values(stack: Stack, metric: str, start: int, end: int) -> dict[int, float] | None:
    """Buckets -> value of one metric (None: the API asked to retry, 409)."""
    response = stack.client.get(f"/v1/metrics/{metric}", params={"start": start, "end": end})
    if response.status_code == 409:
        return None
    assert response.status_code == 200, response.text
    return {p["t_ms"]: p["value"] for s in response.json()["series"] for p in s["points"]}


def _per_minute(
    events: list[dict[str, Any]],
    fold: Callable[[list[float]], float],
    value: Callable[[dict[str, Any]], float],
) -> dict[int, float]:
    buckets: dict[int, list[float]] = {}
    for e in events:
        buckets.setdefault(e["ts"] - e["ts"] % MINUTE, []).append(value(e))
    return {t: fold(vs) for t, vs in buckets.items()}


def _job(stack: Stack, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = stack.client.get(f"/v1/admin/jobs/{job_id}", headers=stack.admin_headers).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job: dict[str, Any] = wait_until(done, timeout_s, f"job {job_id}")
    assert job["state"] == "succeeded", job
    return job


def _put(stack: Stack, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    response = stack.client.put(
        f"/v1/admin/metrics/{name}",
        json=fields,
        headers=stack.admin_headers,
        params={"reason": "test"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_add_change_delete_without_restart(stack: Stack, tmp_path: Path) -> None:
    t0 = int(time.time() * 1000) - 3 * HOUR
    t0 -= t0 % HOUR
    history = _history(t0, 800)
    stack.post_events(history)
    span = (t0, t0 + 30 * MINUTE)
    purchases = [e for e in history if e["type"] == "purchase"]
    old_revenue = _per_minute(purchases, sum, lambda e: e["amount"])
    new_revenue = _per_minute(purchases, max, lambda e: e["amount"])
    counted = _per_minute(purchases, len, lambda e: 1.0)
    wait_until(lambda: _values(stack, "revenue", *span) == old_revenue, 30, "old revenue")
    stack.run_batch()
    assert _values(stack, "revenue", *span) == old_revenue

    # Validation answers with the file's messages, and changes nothing.
    checked = stack.client.post(
        "/v1/admin/definitions/validate",
        headers=stack.admin_headers,
        json={"metric": {"name": "bad", "aggregation": "sum"}},
    ).json()
    assert checked == {
        "valid": False,
        "problems": ["metric 'bad': definition: aggregation sum needs a numeric field = \"...\""],
        "toml": None,
    }

    # Add: computed by the speed layer within seconds, history backfilled by batch.
    applied_at = time.monotonic()
    added = _put(stack, "purchases", NEW)
    assert added["added"] == ["purchases"] and not added["rebuilds"]
    kinds = [j["kind"] for j in added["jobs"]]
    assert kinds == ["definitions", "batch"], added

    def first_speed_point() -> bool:
        now = int(time.time() * 1000)
        stack.post_events(
            [
                {
                    "event_id": f"live-{time.time_ns()}",
                    "ts": now,
                    "type": "purchase",
                    "country": "DE",
                    "amount": 1.0,
                }
            ],
            wait=False,
        )
        values = _values(stack, "purchases", now - 5 * MINUTE, now + MINUTE)
        return bool(values)

    wait_until(first_speed_point, 30, "the new metric's first speed point", interval_s=0.5)
    first_point_s = time.monotonic() - applied_at
    _job(stack, added["jobs"][1]["job_id"])
    # History up to that run's horizon at once; the archive may lag the live events,
    # which caps it: the next run (scheduled in production) covers the rest.
    wait_until(
        lambda: stack.run_batch() and _values(stack, "purchases", *span) == counted,
        60,
        "the new metric's history from batch",
        interval_s=1.0,
    )
    # Another API process's reading parts (own ClickHouse client, started with the file's
    # definitions) pick the new metric up within their poll interval, without a restart.
    other_storage = open_storage(stack.settings)
    try:
        live = LiveDefinitions(other_storage, load_catalog(stack.settings.metrics_file), 0.5)
        assert live.catalog_now().get("purchases") is None
        metric = wait_until(lambda: live.current().get("purchases"), 10, "the other reader")
        other_series, _ = MetricReader(other_storage, definitions=live).series(
            SeriesRequest(metric, *span, MINUTE)
        )
        assert {p.t_ms: p.value for s in other_series for p in s.points} == counted
    finally:
        other_storage.close()

    # Change: a replay builds a new generation, then batch; a reader never sees a mix.
    seen: list[str] = []
    stop = threading.Event()

    def read_during_change() -> None:
        while not stop.is_set():
            values = _values(stack, "revenue", *span)
            if values is None:
                seen.append("retry")
            else:
                seen.append(
                    "old"
                    if values == old_revenue
                    else "new"
                    if values == new_revenue
                    else f"MIXED {values}"
                )
            time.sleep(0.05)

    reader = threading.Thread(target=read_during_change, daemon=True)
    reader.start()
    changed_at = time.monotonic()
    try:
        changed = _put(stack, "revenue", CHANGED)
        assert changed["changed"] == ["revenue"] and changed["rebuilds"] == ["revenue"]
        busy = stack.client.put("/v1/admin/metrics/other", json=NEW, headers=stack.admin_headers)
        replay = _job(stack, changed["jobs"][1]["job_id"])
        assert busy.status_code in (409, 202)  # refused unless the replay had finished
        _job(stack, replay["params"]["batch_job"])
        change_s = time.monotonic() - changed_at
        wait_until(lambda: "new" in seen[-3:], 10, "reads of the new definition")
    finally:
        stop.set()
        reader.join(timeout=10)
    assert not [s for s in seen if s.startswith("MIXED")], seen
    assert "old" in seen and "new" in seen
    assert _values(stack, "revenue", *span) == new_revenue

    # The same definitions in a file, on a fresh stack: the same values.
    fresh_catalog = put_metric(
        put_metric(load_catalog(stack.settings.metrics_file), "purchases", NEW), "revenue", CHANGED
    )
    path = tmp_path / "metrics.toml"
    path.write_text(document_toml(catalog_document(fresh_catalog)))
    other_settings = stack_settings(
        stack.settings.data_dir.parent,
        "livedefs_file",
        stack.settings.clickhouse.url or "",
        free_port(),
    ).model_copy(update={"metrics_file": path})
    other = Stack(other_settings, dashboard=False)
    try:
        other.start()
        other.post_events(history)
        other.run_batch()
        for name in ("purchases", "revenue", "events"):
            assert _values(other, name, *span) == _values(stack, name, *span), name
    finally:
        other.stop()

    # Delete: stops at once; the windows go after the retention (here: right away).
    deleted = stack.client.delete("/v1/admin/metrics/purchases", headers=stack.admin_headers)
    assert deleted.status_code == 202, deleted.text
    assert stack.client.get("/v1/metrics/purchases").status_code == 404
    assert "purchases" not in [m["name"] for m in stack.client.get("/v1/metrics").json()["metrics"]]
    storage = open_storage(stack.settings)
    try:

        def rows() -> int:
            return int(
                storage.query(
                    f"SELECT count() FROM {storage.database}.speed_windows "
                    "WHERE metric = 'purchases'"
                )[0][0]
            )

        before = rows()
        now = int(time.time() * 1000)
        stack.post_events(
            [
                {
                    "event_id": f"after-delete-{i}",
                    "ts": now,
                    "type": "purchase",
                    "country": "FR",
                    "amount": 3.0,
                }
                for i in range(20)
            ]
        )
        assert rows() == before  # the worker stored the events (posted with wait), not it
        assert DefinitionStore(storage).purge_deleted(0) == ["purchases"]
        wait_until(lambda: rows() == 0, 20, "the deleted metric's windows dropped")
    finally:
        storage.close()
    history_out = stack.client.get("/v1/admin/definitions", headers=stack.admin_headers).json()
    assert [v["change"] for v in history_out["history"]][:3] == [
        "deleted purchases",
        "changed revenue",
        "added purchases",
    ]
    print(
        f"\nlive definitions: Apply -> first speed point of a new metric {first_point_s:.1f} s;"
        f" a change (replay + batch) {change_s:.1f} s; reads during it: "
        f"{seen.count('old')} old, {seen.count('new')} new, {seen.count('retry')} retried"
    )
