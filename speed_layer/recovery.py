"""Retire ended log epochs at start: reconcile their speed rows with the archive, then stop
treating their checkpoints as progress.

The embedded broker keeps its log in memory, so every start is a new epoch and an ended
epoch's log is gone; its archive is all that is left of it. A SIGKILLed epoch leaves

- checkpoints that never move again: one "ahead of its archive" capped the batch horizon
  for good, its watermark bounded the final-bucket cache and it showed as lag;
- windows the speed layer counted from events that never reached the archive (the speed
  layer flushes every second, the archive every few): *orphans*, served until a batch
  run or a replay replaced them, and then gone.

:func:`retire_dead_epochs` runs before the speed layer starts (after any recovery that
puts acknowledged events into a dead epoch's archive). Per source partition ``E:p`` of
each ended epoch ``E`` it rebuilds, with the speed layer's own aggregation
(:class:`PartitionAggregator`, fed as a Kappa replay feeds it), the windows that can
differ from the archive:

- windows still open at death (ending after the checkpoint's watermark): the archive may
  hold events the speed layer never saw, and the log that would have brought them is gone;
- windows whose newest row was written after the first offset the archive lacks: they may
  hold orphans.

Those windows are written again for ``E:p`` with a newer version (``through_offset``, the
ReplacingMergeTree version) and marked final; such a window with no archived event at
all is deleted. Then ``E`` is recorded in ``retired_epochs`` (see
:mod:`stratum.storage.epochs`). A crash before that record leaves only rows equal to the
archive, and the next start does the same work again; a retired epoch is skipped.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from speed_layer.aggregator import NO_WATERMARK, PartitionAggregator, WindowRow
from speed_layer.replay import archive_ranges, read_range
from speed_layer.store import PreparedFlush, SpeedStore
from stratum import archive
from stratum.archive import HOUR_MS
from stratum.metrics import MetricCatalog, MetricDefinition
from stratum.settings import Settings
from stratum.sources import BUILTIN, is_source_log
from stratum.storage import Storage, epochs, generations

log = logging.getLogger(__name__)
NEVER_LATE_MS = 2**61  # lateness of the rebuild: every window stays open, nothing is late
WindowId = tuple[str, int, str]  # metric, window start (ms), group key


@dataclass(frozen=True, slots=True)
class Retirement:
    """What retiring one epoch did."""

    epoch: str
    sources: int
    windows: int  # window rows rebuilt from the archive
    removed: int  # windows deleted: counted by the speed layer, none of it archived
    events: int  # archived events read into the rebuild


def dead_sources(
    sources: Iterable[str], current_epoch: str, retired: set[str]
) -> dict[str, list[str]]:
    """Epoch -> its source ids, for every epoch that is neither current nor retired.
    A ``[[source]]``'s ids (``orders:0``) are no epoch: its topic outlives Stratum."""
    found: dict[str, set[str]] = defaultdict(set)
    for source in sources:
        epoch = epochs.epoch_of(source)
        if epoch != current_epoch and epoch not in retired and not is_source_log(epoch):
            found[epoch].add(source)
    return {epoch: sorted(found[epoch]) for epoch in sorted(found)}


def archived_through(ranges: Iterable[tuple[int, int]]) -> int:
    """The last offset of the archive's gapless prefix from offset 0, given its files'
    ``(first, last)`` offset ranges (they may overlap); -1 when offset 0 is missing.
    A gap may be a message of nothing but bad items (no file holds it): then more
    windows are rebuilt than needed, never fewer."""
    through = -1
    for first, last in sorted(ranges):
        if first > through + 1:
            break
        through = max(through, last)
    return through


def hours_to_read(
    windows: Iterable[tuple[int, int]], open_after_ms: int, file_hours: Iterable[int]
) -> set[int]:
    """Event hours (epoch ms) of the files a rebuild reads: every hour overlapping one of
    ``windows`` (``(start_ms, length_ms)``), and every hour that can hold a window ending
    after ``open_after_ms`` (the longest window before it, onwards)."""
    hours = {hour for hour in file_hours if hour + HOUR_MS > open_after_ms}
    for start, length in windows:
        first = start - start % HOUR_MS
        hours.update(range(first, start + length, HOUR_MS))
    return hours


