"""The worker component of ``/v1/health`` (and of ``stratum worker``'s heartbeat): the
built-in worker and every source's, composed; and what an applied change says about
sources no worker reads until the workers restart."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from speed_layer.app import SpeedLayer
from speed_layer.workers import SpeedWorker
from stratum.app.roles import speed_health, stalled_for_s, workers_health
from stratum.definitions_apply import restart_needed
from stratum.metrics import MetricCatalog, parse_catalog
from stratum.settings import Settings
from stratum.sources import BUILTIN, SourceDefinition, SourceMapper

EVENTS = {"name": "events", "aggregation": "count", "windows": ["1m"]}
ORDERS = {"name": "orders", "topic": "shop.orders", "ts": "at"}
REVENUE = {
    "name": "revenue",
    "source": "orders",
    "aggregation": "sum",
    "field": "amount",
    "windows": ["1m"],
}


def _worker(tmp_path: Path, source: str | None = None) -> SpeedWorker:
    settings = Settings(data_dir=tmp_path)
    mapper = (
        SourceMapper(SourceDefinition(name=source, topic=f"t.{source}", ts="at"))
        if source
        else None
    )
    none = cast(Any, None)  # store and producer: health reads neither
    return SpeedWorker(
        settings, MetricCatalog(metrics=()), none, none, source or "0", mapper=mapper
    )


def _layer(workers: dict[str, SpeedWorker], unavailable: dict[str, str] | None = None) -> Any:
    return cast(
        SpeedLayer,
        SimpleNamespace(speed=workers[BUILTIN], sources=workers, unavailable=unavailable or {}),
    )


def test_a_source_workers_failures_show_named_and_worst_first(tmp_path: Path) -> None:
    builtin, orders, clicks = (
        _worker(tmp_path),
        _worker(tmp_path, "orders"),
        _worker(tmp_path, "clicks"),
    )
    workers = {BUILTIN: builtin, "orders": orders, "clicks": clicks}
    assert workers_health(workers).model_dump() == {"status": "ok", "detail": "waiting for events"}

    orders.last_flush_error = "DatabaseError: constraint violated"
    found = workers_health(workers)
    assert found.status == "down"
    assert found.detail == (
        "source 'orders': flush failing: DatabaseError: constraint violated; waiting for events"
    )

    clicks.broken = "ValueError: boom"  # fail-stop of another source: both named
    found = workers_health(workers)
    assert found.status == "down"
    assert "source 'orders': flush failing" in found.detail
    assert "source 'clicks': aggregation failed, restart the worker: ValueError: boom" in (
        found.detail
    )

    orders.last_flush_error = clicks.broken = None
    clicks.archiver.last_flush_error = "OSError: disk full"
    assert workers_health(workers).detail.startswith(
        "source 'clicks': archive writes failing: OSError: disk full"
    )
    clicks.archiver.last_flush_error = None

    # the built-in worker's own failure keeps its detail, sources' problems first
    builtin.last_flush_error = "StorageUnavailableError: x"
    orders.broken = "KeyError: y"
    found = workers_health(workers)
    assert found.status == "down"
    assert found.detail == (
        "source 'orders': aggregation failed, restart the worker: KeyError: y; "
        "flush failing: StorageUnavailableError: x"
    )


def test_a_stalled_source_worker_degrades_the_worker(tmp_path: Path) -> None:
    builtin, orders = _worker(tmp_path), _worker(tmp_path, "orders")
    now = time.time()
    orders.last_flush_wall = now - 300
    assert stalled_for_s(orders, now) is None  # nothing waits: idle, not stalled
    orders.acks.pending = [object(), object()]
    assert stalled_for_s(orders, now) is not None
    found = workers_health({BUILTIN: builtin, "orders": orders})
    assert found.status == "degraded"
    assert found.detail.startswith(
        "source 'orders': stalled: no flush stored for 300 s while 2 message(s) wait"
    )
    orders.last_flush_wall = now - 1  # flushed just now: fine again
    assert workers_health({BUILTIN: builtin, "orders": orders}).status == "ok"


def test_a_source_defined_while_running_degrades_until_the_workers_restart(
    tmp_path: Path,
) -> None:
    builtin = _worker(tmp_path)
    builtin.defined_sources = {"orders": "shop.orders"}  # the definitions read at the flush
    found = speed_health(_layer({BUILTIN: builtin}))
    assert found.model_dump() == {
        "status": "degraded",
        "detail": "source 'orders' (topic 'shop.orders') defined but not read: "
        "restart the workers; waiting for events",
    }
    # after the restart it has its worker: ok
    found = speed_health(_layer({BUILTIN: builtin, "orders": _worker(tmp_path, "orders")}))
    assert found.status == "ok"
    # a missing topic is said once, by its own message
    missing = {"orders": "source 'orders': topic 'shop.orders' does not exist"}
    found = speed_health(_layer({BUILTIN: builtin}, missing))
    assert found.detail == f"{missing['orders']}; waiting for events"


def test_applying_a_source_says_which_need_a_worker_restart() -> None:
    before = parse_catalog({"metric": [EVENTS], "source": [ORDERS]})  # defined, unread
    after = parse_catalog({"metric": [EVENTS, REVENUE], "source": [ORDERS]})
    assert restart_needed(before, after) == [
        "source 'orders' (topic 'shop.orders') is read after the workers restart"
    ]
    assert restart_needed(after, after) == []
    moved = parse_catalog(
        {"metric": [EVENTS, REVENUE], "source": [{**ORDERS, "topic": "shop.orders.v2"}]}
    )
    assert restart_needed(after, moved) == [
        "source 'orders' (topic 'shop.orders.v2') is read with its new definition after "
        "the workers restart"
    ]
    assert restart_needed(after, before) == []  # no longer read: nothing to wait for
