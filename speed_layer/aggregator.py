"""Event-time window state for one log partition: pure logic, no I/O.

Exactly-once results from at-least-once delivery rest on three facts:

- every stored window row carries the offset it is complete through (``through_offset``),
  and rows are per source partition, so state merges across partitions at query time;
- a worker that takes over a partition reloads its open windows and their offsets from
  ClickHouse and skips, per window, events at offsets the stored state already holds;
- offsets are committed to Kafka only after the rows holding them are in ClickHouse.

Watermark: the largest event time seen (capped at the wall clock, so one event stamped
far in the future cannot close every window) minus the allowed lateness. A window is
final once the watermark passes its end; an event for a final window is *late*: it is
returned to the caller (late-events topic), still archived, and corrected by batch.
A partition that has been idle for the idle timeout advances its event-time clock with
the wall clock (:meth:`PartitionAggregator.advance_idle`), so the last window of a quiet
stream is closed and reported instead of waiting for the next event.

Duplicates: the ids of at least the last ``dedup_capacity`` events of the partition are
kept (in two generations of that size, so forgetting is O(1)), and an event whose
``event_id`` is among them is dropped, so the first copy in offset order counts
(ingest routes an id to one partition, so a duplicate meets its original here): the
batch layer's rule, first in log order (:mod:`batch_layer.dedup`). Duplicates further
apart, or across a restart, are counted by the speed layer and corrected by batch.

The work is columnar: :meth:`PartitionAggregator.add_frame` takes every message of a
batch as one frame (:mod:`stratum.event_frames`), computes each row's watermark (that of
its message: the watermark moves after each message, as if they came one by one), and
per metric filters, assigns windows and groups with the batch layer's own expressions
(:mod:`stratum.metric_frames`); Python only touches each changed window once per batch.
Per event in Python, the same job ran at a tenth of the plain-consumer baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from stratum.aggregation import WindowState
from stratum.aggregations import AggregationKind, Sample
from stratum.event_frames import events_frame
from stratum.events import Event
from stratum.groups import group_key
from stratum.metric_frames import (
    TS_MS,
    VALUE,
    WINDOW_START,
    dim_columns,
    dimension_exprs,
    needed_fields,
    typed_fields,
    where_expr,
    window_starts_expr,
)
from stratum.metrics import MetricDefinition
from stratum.value_hashes import HASH, ValueHashCache
from stratum.value_hashes import VALUE as HASH_VALUE

WindowKey = tuple[str, int, tuple[str, ...]]
NO_WATERMARK = -(2**62)


_ROW, _WM, _N, _SUM, _MIN, _MAX, _VALUES, _HELD, _HASH, _FIRST, _LAST = (
    "__row",
    "__wm",
    "__n",
    "__sum",
    "__min",
    "__max",
    "__values",
    "__held",
    "__hash",
    "__first",
    "__last",
)


_value_hashes = ValueHashCache()  # every partition of the process, replays included


def _id_hashes(ids: pl.Series) -> pl.Series:
    """64-bit hashes of event ids, for probing only (equal hashes are checked as strings)."""
    return ids.hash()


@dataclass(frozen=True, slots=True)
class _Plan:
    """One metric compiled to the expressions and flags the hot path needs."""

    metric: MetricDefinition
    kind: AggregationKind
    name: str
    window_ms: int
    where: pl.Expr | None  # None: every event counts (a literal filter trips Polars)
    dims: list[pl.Expr]
    dim_names: list[str]
    numeric: bool  # sum, min, max (and a sketch for quantiles) over a numeric field
    sketch: bool
    distinct: bool
    hop: bool
    session: bool  # windows also keep their first and last event time

    @classmethod
    def of(cls, metric: MetricDefinition) -> _Plan:
        kind = metric.kind
        filtered = bool(metric.where) or metric.field is not None
        return cls(
            metric,
            kind,
            metric.name,
            metric.window_ms,
            where_expr(metric) if filtered else None,
            dimension_exprs(metric),
            dim_columns(metric),
            kind.numeric,
            kind.sample == Sample.VALUES,
            kind.sample == Sample.HASHES,
            metric.hop is not None,
            metric.session_gap is not None,
        )

    def starts(self) -> pl.Expr:
        """Tumbling: one start (no list to explode); hopping: the batch layer's list."""
        if not self.hop:
            return (pl.col(TS_MS) - pl.col(TS_MS) % self.window_ms).alias(WINDOW_START)
        return window_starts_expr(self.metric)

    def _earliest_start(self) -> pl.Expr:
        if not self.hop:
            return pl.col(TS_MS) - pl.col(TS_MS) % self.window_ms
        hop = self.metric.hop_ms
        return pl.col(TS_MS) - pl.col(TS_MS) % hop - (self.window_ms // hop - 1) * hop

    def late(self) -> pl.Expr:
        """Rows this metric counts in at least one window the watermark has closed."""
        closed = self._earliest_start() + self.window_ms <= pl.col(_WM)
        return closed if self.where is None else closed & self.where

    def rows(self, lazy: pl.LazyFrame) -> pl.LazyFrame:
        """(row, offset, window start, dimensions, value) of every event and open window
        it counts in."""
        field = self.metric.field
        value = (
            []
            if field is None
            else [pl.col(f"{_HASH}_{field}" if self.distinct else field).alias(VALUE)]
        )
        times = [TS_MS] if self.session else []
        rows = (lazy if self.where is None else lazy.filter(self.where)).select(
            _ROW, "offset", _WM, self.starts(), *self.dims, *value, *times
        )
        if self.hop:
            rows = rows.explode(WINDOW_START)
        return rows.filter(pl.col(WINDOW_START) + self.window_ms > pl.col(_WM))

    def groups(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """Per (window start, dimensions): the state this batch adds."""
        aggs = [pl.len().alias(_N)]
        if self.numeric:
            aggs += [
                pl.col(VALUE).sum().alias(_SUM),
                pl.col(VALUE).min().alias(_MIN),
                pl.col(VALUE).max().alias(_MAX),
            ]
        if self.sketch:
            aggs.append(pl.col(VALUE).alias(_VALUES))
        elif self.distinct:
            aggs.append(pl.col(VALUE).unique().alias(_VALUES))
        if self.session:
            aggs += [pl.col(TS_MS).min().alias(_FIRST), pl.col(TS_MS).max().alias(_LAST)]
        return rows.group_by([WINDOW_START, *self.dim_names]).agg(aggs)


@dataclass(slots=True)
class WindowRow:
    """One window's state as written to ``speed_windows``."""

    key: WindowKey
    window_ms: int
    dimensions: tuple[str, ...]
    state: WindowState
    final: bool

    @property
    def group_key(self) -> str:
        return group_key(self.dimensions, self.key[2])


@dataclass(slots=True)
class AddResult:
    late: list[Event]
    aggregated: int
    skipped: int
    duplicates: int = 0
    late_offsets: list[int] = field(default_factory=list)  # the log offset of each late event


class PartitionAggregator:
    def __init__(
        self, metrics: Sequence[MetricDefinition], lateness_ms: int, dedup_capacity: int = 0
    ) -> None:
        self._plans = [_Plan.of(m) for m in metrics]
        self._by_name = {m.name: m for m in metrics}
        self._numeric, self._strings = needed_fields(list(metrics))
        self.lateness_ms = lateness_ms
        self.windows: dict[WindowKey, WindowState] = {}
        self.dirty: set[WindowKey] = set()
        self.held_through: dict[WindowKey, int] = {}
        self.max_held_offset = -1
        self.through_offset = -1
        self.max_event_ms = NO_WATERMARK
        self.last_event_wall_ms: int | None = None
        self.dedup_capacity = dedup_capacity
        self._ids_now = pl.Series(dtype=pl.String)
        self._ids_before = pl.Series(dtype=pl.String)
        self._hashes_now = pl.Series(dtype=pl.UInt64)  # of the ids, in the same order
        self._hashes_before = pl.Series(dtype=pl.UInt64)
        self._distinct_fields = sorted(
            {p.metric.field for p in self._plans if p.distinct and p.metric.field}
        )

    @property
    def watermark_ms(self) -> int:
        if self.max_event_ms == NO_WATERMARK:
            return NO_WATERMARK
        return self.max_event_ms - self.lateness_ms

    def add(self, offset: int, events: Iterable[Event], now_ms: int) -> AddResult:
        """Aggregate one log message's (validated) events."""
        return self.add_frame(events_frame([(offset, e) for e in events]), offset, now_ms)

    def add_frame(self, frame: pl.DataFrame, through_offset: int, now_ms: int) -> AddResult:
        """Aggregate a batch of log messages: ``frame`` holds their events (layout of
        :mod:`stratum.event_frames`, in offset order), ``through_offset`` is the last
        message's offset (messages without valid events count as consumed too)."""
        if frame.height and frame["offset"][0] <= self.through_offset:
            frame = frame.filter(pl.col("offset") > self.through_offset)  # re-delivered
        duplicates = 0
        if self.dedup_capacity and frame.height:
            keep = self._unseen(frame["event_id"])
            duplicates = frame.height - int(keep.sum())
            if duplicates:
                frame = frame.filter(keep)
        if frame.is_empty():
            self.through_offset = max(self.through_offset, through_offset)
            return AddResult([], 0, 0, duplicates)
        typed = frame.select(
            "offset",
            pl.col("ts").alias(TS_MS),
            "type",
            *typed_fields(frame.schema, self._numeric, self._strings),
        )
        # Each message's watermark: the newest event time before it (capped at the wall
        # clock) minus the lateness. Rows are in offset order, so a message is a run of
        # rows: its newest event by a reduce over runs, its mark repeated along the run.
        typed = typed.with_row_index(_ROW)  # the row in ``frame``: late events are picked by it
        offsets = typed["offset"].to_numpy()
        if offsets.size > 1 and (np.diff(offsets) < 0).any():
            typed = typed.sort("offset", maintain_order=True)
            offsets = typed["offset"].to_numpy()
        starts = np.flatnonzero(np.diff(offsets, prepend=offsets[0] - 1))
        newest = np.minimum(np.maximum.reduceat(typed[TS_MS].to_numpy(), starts), now_ms)
        running = np.maximum.accumulate(np.concatenate(([self.max_event_ms], newest)))
        before = running[:-1]
        marks = np.where(before == NO_WATERMARK, NO_WATERMARK, before - self.lateness_ms)
        typed = typed.with_columns(
            pl.Series(_WM, np.repeat(marks, np.diff(starts, append=offsets.size)), dtype=pl.Int64)
        )
        lazy = self._with_hashes(typed).lazy()
        held = bool(self.held_through) and int(offsets.min()) <= self.max_held_offset
        late_rows, *results = pl.collect_all(
            [
                lazy.filter(pl.any_horizontal([plan.late() for plan in self._plans])).select(_ROW),
                *[
                    plan.rows(lazy) if held else plan.groups(plan.rows(lazy))
                    for plan in self._plans
                ],
            ]
        )
        skipped = 0
        for plan, result in zip(self._plans, results, strict=True):
            if held:  # a recovered partition's first batches: skip what state holds
                rows, dropped = self._skip_held(plan, result)
                skipped += dropped
                result = plan.groups(rows.lazy()).collect()
            self._apply_groups(plan, result)
        # Only now, with every window updated: a checkpoint must never claim offsets
        # whose events the state lacks.
        self.through_offset = max(self.through_offset, through_offset)
        self.max_event_ms = int(running[-1])
        self.last_event_wall_ms = now_ms
        late_events, late_offsets = [], []
        if late_rows.height:
            marked = np.zeros(frame.height, dtype=bool)
            marked[late_rows[_ROW].to_numpy()] = True
            for row in frame.filter(pl.Series(marked)).iter_rows(named=True):
                late_offsets.append(row.pop("offset"))
                late_events.append({k: v for k, v in row.items() if v is not None})
        return AddResult(
            late_events, frame.height - len(late_events), skipped, duplicates, late_offsets
        )

    def _with_hashes(self, typed: pl.DataFrame) -> pl.DataFrame:
        """Each distinct metric's field hashed (``__hash_<field>``), through the cache."""
        for name in self._distinct_fields:
            hashes = _value_hashes.lookup(typed[name]).rename({HASH: f"{_HASH}_{name}"})
            typed = typed.join(hashes, left_on=name, right_on=HASH_VALUE, how="left", coalesce=True)
        return typed

    def _unseen(self, ids: pl.Series) -> pl.Series:
        """Which ids are neither earlier in the batch nor among the recent ones; all of
        them become recent. Recent ids are probed by hash against the batch's (small)
        set, twice as fast as by string; the few hits are then compared as strings, so
        a hash collision never drops an event."""
        keep = ids.is_first_distinct()
        hashes = _id_hashes(ids)
        batch = hashes.implode()
        for recent, recent_hashes in (
            (self._ids_before, self._hashes_before),
            (self._ids_now, self._hashes_now),
        ):
            if recent.len():
                seen = recent.filter(recent_hashes.is_in(batch))
                if seen.len():
                    keep &= ~ids.is_in(seen.implode())
        self._ids_now.append(ids)
        self._hashes_now.append(hashes)
        if self._ids_now.len() >= self.dedup_capacity:
            self._ids_before = self._ids_now.rechunk()
            self._hashes_before = self._hashes_now.rechunk()
            self._ids_now = pl.Series(dtype=pl.String)
            self._hashes_now = pl.Series(dtype=pl.UInt64)
        return keep

    def _apply_groups(self, plan: _Plan, groups: pl.DataFrame) -> None:
        """Fold one metric's groups of a batch into its windows (Python: once per window)."""
        if groups.is_empty():
            return
        keys = [WINDOW_START, *plan.dim_names]
        counts = groups[_N].to_list()
        bounds: list[int] = []
        samples: Any = None
        if plan.sketch or plan.distinct:
            bounds = [0, *np.cumsum(groups[_VALUES].list.len().to_numpy(), dtype=np.int64).tolist()]
            # writable: the KLL binding refuses read-only (zero-copy Arrow) arrays
            samples = groups[_VALUES].explode().to_numpy(writable=plan.sketch)
        sums = groups[_SUM].to_list() if plan.numeric else None
        mins: list[Any] = groups[_MIN].to_list() if plan.numeric else []  # read if sums
        maxs: list[Any] = groups[_MAX].to_list() if plan.numeric else []
        firsts = groups[_FIRST].to_list() if plan.session else None
        lasts: list[Any] = groups[_LAST].to_list() if plan.session else []  # read if firsts
        name, windows, dirty = plan.name, self.windows, self.dirty
        key_lists = [groups[k].to_list() for k in keys]
        for i, key_row in enumerate(zip(*key_lists, strict=True)):
            key = (name, key_row[0], tuple(key_row[1:]))
            state = windows.get(key)
            if state is None:
                state = windows[key] = plan.kind.new_state()
            state.count += counts[i]
            if sums is not None:
                state.sum += sums[i]
                if mins[i] < state.min:
                    state.min = mins[i]
                if maxs[i] > state.max:
                    state.max = maxs[i]
            if firsts is not None:
                state.first_ms = min(state.first_ms, firsts[i])
                state.last_ms = max(state.last_ms, lasts[i])
            # The kind's new_state() made the sample its plan fills; WindowState types it optional.
            if plan.sketch:
                state.sketch.update(samples[bounds[i] : bounds[i + 1]])  # type: ignore[union-attr]
            elif plan.distinct:
                state.distinct.add_hash_array(  # type: ignore[union-attr]
                    samples[bounds[i] : bounds[i + 1]]
                )
            dirty.add(key)

    def _skip_held(self, plan: _Plan, rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """Drop (event, window) pairs at offsets the recovered window already holds."""
        held = [
            (start, *group, offset)
            for (name, start, group), offset in self.held_through.items()
            if name == plan.name
        ]
        if not held:
            return rows, 0
        keys = [WINDOW_START, *plan.dim_names]
        table = pl.DataFrame(
            held,
            schema={
                WINDOW_START: pl.Int64,
                **dict.fromkeys(plan.dim_names, pl.String),
                _HELD: pl.Int64,
            },
            orient="row",
        )
        kept = (
            rows.join(table, on=keys, how="left")
            .filter(pl.col(_HELD).is_null() | (pl.col("offset") > pl.col(_HELD)))
            .drop(_HELD)
        )
        return kept, rows.height - kept.height

    def advance_idle(self, now_ms: int, idle_timeout_ms: int) -> bool:
        """After ``idle_timeout_ms`` without events, event time follows the wall clock
        (minus the timeout). Returns whether the watermark moved."""
        if self.last_event_wall_ms is None or now_ms - self.last_event_wall_ms < idle_timeout_ms:
            return False
        clock = now_ms - idle_timeout_ms
        if clock <= self.max_event_ms:
            return False
        self.max_event_ms = clock
        return True

    def drain(self) -> list[WindowRow]:
        """Rows for every window changed since the last drain, and for every window the
        watermark has closed since (written once more, marked final, then evicted). The
        windows stay in memory until :meth:`evict_final`, so a failed write can be
        retried with :meth:`restore`."""
        watermark = self.watermark_ms
        closing = {
            key for key in self.windows if key[1] + self._by_name[key[0]].window_ms <= watermark
        }
        rows = []
        for key in self.dirty | closing:
            metric = self._by_name[key[0]]
            rows.append(
                WindowRow(
                    key,
                    metric.window_ms,
                    metric.dimensions,
                    self.windows[key],
                    final=key in closing,
                )
            )
        self.dirty = set()
        return rows

    def restore(self, rows: Iterable[WindowRow]) -> None:
        self.dirty.update(row.key for row in rows)

    def evict_final(self) -> int:
        """Forget windows the watermark has passed and that are already written."""
        watermark = self.watermark_ms
        gone = [
            key
            for key in self.windows
            if key not in self.dirty and key[1] + self._by_name[key[0]].window_ms <= watermark
        ]
        for key in gone:
            del self.windows[key]
            self.held_through.pop(key, None)
        return len(gone)

    def recover(
        self,
        through_offset: int,
        max_event_ms: int,
        rows: Iterable[tuple[WindowKey, WindowState, int]],
    ) -> None:
        """Resume from a checkpoint plus the stored windows, each with its offset."""
        self.through_offset = through_offset
        self.max_event_ms = max_event_ms
        for key, state, held in rows:
            if key[0] not in self._by_name:
                continue  # a metric removed from the definitions
            self.windows[key] = state
            self.held_through[key] = held
            self.max_held_offset = max(self.max_held_offset, held)

    def checkpoint(self) -> dict[str, Any]:
        return {
            "through_offset": self.through_offset,
            "watermark_ms": self.watermark_ms,
            "max_event_ms": self.max_event_ms,
        }
