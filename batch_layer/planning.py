"""Which event hours a batch run recomputes: pure logic over file names and coverage.

A window belongs to the hour of its *start* (serving joins it to that hour's coverage).
An hour's events are *changed* when the archive received a file for it since the last
run (new events, late events included) or when a new copy of an ``event_id`` displaced
the copy that counted there (:mod:`batch_layer.dedup`). An hour is *incomplete* when
its coverage is missing for some metric (a new metric: backfill) or stops before the end
of the last window starting in it (the last run's horizon fell inside it).

A changed hour changes every window that overlaps it, so a run *writes*, per metric,
the hours holding those windows' starts (with hopping windows, or windows longer than
an hour, also earlier hours) plus the incomplete hours, and *reads* every hour those
windows reach into (also later hours). An incremental run does exactly this, so its cost
follows what changed, not the size of the history; a full run treats every hour as
changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stratum.archive import HOUR_MS, hour_of_file, parse_file_name
from stratum.metrics import MetricDefinition

__all__ = [
    "HourPlan",
    "RecomputeMode",
    "dirty_hours",
    "hour_of_file",
    "lagging_sources",
    "log_order",
    "options_from_params",
    "plan_hours",
    "source_of_file",
]


class RecomputeMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


def window_starts_in(hour: int, hop_ms: int) -> range:
    """Starts (epoch-aligned to the hop) of the windows that begin in ``hour``."""
    return range(-(-hour // hop_ms) * hop_ms, hour + HOUR_MS, hop_ms)


def last_window_end(hour: int, metric: MetricDefinition) -> int:
    """Where the last window starting in ``hour`` ends: its coverage is complete once its
    horizon is there (an hour where no window starts is complete at once)."""
    starts = window_starts_in(hour, metric.hop_ms)
    return starts[-1] + metric.window_ms if starts else hour


def hours_written_for(hour: int, metric: MetricDefinition) -> set[int]:
    """Hours holding the start of a window that overlaps ``hour``: a change to its
    events changes theirs."""
    first = (hour - metric.window_ms) // metric.hop_ms * metric.hop_ms + metric.hop_ms
    last = (hour + HOUR_MS - 1) // metric.hop_ms * metric.hop_ms
    return {
        h
        for h in range(first // HOUR_MS * HOUR_MS, last + 1, HOUR_MS)
        if window_starts_in(h, metric.hop_ms)
    }


def hours_read_for(hour: int, metric: MetricDefinition) -> set[int]:
    """Hours whose events the windows starting in ``hour`` hold."""
    end = last_window_end(hour, metric)
    return set(range(hour, max(end, hour + 1), HOUR_MS))


@dataclass(frozen=True, slots=True)
class HourPlan:
    """What a run recomputes: ``changed`` hours (their events changed) and
    ``incomplete`` ones (their coverage must be written again)."""

    changed: frozenset[int]
    incomplete: frozenset[int]

    def written(self, metric: MetricDefinition) -> set[int]:
        """Hours whose windows of ``metric`` the run writes (and covers)."""
        hours = set(self.incomplete)
        for hour in self.changed:
            hours |= hours_written_for(hour, metric)
        return hours

    def read(self, metrics: Iterable[MetricDefinition]) -> set[int]:
        """Hours whose files the run reads: every event the written windows hold."""
        hours: set[int] = set()
        for metric in metrics:
            for written in self.written(metric):
                hours |= hours_read_for(written, metric)
        return hours

    def with_changed(self, hours: Iterable[int]) -> HourPlan:
        return HourPlan(self.changed | frozenset(hours), self.incomplete)


def plan_hours(
    file_hours: Mapping[str, int],
    processed: set[str],
    coverage: Mapping[tuple[str, int], int],
    metrics: Iterable[MetricDefinition],
    mode: RecomputeMode,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> HourPlan:
    """Changed and incomplete hours (see the module docstring), within the time range.
    ``file_hours``: archive file -> its hour; ``processed``: files earlier runs read;
    ``coverage``: (metric, hour) -> the horizon (ms) it is final to."""
    hours = set(file_hours.values())
    incomplete: set[int] = set()
    if mode == RecomputeMode.FULL:
        changed = hours | {hour for _, hour in coverage}
    else:
        changed = {hour for path, hour in file_hours.items() if path not in processed}
        defined = list(metrics)
        # Also hours without files: a window starting there may hold a later hour's events.
        for hour in (hours | {hour for _, hour in coverage}) - changed:
            for metric in defined:
                horizon = coverage.get((metric.name, hour))
                if horizon is None or horizon < last_window_end(hour, metric):
                    incomplete.add(hour)
                    break

    def in_range(chosen: set[int]) -> frozenset[int]:
        return frozenset(
            h
            for h in chosen
            if (start_ms is None or h + HOUR_MS > start_ms) and (end_ms is None or h < end_ms)
        )

    return HourPlan(in_range(changed), in_range(incomplete))


def dirty_hours(
    file_hours: Mapping[str, int],
    processed: set[str],
    coverage: Mapping[tuple[str, int], int],
    metrics: Iterable[str],
    mode: RecomputeMode,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> set[int]:
    """Changed or incomplete hours of one-minute tumbling metrics named ``metrics``."""
    defined = [MetricDefinition(name=name, aggregation="count") for name in metrics]
    plan = plan_hours(file_hours, processed, coverage, defined, mode, start_ms, end_ms)
    return set(plan.changed | plan.incomplete)


def options_from_params(
    params: Mapping[str, object],
) -> tuple[RecomputeMode, int | None, int | None]:
    """A batch job's ``params`` (``mode``, ``start_ms``, ``end_ms``) as recompute options;
    a ValueError names the bad parameter."""
    raw_mode = params.get("mode", RecomputeMode.INCREMENTAL.value)
    try:
        mode = RecomputeMode(str(raw_mode))
    except ValueError:
        raise ValueError(f"mode {raw_mode!r} is not one of incremental, full") from None
    bounds: list[int | None] = []
    for name in ("start_ms", "end_ms"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be epoch milliseconds, got {value!r}")
        bounds.append(value)
    start_ms, end_ms = bounds
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ValueError("end_ms must be after start_ms")
    return mode, start_ms, end_ms


def log_order(path: Path) -> tuple[int, int, str, int]:
    """Where a file's source comes in log order: epoch (the embedded broker's start time
    in ms, so numeric order is time order; other names after them, by name), then
    partition. Offsets order events within a source."""
    epoch, partition, _first, _last = parse_file_name(path)
    numeric = epoch.isdigit()
    return (0 if numeric else 1, int(epoch) if numeric else 0, epoch, partition)


def source_of_file(path: Path) -> tuple[str, int]:
    """(``epoch:partition``, last offset) from ``events-<epoch>-p<partition>-<first>-<last>``."""
    epoch, partition, _first, last = parse_file_name(path)
    return f"{epoch}:{partition}", last


def lagging_sources(files: Iterable[Path], consumed: Mapping[str, int]) -> dict[str, list[Path]]:
    """Sources whose archive is behind what the speed layer consumed (``consumed``: source
    -> through offset), each with the files of its newest archived range."""
    newest: dict[str, tuple[int, list[Path]]] = {}
    for path in files:
        source, last = source_of_file(path)
        known = newest.get(source)
        if known is None or last > known[0]:
            newest[source] = (last, [path])
        elif last == known[0]:
            known[1].append(path)
    lagging = {}
    for source, through in consumed.items():
        archived, paths = newest.get(source, (-1, []))
        if archived < through:
            lagging[source] = paths
    return lagging
