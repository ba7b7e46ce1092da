"""A cache of buckets that can no longer change, so a dashboard re-asking "the last 24 h"
every few seconds reads only the last minutes from ClickHouse.

A bucket is *final* when every window in it ends at or before the lowest watermark of
the live speed generation's source partitions (those of retired log epochs aside: their
watermarks stand still, see :mod:`stratum.storage.epochs`): the speed layer never
changes such a window again (a late event goes to the late topic), and the batch layer
changes what is served only through a new ``batch_coverage`` version. So the cached rows
of a final bucket stay right as long as the :class:`Freeze` token is unchanged: the live
generation, the metric's newest coverage version, and the number of unretired source
partitions with a checkpoint (a partition's first flush may bring windows no watermark
covered yet; a retirement rewrites windows of the epoch it retires). Any change drops
the entry.

Only whole buckets are cached (a bucket starting before the request's start holds part
of its windows), and session metrics are never cached: a session starting in a final
bucket may still grow.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from stratum import telemetry

Row = Any  # one bucket's value for one group, with its bucket (ms) as ``t_ms``
Group = tuple[str, ...]  # the group's values, in group_by order
Rows = dict[Group, list[Row]]  # per group, in bucket order
ShapeKey = tuple[Any, ...]  # metric, step, group_by, filters
bucket_of = attrgetter("t_ms")  # a row's bucket (ms): the sort and search key


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
    groups: Rows
    size: int  # rows in all groups


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer one request: cached rows, and the ranges to read (window starts)."""

    cached: Rows
    ranges: list[tuple[int, int]]
    store_from: int  # after the read, buckets in [store_from, store_to) join the cache
    store_to: int


def final_span(
    start_ms: int, end_ms: int, step_ms: int, until_ms: int | None
) -> tuple[int, int] | None:
    """Buckets ``[lo, hi)`` that lie wholly in the request and end by ``until_ms``."""
    if until_ms is None:
        return None
    lo = -(-start_ms // step_ms) * step_ms
    hi = min(until_ms, end_ms) // step_ms * step_ms
    return (lo, hi) if hi > lo else None


class FinalBucketCache:
    """Per query shape, the rows of a run of final buckets, kept per group in bucket order
    (a hit is a slice per group, not a pass over every point); least recently used first
    out once there are more than ``capacity`` shapes or ``max_rows`` rows in all (a 24 h
    read at 1-minute steps of 10 groups is 14,400 rows, ~1.5 MB)."""

    def __init__(self, capacity: int = 256, max_rows: int = 500_000) -> None:
        self.capacity = capacity
        self.max_rows = max_rows
        self._rows = 0
        self._entries: OrderedDict[ShapeKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _between(self, rows: list[Row], lo: int, hi: int) -> list[Row]:
        return rows[bisect_left(rows, lo, key=bucket_of) : bisect_left(rows, hi, key=bucket_of)]

    def plan(self, key: ShapeKey, freeze: Freeze, start_ms: int, end_ms: int, step_ms: int) -> Plan:
        span = final_span(start_ms, end_ms, step_ms, freeze.until_ms)
        if span is None:
            return Plan({}, [(start_ms, end_ms)], 0, 0)
        lo, hi = span
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.token != freeze.token or entry.lo > lo or entry.hi <= lo:
                self.misses += 1
                telemetry.SERVING_FINAL_CACHE.labels("miss").inc()
                return Plan({}, [(start_ms, end_ms)], lo, hi)
            self._entries.move_to_end(key)
            self.hits += 1
            telemetry.SERVING_FINAL_CACHE.labels("hit").inc()
            cached_hi = min(entry.hi, hi)
            cached = {
                group: found
                for group, rows in entry.groups.items()
                if (found := self._between(rows, lo, cached_hi))
            }
        ranges = [(start_ms, lo)] if start_ms < lo else []
        if cached_hi < end_ms:
            ranges.append((cached_hi, end_ms))
        return Plan(cached, ranges, cached_hi, hi)

    def store(
        self,
        key: ShapeKey,
        freeze: Freeze,
        plan: Plan,
        rows: Mapping[Group, list[Row]],
        start_ms: int,
        step_ms: int,
    ) -> None:
        """Keep the final buckets of a read (``rows``: per group, in bucket order); the
        entry slides forward with the request."""
        if plan.store_to <= plan.store_from:
            return
        lo = -(-start_ms // step_ms) * step_ms
        new = {
            group: found
            for group, read in rows.items()
            if (found := self._between(read, plan.store_from, plan.store_to))
        }
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._rows -= entry.size
            if (
                plan.cached
                and entry is not None
                and entry.token == freeze.token
                and entry.hi == plan.store_from
            ):
                groups = {
                    group: kept
                    for group, old in entry.groups.items()
                    if (kept := old[bisect_left(old, lo, key=bucket_of) :] + new.get(group, []))
                }
                groups.update(
                    (group, found) for group, found in new.items() if group not in entry.groups
                )
                entry = _Entry(entry.token, max(entry.lo, lo), plan.store_to, groups, 0)
            else:
                entry = _Entry(freeze.token, plan.store_from, plan.store_to, new, 0)
            entry.size = sum(len(found) for found in entry.groups.values())
            self._entries[key] = entry
            self._rows += entry.size
            while self._entries and (
                len(self._entries) > self.capacity or self._rows > self.max_rows
            ):
                _, gone = self._entries.popitem(last=False)
                self._rows -= gone.size
