"""Read-only views of the pipeline's own state for ``/v1/status`` and ``/v1/pipeline``.

Two sources, each for what it knows:

- ClickHouse (shared by every process): per source partition the speed layer's
  checkpoint (offset it is complete through, watermark, newest event time), the newest
  window per metric in each layer, and the batch jobs.
- This process's Prometheus counters (``stratum.telemetry``): events through each
  stage. They count what *this* process did, so in a split deployment the API process
  sees ingest only and the worker's counters live on the worker's ``/metrics``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from stratum import telemetry  # noqa: F401 - importing it registers the counters
from stratum.sources import source_of_id
from stratum.storage import Storage, epochs

# Stage name -> the sample that counts it (a counter's _total, a histogram's _count).
COUNTERS: dict[str, str] = {
    "ingest_accepted": "stratum_ingest_events_accepted_total",
    "ingest_rejected": "stratum_ingest_events_rejected_total",
    "speed_events": "stratum_speed_events_total",
    "speed_late": "stratum_speed_late_events_total",
    "speed_skipped": "stratum_speed_replayed_events_skipped_total",
    "dead_letters": "stratum_dead_letters_total",
    "speed_rows": "stratum_speed_rows_upserted_total",
    "speed_flushes": "stratum_speed_flush_seconds_count",
    "speed_flush_errors": "stratum_speed_flush_errors_total",
    "archive_events": "stratum_archive_events_total",
    "archive_files": "stratum_archive_files_total",
    "batch_runs": "stratum_batch_duration_seconds_count",
}

RATE_WINDOW_S = 30.0
HISTORY_S = 900.0
MIN_SAMPLE_GAP_S = 1.0
NEWEST_WITHIN_DAYS = 7  # /v1/status looks this far back for a metric's newest window


def counter_totals() -> dict[str, float]:
    """Current value of every pipeline counter in this process (0 when never touched)."""
    return {stage: REGISTRY.get_sample_value(sample) or 0.0 for stage, sample in COUNTERS.items()}


def flush_seconds() -> tuple[float, float]:
    """(count, sum) of the speed layer's flush durations: their mean is the flush latency."""
    count = REGISTRY.get_sample_value("stratum_speed_flush_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("stratum_speed_flush_seconds_sum") or 0.0
    return count, total


@dataclass(frozen=True, slots=True)
class RateSample:
    wall_s: float
    totals: dict[str, float]


class CounterRates:
    """Counters sampled whenever someone asks (health, status, pipeline, /metrics), at
    most once a second, kept 15 minutes: enough for rates and a throughput history
    without a background task. Thread-safe: routes run in the thread pool."""

    def __init__(self) -> None:
        self._samples: deque[RateSample] = deque()
        self._lock = threading.Lock()

    def sample(self, now_s: float | None = None) -> RateSample:
        now_s = time.time() if now_s is None else now_s
        with self._lock:
            if self._samples and now_s - self._samples[-1].wall_s < MIN_SAMPLE_GAP_S:
                return self._samples[-1]
            current = RateSample(now_s, counter_totals())
            self._samples.append(current)
            while self._samples and now_s - self._samples[0].wall_s > HISTORY_S:
                self._samples.popleft()
            return current

    def rates(self, window_s: float = RATE_WINDOW_S) -> dict[str, float | None]:
        """Per-second rate of each counter over the last ``window_s``; None before two
        samples exist (a rate needs an interval)."""
        with self._lock:
            if len(self._samples) < 2:
                return dict.fromkeys(COUNTERS)
            newest = self._samples[-1]
            oldest = next(
                (s for s in self._samples if newest.wall_s - s.wall_s <= window_s),
                self._samples[-2],
            )
            if oldest is newest:
                oldest = self._samples[-2]
            return _rate(oldest, newest)

    def history(self, step_s: float = 5.0) -> list[tuple[float, dict[str, float | None]]]:
        """(wall time, rates) between samples at least ``step_s`` apart, oldest first."""
        with self._lock:
            samples = list(self._samples)
        points: list[tuple[float, dict[str, float | None]]] = []
        previous: RateSample | None = None
        for sample in samples:
            if previous is None:
                previous = sample
            elif sample.wall_s - previous.wall_s >= step_s:
                points.append((sample.wall_s, _rate(previous, sample)))
                previous = sample
        return points


def _rate(old: RateSample, new: RateSample) -> dict[str, float | None]:
    elapsed = new.wall_s - old.wall_s
    if elapsed <= 0:
        return dict.fromkeys(COUNTERS)
    # A counter that went down was reset (a restart): count from zero.
    return {
        stage: max(0.0, new.totals[stage] - old.totals.get(stage, 0.0)) / elapsed
        for stage in COUNTERS
    }


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    source_id: str
    partition: int | None
    source: str  # the [[source]] it reads, or "events" (stratum.sources.source_of_id)
    through_offset: int
    watermark_ms: int | None
    max_event_ms: int | None
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class NewestWindows:
    speed_ms: int | None
    speed_final_ms: int | None
    batch_ms: int | None


def _ms(value: datetime | None) -> int | None:
    """chDB hands back naive UTC; epoch 0 is what ClickHouse's max() of nothing gives."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    ms = int(aware.timestamp() * 1000)
    return ms if ms > 0 else None


def _event_ms(value: int) -> int | None:
    """Checkpoint event times: the speed layer writes a huge negative before any event,
    and tests stamp warm-up events 1970; neither is a time worth showing."""
    return value if value > 0 else None


class PipelineReader:
    """SELECTs only; one per app, on serving's own :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.db = storage.database

    def partitions(self, generation: int) -> list[PartitionProgress]:
        """Checkpoints of each source's newest log epoch (an embedded broker starts a new
        epoch on each start; older epochs' partitions are history, not progress), never
        of a retired one (before the current epoch's first flush there is none to show).
        A ``[[source]]`` on a real cluster has one log: its name."""
        rows = self.storage.query(
            "SELECT source_id, through_offset, watermark_ms, max_event_ms, updated_at "
            f"FROM {self.db}.speed_checkpoints FINAL WHERE generation = {{g:UInt32}} "
            f"AND {epochs.live_sources_sql(self.db)}",
            {"g": generation},
        )
        if not rows:
            return []
        newest: dict[str, tuple[Any, str]] = {}  # source -> (updated, its newest epoch)
        for row in rows:
            epoch = str(row[0]).rpartition(":")[0]
            source = source_of_id(str(row[0]))
            if source not in newest or row[4] > newest[source][0]:
                newest[source] = (row[4], epoch)
        found = []
        for source_id, through, watermark, max_event, updated in rows:
            epoch, _, partition = str(source_id).rpartition(":")
            source = source_of_id(str(source_id))
            if epoch != newest[source][1]:
                continue
            found.append(
                PartitionProgress(
                    source_id=str(source_id),
                    partition=int(partition) if partition.isdigit() else None,
                    source=source,
                    through_offset=int(through),
                    watermark_ms=_event_ms(int(watermark)),
                    max_event_ms=_event_ms(int(max_event)),
                    updated_at_ms=_ms(updated) or 0,
                )
            )
        return sorted(
            found,
            key=lambda p: (
                p.source != "events",
                p.source,
                p.partition is None,
                p.partition,
                p.source_id,
            ),
        )

    def newest_windows(self, generation: int) -> dict[tuple[str, int], NewestWindows]:
        """Per (metric, window_ms): newest speed window, newest final speed window, and
        newest batch window under an authoritative coverage version, within the last
        ``NEWEST_WITHIN_DAYS`` (partition pruning keeps this cheap as tables grow). No
        FINAL needed: re-written rows keep their window_start; ``final`` only turns on."""
        recent = f"window_start >= now64(3) - INTERVAL {NEWEST_WITHIN_DAYS} DAY"
        speed = self.storage.query(
            "SELECT metric, window_ms, max(window_start), maxIf(window_start, final = 1) "
            f"FROM {self.db}.speed_windows WHERE generation = {{g:UInt32}} AND {recent} "
            "GROUP BY metric, window_ms",
            {"g": generation},
        )
        batch = self.storage.query(
            f"SELECT metric, window_ms, max(window_start) FROM {self.db}.batch_windows "
            f"WHERE {recent} AND (metric, toStartOfHour(window_start), version) IN "
            f"(SELECT metric, hour_start, version FROM {self.db}.batch_coverage FINAL) "
            "GROUP BY metric, window_ms"
        )
        found: dict[tuple[str, int], NewestWindows] = {}
        for metric, window_ms, newest, newest_final in speed:
            found[(str(metric), int(window_ms))] = NewestWindows(
                _ms(newest), _ms(newest_final), None
            )
        for metric, window_ms, newest in batch:
            key = (str(metric), int(window_ms))
            old = found.get(key, NewestWindows(None, None, None))
            found[key] = NewestWindows(old.speed_ms, old.speed_final_ms, _ms(newest))
        return found

    def job_counts(self) -> dict[str, dict[str, int]]:
        """kind -> state -> number of jobs, over the whole history."""
        rows = self.storage.query(
            f"SELECT kind, state, count() FROM {self.db}.jobs FINAL GROUP BY kind, state"
        )
        counts: dict[str, dict[str, int]] = {}
        for kind, state, n in rows:
            counts.setdefault(str(kind), {})[str(state)] = int(n)
        return counts

    def mean_batch_seconds(self, last: int = 20) -> float | None:
        """Mean duration of the last ``last`` succeeded batch runs."""
        rows = self.storage.query(
            "SELECT avg(d) FROM (SELECT dateDiff('millisecond', started_at, finished_at) AS d "
            f"FROM {self.db}.jobs FINAL WHERE kind = 'batch' AND state = 'succeeded' "
            "AND started_at IS NOT NULL AND finished_at IS NOT NULL "
            "ORDER BY finished_at DESC LIMIT {n:UInt32})",
            {"n": last},
        )
        value: Any = rows[0][0] if rows else None
        return None if value is None or value != value else float(value) / 1000
