"""Helpers for the batch-layer integration tests: a clean archive and clean batch tables
in the session's shared data dir and chDB engine, and plain-Python reference values."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratum.aggregation import value_hash
from stratum.archive import archive_root, write_partition_range
from stratum.events import Event
from stratum.metrics import Aggregation, MetricDefinition
from stratum.settings import Settings
from stratum.storage import Storage, open_storage

BATCH_TABLES = (
    "archive_files",
    "batch_windows",
    "batch_coverage",
    "batch_id_index",
    "batch_duplicates",
    "jobs",
)
VIEW_TABLES = (*BATCH_TABLES, "speed_windows", "speed_checkpoints")


def reset_batch_state(
    settings: Settings, storage: Storage, tables: Sequence[str] = BATCH_TABLES
) -> None:
    """Empty the archive and the batch tables (the session shares both); ``tables``
    = :data:`VIEW_TABLES` empties the speed layer's too."""
    shutil.rmtree(archive_root(settings.data_dir), ignore_errors=True)
    for table in tables:
        storage.command(f"TRUNCATE TABLE {storage.database}.{table}")


@contextmanager
def own_database(
    session_dir: Path, clickhouse_url: str, name: str
) -> Iterator[tuple[Settings, Storage]]:
    """Settings and storage of a database (``stratum_<name>``) and data dir of one test
    module, in the session's chDB engine; no allowed lateness, so batch horizons are
    the newest event."""
    settings = Settings(
        data_dir=session_dir / name,
        clickhouse={"url": clickhouse_url, "database": f"stratum_{name}"},
        speed={"allowed_lateness_ms": 0},
    )
    storage = open_storage(settings)
    try:
        yield settings, storage
    finally:
        storage.close()


def write_file(
    settings: Settings, epoch: str, partition: int, events: Sequence[tuple[int, Event]]
) -> None:
    write_partition_range(archive_root(settings.data_dir), epoch, partition, events)


@dataclass
class Expected:
    """Reference state of one (window, group), computed without Polars."""

    count: int = 0
    values: list[float] = field(default_factory=list)
    hashes: set[int] = field(default_factory=set)


def first_by_offset(files: Iterable[Sequence[tuple[int, Event]]]) -> list[Event]:
    """What the archive means once deduplicated: per event_id, the lowest offset wins."""
    best: dict[str, tuple[int, Event]] = {}
    for pairs in files:
        for offset, event in pairs:
            kept = best.get(event["event_id"])
            if kept is None or offset < kept[0]:
                best[event["event_id"]] = (offset, event)
    return [event for _, event in best.values()]


def reference(
    metric: MetricDefinition, events: Iterable[Event], horizon_ms: int
) -> dict[tuple[int, tuple[str, ...]], Expected]:
    """(window_start_ms, dimension values) -> Expected, by plain loops over the events."""
    size = metric.window_ms
    out: dict[tuple[int, tuple[str, ...]], Expected] = defaultdict(Expected)
    for event in events:
        if not all(_passes(event.get(k), want) for k, want in metric.where.items()):
            continue
        value = event.get(metric.field) if metric.field else None
        distinct = metric.aggregation == Aggregation.DISTINCT
        if metric.field and (value is None if distinct else not isinstance(value, int | float)):
            continue
        start = event["ts"] // size * size
        if start + size > horizon_ms:
            continue
        group = tuple("" if event.get(d) is None else str(event[d]) for d in metric.dimensions)
        slot = out[(start, group)]
        slot.count += 1
        if distinct:
            slot.hashes.add(value_hash(value))
        elif value is not None:
            slot.values.append(float(value))
    return dict(out)


def _passes(value: Any, wanted: str | list[str]) -> bool:
    return value in wanted if isinstance(wanted, list) else value == wanted


def exact_sample(values: Sequence[float]) -> tuple[list[float], list[int]]:
    counts = Counter(values)
    ordered = sorted(counts)
    return ordered, [counts[v] for v in ordered]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    for index, value in enumerate(ordered, 1):
        if index >= q * len(ordered):
            return value
    return ordered[-1]