def select_rows(
    rows: Iterable[WindowRow], watermark_ms: int, window_ms: dict[str, int], at_risk: set[WindowId]
) -> tuple[list[WindowRow], set[WindowId]]:
    """The rebuilt rows to write (open at death, or at risk), marked final, and the
    windows at risk that the archive has no event for (to delete)."""
    kept = []
    for row in rows:
        metric, start, _ = row.key
        ident = (metric, start, row.group_key)
        if start + window_ms[metric] > watermark_ms or ident in at_risk:
            row.final = True
            kept.append(row)
    return kept, at_risk - {(r.key[0], r.key[1], r.group_key) for r in kept}


@dataclass(frozen=True, slots=True)
class _Source:
    source: str
    watermark_ms: int  # the checkpoint's (NO_WATERMARK without one: every window open)
    newest: int  # highest offset any of its rows or files claims
    ranges: list[tuple[int, list[Path]]]  # (first offset, files), as a replay reads them


class _EpochRebuild:
    def __init__(
        self, settings: Settings, catalog: MetricCatalog, storage: Storage, generation: int
    ) -> None:
        self.settings = settings
        self.metrics: dict[str, MetricDefinition] = {
            m.name: m for m in catalog.for_source(BUILTIN).metrics
        }
        self.storage = storage
        self.store = SpeedStore(storage, generation)
        self.generation = generation

    def newest_rows(self, epoch: str) -> dict[str, int]:
        """Source -> the highest version (``through_offset``) of its rows, for an epoch."""
        return {
            str(s): int(o)
            for s, o in self.storage.query(
                f"SELECT source_id, max(through_offset) FROM {self.storage.database}.speed_windows "
                "WHERE generation = {g:UInt32} AND startsWith(source_id, {e:String}) "
                "GROUP BY source_id",
                {"g": self.generation, "e": f"{epoch}:"},
            )
        }

    def at_risk(self, epoch: str, archived: dict[str, int]) -> dict[str, set[WindowId]]:
        """Per source, the windows whose newest row is past its archived prefix (only of
        metrics still defined as their rows were written)."""
        rows = self.storage.query(
            "SELECT source_id, metric, window_ms, toUnixTimestamp64Milli(window_start), "
            f"group_key, any(mapKeys(dims)) FROM {self.storage.database}.speed_windows "
            "WHERE generation = {g:UInt32} AND startsWith(source_id, {e:String}) "
            "GROUP BY source_id, metric, window_ms, window_start, group_key "
            "HAVING max(through_offset) > "
            "transform(toString(source_id), {s:Array(String)}, {a:Array(Int64)}, toInt64(-1))",
            {
                "g": self.generation,
                "e": f"{epoch}:",
                "s": list(archived),
                "a": list(archived.values()),
            },
        )
        found: dict[str, set[WindowId]] = defaultdict(set)
        for source, name, window_ms, start, key, dims in rows:
            metric = self.metrics.get(str(name))
            if (
                metric is None
                or metric.window_ms != int(window_ms)
                or set(dims) != set(metric.dimensions)
            ):
                continue  # the definition changed since: a replay rebuilds it
            found[str(source)].add((metric.name, int(start), str(key)))
        return found

    def rebuild(
        self, part: _Source, at_risk: set[WindowId]
    ) -> tuple[pa.Table | None, set[tuple[str, str, int, str]], int]:
        """One source's windows rebuilt from its archive: the rows to write, the windows
        to delete (source first) and the archived events read."""
        longest = max((m.window_ms for m in self.metrics.values()), default=0)
        open_after = (
            NO_WATERMARK if part.watermark_ms == NO_WATERMARK else part.watermark_ms - longest
        )
        file_hours = {archive.hour_of_file(p) for _, paths in part.ranges for p in paths}
        hours = hours_to_read(
            ((start, self.metrics[m].window_ms) for m, start, _ in at_risk), open_after, file_hours
        )
        agg = PartitionAggregator(
            list(self.metrics.values()), NEVER_LATE_MS, dedup_capacity=self.settings.speed.dedup_ids
        )
        events = 0
        for _, paths in part.ranges:
            wanted = [p for p in paths if archive.hour_of_file(p) in hours]
            frame = read_range(wanted) if wanted else None
            if frame is not None and frame.height:
                events += agg.add_frame(
                    frame, int(frame["offset"][-1]), now_ms=int(time.time() * 1000)
                ).aggregated
        rows, missing = select_rows(
            agg.drain(),
            part.watermark_ms,
            {n: m.window_ms for n, m in self.metrics.items()},
            at_risk,
        )
        table = (
            self.store.window_table(part.source, rows, part.newest + 1, int(time.time() * 1000))
            if rows
            else None
        )
        return table, {(part.source, *ident) for ident in missing}, events

    def write(self, tables: list[pa.Table], missing: set[tuple[str, str, int, str]]) -> None:
        """An epoch's rebuilt rows in one insert (newer than every row of their source:
        they replace them), then its windows with no archived event deleted."""
        if tables:
            self.store.commit(PreparedFlush(pa.concat_tables(tables), []))
        if missing:
            self.storage.command(
                f"ALTER TABLE {self.storage.database}.speed_windows DELETE "
                "WHERE generation = {g:UInt32} AND (source_id, metric, "
                "toUnixTimestamp64Milli(window_start), group_key) IN "
                "{k:Array(Tuple(String, String, Int64, String))} SETTINGS mutations_sync = 1",
                {"g": self.generation, "k": sorted(missing)},
            )


