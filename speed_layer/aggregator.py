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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


class PartitionAggregator:
    def __init__(self, metrics: Sequence[MetricDefinition], lateness_ms: int) -> None:
        self._compiled = [
            _Compiled(m, m.window_ms, m.field, m.aggregation == Aggregation.QUANTILE,
                      m.aggregation == Aggregation.DISTINCT)
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
        aggregated = skipped = 0
        newest = NO_WATERMARK
        for event in events:
            ts: int = event["ts"]
            if ts > newest:
                newest = ts
            is_late = False
            for c in self._compiled:
                if not c.metric.matches(event):
                    continue
                start = ts - ts % c.window_ms
                if start + c.window_ms <= watermark:
                    is_late = True
                    continue
                key = (c.metric.name, start, c.metric.group_of(event))
                if check_held and offset <= self.held_through.get(key, -1):
                    skipped += 1
                    continue
                state = self.windows.get(key)
                if state is None:
                    state = self.windows[key] = new_state(c.sketch, c.distinct)
                state.add(event[c.field] if c.field else None)
                self.dirty.add(key)
            if is_late:
                late.append(event)
            else:
                aggregated += 1
        if newest != NO_WATERMARK:
            self.max_event_ms = max(self.max_event_ms, min(newest, now_ms))
        self.through_offset = offset
        return AddResult(late, aggregated, skipped)

    def drain(self) -> list[WindowRow]:
        """Rows for every window changed since the last drain (it stays in memory until
        :meth:`evict_final`, so a failed write can be retried with :meth:`restore`)."""
        watermark = self.watermark_ms
        rows = []
        for key in self.dirty:
            c = self._by_name[key[0]]
            rows.append(WindowRow(key, c.window_ms, c.metric.dimensions, self.windows[key],
                                  final=key[1] + c.window_ms <= watermark))
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
