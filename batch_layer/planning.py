"""Which event hours a batch run recomputes: pure logic over file names and coverage.

An hour is *dirty* when the archive received a file for it since the last run (new
events, late events included), or when its coverage is missing for some metric (a new
metric: backfill) or stops short of the hour's end (the last run's horizon fell inside
it). An incremental run recomputes exactly the dirty hours, so its cost follows what
changed, not the size of the history; a full run recomputes every hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path

from stratum.archive import HOUR_MS, hour_of_file, parse_file_name

__all__ = ["RecomputeMode", "dirty_hours", "hour_of_file", "lagging_sources",
           "options_from_params", "source_of_file"]


class RecomputeMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


def dirty_hours(file_hours: Mapping[str, int], processed: set[str],
                coverage: Mapping[tuple[str, int], int], metrics: Iterable[str],
                mode: RecomputeMode, start_ms: int | None = None,
                end_ms: int | None = None) -> set[int]:
    """Hours to recompute. ``file_hours``: archive file -> its hour; ``processed``: files
    earlier runs read; ``coverage``: (metric, hour) -> the horizon (ms) it is final to."""
    hours = set(file_hours.values())
    if mode == RecomputeMode.FULL:
        chosen = hours | {hour for _, hour in coverage}
    else:
        chosen = {hour for path, hour in file_hours.items() if path not in processed}
        names = list(metrics)
        for hour in hours:
            for metric in names:
                horizon = coverage.get((metric, hour))
                if horizon is None or horizon < hour + HOUR_MS:
                    chosen.add(hour)
                    break
    if start_ms is not None:
        chosen = {h for h in chosen if h + HOUR_MS > start_ms}
    if end_ms is not None:
        chosen = {h for h in chosen if h < end_ms}
    return chosen


def options_from_params(params: Mapping[str, object]) -> tuple[RecomputeMode, int | None,
                                                                int | None]:
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


def source_of_file(path: Path) -> tuple[str, int]:
    """(``epoch:partition``, last offset) from ``events-<epoch>-p<partition>-<first>-<last>``."""
    epoch, partition, _first, last = parse_file_name(path)
    return f"{epoch}:{partition}", last


def lagging_sources(files: Iterable[Path], consumed: Mapping[str, int]
                    ) -> dict[str, list[Path]]:
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
