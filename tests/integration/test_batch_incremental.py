"""Incremental batch equals full batch: random streams archived in random batches, random
sequences of incremental runs between them, and after every run each window batch
serves equals a plain-Python recompute over everything archived so far, with the first
copy of each ``event_id`` in log order counting (issue 16, item 6). Windows that cross
an hour (hopping, and tumbling ones longer than an hour), session windows (their first
and last event times) and ids copied across hours, sources and runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from batch_layer.jobs.recompute import recompute
from batch_layer.planning import RecomputeMode
from stratum.archive import HOUR_MS, archive_root, write_partition_range
from stratum.events import Event
from stratum.groups import group_key
from stratum.metrics import MetricDefinition, parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from tests.integration.batch_support import BATCH_TABLES, own_database, reset_batch_state
from tests.reference import group_of, matches, window_starts

pytestmark = pytest.mark.integration
MINUTE = 60_000
H0 = 1_795_251_600_000  # 2026-11-21T09:00:00Z: hour boundaries at minutes 0, 60, 120

CATALOG = parse_catalog(
    {
        "metric": [
            {"name": "hopping", "aggregation": "count", "windows": ["5m"], "hop": "1m"},
            {
                "name": "long_sum",
                "aggregation": "sum",
                "field": "amount",
                "dimensions": ["type"],
                "windows": ["90m"],
            },
            {"name": "visits", "aggregation": "count", "dimensions": ["user"], "session_gap": "5m"},
            {"name": "biggest", "aggregation": "max", "field": "amount", "where": {"type": "buy"}},
        ]
    }
)
Key = tuple[str, int, str]  # metric, window start, group key


@dataclass(frozen=True)
class Copy:
    """One archived event: its place in the log and the event."""

    epoch: str
    partition: int
    offset: int
    position: int  # within its batch, for copies in one message
    event: Event

    def order(self) -> tuple[int, int, int, int, int]:
        ts = int(self.event["ts"])
        return (int(self.epoch), self.partition, self.offset, ts // HOUR_MS, self.position)


@pytest.fixture(scope="module")
def batchinc(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Settings, Storage]]:
    with own_database(session_dir, clickhouse_url, "batchinc") as pair:
        yield pair


minutes = st.one_of(
    st.integers(-7, 3), st.integers(55, 65), st.integers(115, 125), st.integers(-7, 125)
)
events = st.builds(
    lambda i, minute, second, kind, user, amount: {
        "event_id": f"e{i}",
        "ts": H0 + minute * MINUTE + second * 1000,
        "type": kind,
        "user": user,
        "amount": amount,
    },
    st.integers(0, 14),
    minutes,
    st.integers(0, 59),
    st.sampled_from(["buy", "view"]),
    st.sampled_from(["u1", "u2"]),
    st.integers(1, 9),
)
# Per event: its source (epoch, partition) and whether it shares the previous event's
# log message there.
placed = st.tuples(events, st.sampled_from(["1000", "2000"]), st.integers(0, 1), st.booleans())


def _batches(stream: list[tuple[Event, str, int, bool]], cuts: list[bool]) -> list[list[Copy]]:
    """Each source's events with offsets in stream order, cut into archive batches at
    message boundaries (where ``cuts`` says)."""
    by_source: dict[tuple[str, int], list[Copy]] = defaultdict(list)
    for event, epoch, partition, same_message in stream:
        copies = by_source[(epoch, partition)]
        offset = copies[-1].offset + (0 if same_message else 1) if copies else 0
        copies.append(Copy(epoch, partition, offset, len(copies), event))
    batches: list[list[Copy]] = []
    cut = iter(cuts * 10)
    for copies in by_source.values():
        batch: list[Copy] = []
        for copy in copies:
            if batch and batch[-1].offset != copy.offset and next(cut, False):
                batches.append(batch)
                batch = []
            batch.append(copy)
        batches.append(batch)
    return batches


def _reference(archived: list[Copy]) -> dict[Key, tuple[int, float, float, int, int]]:
    """Every window of every metric over the first copy of each id in log order:
    (count, sum, max, first_ms, last_ms), as batch stores them."""
    first: dict[str, Copy] = {}
    for copy in archived:
        known = first.get(copy.event["event_id"])
        if known is None or copy.order() < known.order():
            first[copy.event["event_id"]] = copy
    windows: dict[Key, list[Event]] = defaultdict(list)
    for metric in CATALOG.metrics:
        for copy in first.values():
            if matches(metric, copy.event):
                group = group_key(metric.dimensions, group_of(metric, copy.event))
                for start in window_starts(metric, int(copy.event["ts"])):
                    windows[(metric.name, start, group)].append(copy.event)
    out = {}
    for key, members in windows.items():
        metric = CATALOG.get(key[0])
        assert metric is not None
        values = [float(e["amount"]) for e in members] if metric.field else [0.0]
        times = [int(e["ts"]) for e in members]
        session = metric.session_gap is not None
        out[key] = (
            len(members),
            sum(values) if metric.field else 0.0,
            max(values) if metric.field else 0.0,
            min(times) if session else 0,
            max(times) if session else 0,
        )
    return out


def _served(
    storage: Storage,
) -> tuple[dict[Key, tuple[int, float, float, int, int]], dict[tuple[str, int], int]]:
    """Windows batch serves (their hour covered, ending by its horizon), and coverage."""
    db = storage.database
    rows = storage.query(f"""
        SELECT w.metric, toUnixTimestamp64Milli(w.window_start), w.group_key, w.count,
               w.sum, w.max, w.first_ms, w.last_ms
        FROM {db}.batch_windows AS w
        INNER JOIN (SELECT metric, hour_start, version, horizon
                    FROM {db}.batch_coverage FINAL) AS c
          ON w.metric = c.metric AND w.version = c.version
         AND toStartOfHour(w.window_start) = c.hour_start
        WHERE w.window_start + toIntervalMillisecond(w.window_ms) <= c.horizon""")
    coverage = storage.query(
        f"SELECT metric, toUnixTimestamp(hour_start) * 1000, "
        f"toUnixTimestamp64Milli(horizon) FROM {db}.batch_coverage FINAL"
    )
    served = {
        (m, int(s), g): (int(n), float(t), float(x), int(a), int(b))
        for m, s, g, n, t, x, a, b in rows
    }
    return served, {(m, int(h)): int(z) for m, h, z in coverage}


def _end(metric: MetricDefinition, start: int) -> int:
    return start + metric.window_ms


def _check(storage: Storage, archived: list[Copy], when: str) -> None:
    served, coverage = _served(storage)
    if not coverage:
        return
    expected = _reference(archived)
    horizon = max(coverage.values())
    wanted = {}
    for key, value in expected.items():
        metric = CATALOG.get(key[0])
        assert metric is not None
        end = _end(metric, key[1])
        covered = coverage.get((key[0], key[1] // HOUR_MS * HOUR_MS))
        assert end > horizon or (covered is not None and end <= covered), (
            f"{when}: window {key} ends by the horizon but batch does not serve it"
        )
        if covered is not None and end <= covered:
            wanted[key] = value
    wrong = {
        k: (served.get(k), wanted.get(k))
        for k in served.keys() | wanted.keys()
        if served.get(k) != wanted.get(k)
    }
    assert not wrong, f"{when}: served vs recomputed: {sorted(wrong.items())[:6]}"


@hsettings(
    max_examples=15,
    deadline=None,
    phases=[Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stream=st.lists(placed, min_size=1, max_size=40), cuts=st.lists(st.booleans()), data=st.data()
)
def test_incremental_runs_serve_what_a_full_recompute_does(
    batchinc: tuple[Settings, Storage],
    stream: list[tuple[Event, str, int, bool]],
    cuts: list[bool],
    data: Any,
) -> None:
    settings, storage = batchinc
    reset_batch_state(settings, storage, BATCH_TABLES)
    batches = data.draw(st.permutations(_batches(stream, cuts)), label="write order")
    archived: list[Copy] = []
    for number, batch in enumerate(batches, 1):
        write_partition_range(
            archive_root(settings.data_dir),
            batch[0].epoch,
            batch[0].partition,
            [(c.offset, c.event) for c in batch],
        )
        archived += batch
        if number == len(batches) or data.draw(st.booleans(), label=f"run after {number}"):
            recompute(settings, CATALOG, storage)
            _check(storage, archived, f"incremental run after batch {number}")
    recompute(settings, CATALOG, storage, mode=RecomputeMode.FULL)
    _check(storage, archived, "full run")
