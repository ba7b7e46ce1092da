"""A cache of buckets that can no longer change, so a dashboard re-asking "the last 24 h"
every few seconds reads only the last minutes from ClickHouse.

A bucket is *final* when every window in it ends at or before the lowest watermark of
the live speed generation: the speed layer never changes such a window again (a late
event goes to the late topic), and the batch layer changes what is served only through
a new ``batch_coverage`` version. So the cached rows of a final bucket stay right as long
as the :class:`Freeze` token is unchanged: the live generation, the metric's newest
coverage version, and the number of source partitions with a checkpoint (a partition's
first flush may bring windows no watermark covered yet). Any change drops the entry.

Only whole buckets are cached (a bucket starting before the request's start holds part
of its windows), and session metrics are never cached: a session starting in a final
bucket may still grow.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Row = tuple[Any, ...]  # starts with its bucket (ms); serving keeps (bucket, group, point)
ShapeKey = tuple[Any, ...]  # metric, step, group_by, filters


@dataclass(frozen=True, slots=True)
class Freeze:
    token: tuple[int, int, int]  # (generation, newest coverage version, checkpointed sources)
    until_ms: int | None  # the lowest watermark: windows ending before it are final
    batch_horizon_ms: int = 0  # the newest coverage horizon: no batch window ends after it


@dataclass(slots=True)
class _Entry:
    token: tuple[int, int, int]
    lo: int  # cached buckets: lo <= bucket < hi
    hi: int
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer one request: cached rows, and the ranges to read (window starts)."""

    cached: list[Row]
    ranges: list[tuple[int, int]]
    store_from: int  # after the read, buckets in [store_from, store_to) join the cache
    store_to: int


def final_span(start_ms: int, end_ms: int, step_ms: int, until_ms: int | None
               ) -> tuple[int, int] | None:
    """Buckets ``[lo, hi)`` that lie wholly in the request and end by ``until_ms``."""
    if until_ms is None:
        return None
    lo = -(-start_ms // step_ms) * step_ms
    hi = min(until_ms, end_ms) // step_ms * step_ms
    return (lo, hi) if hi > lo else None


class FinalBucketCache:
    """Per query shape, the rows of a run of final buckets; least recently used first out
    once there are more than ``capacity`` shapes or ``max_rows`` rows in all (a 24 h
    read at 1-minute steps of 10 groups is 14,400 rows, ~1.5 MB)."""

    def __init__(self, capacity: int = 256, max_rows: int = 500_000) -> None:
        self.capacity = capacity
        self.max_rows = max_rows
        self._rows = 0
        self._entries: OrderedDict[ShapeKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def plan(self, key: ShapeKey, freeze: Freeze, start_ms: int, end_ms: int, step_ms: int
             ) -> Plan:
        span = final_span(start_ms, end_ms, step_ms, freeze.until_ms)
        if span is None:
            return Plan([], [(start_ms, end_ms)], 0, 0)
        lo, hi = span
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.token != freeze.token or entry.lo > lo or entry.hi <= lo:
                self.misses += 1
                return Plan([], [(start_ms, end_ms)], lo, hi)
            self._entries.move_to_end(key)
            self.hits += 1
            cached_hi = min(entry.hi, hi)
            cached = [row for row in entry.rows if lo <= row[0] < cached_hi]
        ranges = [(start_ms, lo)] if start_ms < lo else []
        if cached_hi < end_ms:
            ranges.append((cached_hi, end_ms))
        return Plan(cached, ranges, cached_hi, hi)

    def store(self, key: ShapeKey, freeze: Freeze, plan: Plan, rows: Sequence[Row],
              start_ms: int, step_ms: int) -> None:
        """Keep the final buckets of a read; the entry slides forward with the request."""
        if plan.store_to <= plan.store_from:
            return
        lo = -(-start_ms // step_ms) * step_ms
        new = [row for row in rows if plan.store_from <= row[0] < plan.store_to]
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._rows -= len(entry.rows)
            if plan.cached and entry is not None and entry.token == freeze.token \
                    and entry.hi == plan.store_from:
                entry.rows = [row for row in entry.rows if row[0] >= lo] + new
                entry.lo, entry.hi = max(entry.lo, lo), plan.store_to
            else:
                entry = _Entry(freeze.token, plan.store_from, plan.store_to, new)
            self._entries[key] = entry
            self._rows += len(entry.rows)
            while self._entries and (len(self._entries) > self.capacity
                                     or self._rows > self.max_rows):
                _, gone = self._entries.popitem(last=False)
                self._rows -= len(gone.rows)