def retire_dead_epochs(
    settings: Settings, catalog: MetricCatalog, storage: Storage, current_epoch: str
) -> list[Retirement]:
    """Reconcile and retire every ended epoch of the embedded broker (module docstring);
    nothing with an external Kafka, whose log outlives Stratum (its epoch is always "0").
    Run it before the speed layer consumes; running it again changes nothing."""
    if not settings.kafka.embedded:
        return []
    generation = generations.live_generation(storage)
    checkpoints = {
        str(s): int(w)
        for s, w in storage.query(
            f"SELECT source_id, watermark_ms FROM {storage.database}.speed_checkpoints FINAL "
            "WHERE generation = {g:UInt32}",
            {"g": generation},
        )
    }
    ranges = archive_ranges(archive.list_files(archive.archive_root(settings.data_dir)))
    dead = dead_sources([*checkpoints, *ranges], current_epoch, epochs.retired(storage))
    rebuild = _EpochRebuild(settings, catalog, storage, generation)
    done = []
    for epoch, known in dead.items():
        started = time.perf_counter()
        newest_rows = rebuild.newest_rows(epoch)
        sources = sorted({*known, *newest_rows})  # rows of a flush killed before its checkpoint
        spans = {
            s: [archive.parse_file_name(p)[2:] for _, paths in ranges.get(s, []) for p in paths]
            for s in sources
        }
        archived = {s: archived_through(spans[s]) for s in sources}
        at_risk = rebuild.at_risk(epoch, archived)
        tables: list[pa.Table] = []
        missing: set[tuple[str, str, int, str]] = set()
        events = 0
        for source in sources:
            newest = max([newest_rows.get(source, -1), *(last for _, last in spans[source])])
            part = _Source(
                source, checkpoints.get(source, NO_WATERMARK), newest, ranges.get(source, [])
            )
            table, gone, read = rebuild.rebuild(part, at_risk.get(source, set()))
            tables += [table] if table is not None else []
            missing |= gone
            events += read
        rebuild.write(tables, missing)
        written, removed = sum(t.num_rows for t in tables), len(missing)
        epochs.record_retired(storage, epoch, len(sources), written, events)
        done.append(Retirement(epoch, len(sources), written, removed, events))
        log.info(
            "retired log epoch %s (%d partition(s)) in %.2f s: %d window(s) rebuilt "
            "from %d archived event(s), %d window(s) with no archived event removed",
            epoch,
            len(sources),
            time.perf_counter() - started,
            written,
            events,
            removed,
        )
    return done
