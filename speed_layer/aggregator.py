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

Duplicates: the ids of the last ``dedup_capacity`` events of the partition are kept, and
an event whose ``event_id`` is among them is dropped (ingest routes an id to one
partition, so a duplicate meets its original here). Duplicates further apart, or across
a restart, are counted by the speed layer and corrected by batch, which deduplicates the
whole archive by ``event_id``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stratum.aggregation import WindowState, new_state
from stratum.events import Event
from stratum.groups import group_key
from stratum.metrics import Aggregation, MetricDefinition

WindowKey = tuple[str, int, tuple[str, ...]]
NO_WATERMARK = -(2**62)


@dataclass(frozen=True, slots=True)
class _Compiled:
    metric: MetricDefinition
    window_ms: int
    field: str | None
    sketch: bool
    distinct: bool
    hop_ms: int | None
    name: str
    group: Callable[[Event], tuple[str, ...] | None]


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


class PartitionAggregator:
    def __init__(self, metrics: Sequence[MetricDefinition], lateness_ms: int,
                 dedup_capacity: int = 0) -> None:
        self._compiled = [
            _Compiled(m, m.window_ms, m.field, m.aggregation == Aggregation.QUANTILE,
                      m.aggregation == Aggregation.DISTINCT, m.hop_ms if m.hop else None,
                      m.name, m.grouper())
            for m in metrics
        ]
        self._by_name = {c.metric.name: c for c in self._compiled}
        self.lateness_ms = lateness_ms
        self.windows: dict[WindowKey, WindowState] = {}
        self.dirty: set[WindowKey] = set()
        self.held_through: dict[WindowKey, int] = {}
        self.max_held_offset = -1
        self.through_offset = -1
        self.max_event_ms = NO_WATERMARK
        self.last_event_wall_ms: int | None = None
        self.dedup_capacity = dedup_capacity
        self._recent_ids: set[str] = set()
        self._recent_order: deque[str] = deque()

    @property
    def watermark_ms(self) -> int:
        if self.max_event_ms == NO_WATERMARK:
            return NO_WATERMARK
        return self.max_event_ms - self.lateness_ms

    def add(self, offset: int, events: Iterable[Event], now_ms: int) -> AddResult:
        """Aggregate one log message's events; the watermark moves after the message."""
        if offset <= self.through_offset:
            return AddResult([], 0, 0)  # re-delivered: already in our state
        check_held = offset <= self.max_held_offset
        watermark = self.watermark_ms
        late: list[Event] = []
        aggregated = skipped = duplicates = 0
        newest = NO_WATERMARK
        # The hot loop: every event x every metric. Attributes read once per message.
        compiled, windows, held = self._compiled, self.windows, self.held_through
        mark_dirty = self.dirty.add
        seen = self._seen if self.dedup_capacity else None
        for event in events:
            if seen is not None and seen(event["event_id"]):
                duplicates += 1
                continue
            ts: int = event["ts"]
            if ts > newest:
                newest = ts
            is_late = False
            for c in compiled:
                group = c.group(event)
                if group is None:
                    continue
                value = event[c.field] if c.field else None
                window_ms = c.window_ms
                starts = (ts - ts % window_ms,) if c.hop_ms is None else \
                    c.metric.window_starts(ts)
                for start in starts:
                    if start + window_ms <= watermark:
                        is_late = True
                        continue
                    key = (c.name, start, group)
                    if check_held and offset <= held.get(key, -1):
                        skipped += 1
                        continue
                    state = windows.get(key)
                    if state is None:
                        state = windows[key] = new_state(c.sketch, c.distinct)
                    state.add(value)
                    mark_dirty(key)
            if is_late:
                late.append(event)
            else:
                aggregated += 1
        if newest != NO_WATERMARK:
            self.max_event_ms = max(self.max_event_ms, min(newest, now_ms))
            self.last_event_wall_ms = now_ms
        self.through_offset = offset
        return AddResult(late, aggregated, skipped, duplicates)

    def _seen(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            return True
        self._recent_ids.add(event_id)
        self._recent_order.append(event_id)
        if len(self._recent_order) > self.dedup_capacity:
            self._recent_ids.discard(self._recent_order.popleft())
        return False

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
        closing = {key for key in self.windows
                   if key[1] + self._by_name[key[0]].window_ms <= watermark}
        rows = []
        for key in self.dirty | closing:
            c = self._by_name[key[0]]
            rows.append(WindowRow(key, c.window_ms, c.metric.dimensions, self.windows[key],
                                  final=key in closing))
        self.dirty = set()
        return rows

    def restore(self, rows: Iterable[WindowRow]) -> None:
        self.dirty.update(row.key for row in rows)

    def evict_final(self) -> int:
        """Forget windows the watermark has passed and that are already written."""
        watermark = self.watermark_ms
        gone = [
            key for key in self.windows
            if key not in self.dirty and key[1] + self._by_name[key[0]].window_ms <= watermark
        ]
        for key in gone:
            del self.windows[key]
            self.held_through.pop(key, None)
        return len(gone)

    def recover(self, through_offset: int, max_event_ms: int,
                rows: Iterable[tuple[WindowKey, WindowState, int]]) -> None:
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
        return {"through_offset": self.through_offset, "watermark_ms": self.watermark_ms,
                "max_event_ms": self.max_event_ms}
