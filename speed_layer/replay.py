"""Kappa replay: rebuild the speed views into a new generation with the speed layer's own
code (``PartitionAggregator`` → ``SpeedStore``), reading the archive for history and
then the log, while readers keep the live generation; switch when caught up.

A replay *from* a time rebuilds the windows that start at or after its start (the time
aligned down to where every metric's windows begin, :meth:`MetricCatalog.replay_start_ms`)
from every event at or after it; the windows before are carried over from the live
generation at the switch (unless batch serves them), so nothing served disappears.

1. **Archive.** Every archived offset range, per source partition in offset order (ranges
   re-archived after a crash overlap; the aggregator skips offsets it already holds).
2. **Log.** The current log's partitions from just after the archived offsets, with a
   plain consumer (no group: the replay must not steal the live worker's partitions).
3. **Hand-off.** When the replay has read, in every partition, to within
   ``CATCH_UP_OFFSETS`` of the offset the live generation last stored (offsets, not event
   times: on an idle partition the live event-time clock runs on with the wall clock),
   it asks live workers to pause at their next flush and report their offsets, reads the
   log past those offsets, writes its state, carries the older windows over, and switches
   ``live_generation``. Its checkpoints say the reported offsets, so workers resume from
   there; each window's own offset skips what it already holds, and carried windows still
   open get the events after the pause.
4. **Drop** the old generation. A cancelled or failed replay drops the new one instead;
   the live generation is never touched before the switch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from aiokafka import AIOKafkaConsumer, TopicPartition

from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum import archive
from stratum.event_frames import concat_frames, decode_messages
from stratum.kafka_security import aiokafka_options
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.sources import SourceMapper, source_of_id
from stratum.storage import Storage, generations

log = logging.getLogger(__name__)
CATCH_UP_OFFSETS = 100  # messages per partition the replay may trail when it hands off
BUILDING = -1  # a generation's checkpoint offset until its switch: not resumable yet
HANDOFF_TIMEOUT_S = 30.0
FLUSH_EVERY_S = 1.0


class ReplayCancelledError(Exception):
    """The job was cancelled; the new generation is dropped."""


@dataclass
class ReplayProgress:
    phase: str
    units_done: int
    units_total: int
    events: int
    generation: int
    rebuild_from_ms: int | None = None  # windows starting here or later are rebuilt
    carried_rows: int | None = None  # windows carried over at the switch


@dataclass
class _Sources:
    """One aggregator per source partition (``epoch:partition``)."""

    settings: Settings
    catalog: MetricCatalog
    start_ms: int | None
    aggregators: dict[str, PartitionAggregator] = field(default_factory=dict)
    events: int = 0

    def get(self, source: str) -> PartitionAggregator:
        agg = self.aggregators.get(source)
        if agg is None:  # a partition of one source: that source's metrics
            agg = self.aggregators[source] = PartitionAggregator(
                self.catalog.for_source(source_of_id(source)).metrics,
                self.settings.speed.allowed_lateness_ms,
                dedup_capacity=self.settings.speed.dedup_ids,
            )
        return agg

    def add(self, source: str, frame: pl.DataFrame, through_offset: int) -> None:
        """A batch of one source's events (:mod:`stratum.event_frames` layout)."""
        if self.start_ms is not None:
            frame = frame.filter(pl.col("ts") >= self.start_ms)
        self.get(source).add_frame(frame, through_offset, now_ms=int(time.time() * 1000))
        self.events += frame.height


def archive_ranges(files: list[Path]) -> dict[str, list[tuple[int, list[Path]]]]:
    """source -> [(first offset, files of that range)], in offset order."""
    by_source: dict[str, dict[int, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in files:
        epoch, partition, first, _last = archive.parse_file_name(path)
        by_source[f"{epoch}:{partition}"][first].append(path)
    return {source: sorted(ranges.items()) for source, ranges in by_source.items()}


def read_range(paths: list[Path]) -> pl.DataFrame:
    """The events of one archived range in offset order, as a frame like those the live
    worker decodes (older files also hold a ``payload`` column, not needed)."""
    frames = [pl.read_parquet(path).drop("payload", strict=False) for path in paths]
    frame = concat_frames(frames)
    return frame.sort("offset", maintain_order=True).select(
        "offset",
        "event_id",
        pl.col("ts").dt.epoch("ms"),
        "type",
        pl.exclude("offset", "event_id", "ts", "type"),
    )


class ReplayRunner:
    def __init__(
        self,
        settings: Settings,
        catalog: MetricCatalog,
        storage: Storage,
        bootstrap: str,
        log_epoch: str,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.storage = storage
        self.bootstrap = bootstrap
        self.log_epoch = log_epoch
        self._mappers = {
            s.topic: SourceMapper(s) for s in catalog.sources if s.name in catalog.source_names
        }
        # Called with the new generation just before readers switch to it: binds it to
        # the definitions version it was built with (stratum.storage.definitions).
        self.on_switch: Callable[[int], None] | None = None

    async def run(
        self,
        from_ms: int | None,
        progress: Callable[[ReplayProgress], None],
        cancelled: Callable[[], bool],
    ) -> int:
        """Rebuild from ``from_ms`` (aligned down), or all of history; the new generation."""
        generation = await asyncio.to_thread(generations.next_generation, self.storage)
        store = SpeedStore(self.storage, generation)
        start = None if from_ms is None else self.catalog.replay_start_ms(from_ms)
        sources = _Sources(self.settings, self.catalog, start)
        progress(ReplayProgress("archive", 0, 0, 0, generation, start))
        try:
            await self._archive(sources, store, generation, progress, cancelled)
            await self._log(sources, store, generation, progress, cancelled)
        except BaseException:
            await asyncio.to_thread(generations.request_handoff, self.storage, None)
            await asyncio.to_thread(generations.drop_generation, self.storage, generation)
            raise
        return generation

    async def _archive(
        self,
        sources: _Sources,
        store: SpeedStore,
        generation: int,
        progress: Callable[[ReplayProgress], None],
        cancelled: Callable[[], bool],
    ) -> None:
        ranges: dict[str, list[tuple[int, list[Path]]]] = {}
        for name in self.catalog.source_names:  # each source's own directory
            root = archive.archive_root(self.settings.data_dir, name)
            ranges.update(archive_ranges(await asyncio.to_thread(archive.list_files, root)))
        total = sum(len(r) for r in ranges.values())
        done = 0
        for source, source_ranges in sorted(ranges.items()):
            for _, paths in source_ranges:
                if cancelled():
                    raise ReplayCancelledError
                frame = await asyncio.to_thread(read_range, paths)
                if frame.height:
                    sources.add(source, frame, int(frame["offset"][-1]))
                done += 1
                progress(
                    ReplayProgress(
                        "archive", done, total, sources.events, generation, sources.start_ms
                    )
                )
            await asyncio.to_thread(self._flush, sources, store, [source])
        log.info(
            "replay into generation %d: %d archived range(s), %d events",
            generation,
            total,
            sources.events,
        )

    def _flush(
        self,
        sources: _Sources,
        store: SpeedStore,
        only: list[str] | None = None,
        resume_after: dict[str, int] | None = None,
    ) -> None:
        """Write changed windows that start at or after the replay's start (those before
        hold only part of their events). Until the switch (``resume_after`` None) the
        checkpoints say :data:`BUILDING`: the switch then stores the offsets to resume
        after, which may be below what the rows hold (a checkpoint's version is its
        offset, so an earlier, higher one would win)."""
        flushes = []
        for source, agg in sources.aggregators.items():
            if only is not None and source not in only:
                continue
            rows = agg.drain()
            if sources.start_ms is not None:
                rows = [r for r in rows if r.key[1] >= sources.start_ms]
            if rows or agg.through_offset >= 0:
                flushes.append((source, rows, agg.checkpoint()))
            agg.evict_final()
        resume = (
            resume_after
            if resume_after is not None
            else {source: BUILDING for source, _, _ in flushes}
        )
        if flushes:
            store.write_many(flushes, resume)

    async def _log(
        self,
        sources: _Sources,
        store: SpeedStore,
        generation: int,
        progress: Callable[[ReplayProgress], None],
        cancelled: Callable[[], bool],
    ) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            **aiokafka_options(self.settings.kafka),
        )
        await consumer.start()
        try:
            tps, mine = [], []
            for topic, log_id in self._topics().items():
                partitions = sorted(consumer.partitions_for_topic(topic) or [])
                tps += [TopicPartition(topic, p) for p in partitions]
                mine += [f"{log_id}:{p}" for p in partitions]
            consumer.assign(tps)
            for tp, source in zip(tps, mine, strict=True):
                agg = sources.aggregators.get(source)
                if agg is not None and agg.through_offset >= 0:
                    consumer.seek(tp, agg.through_offset + 1)
                else:
                    await consumer.seek_to_beginning(tp)
            await self._follow(consumer, sources, store, generation, mine, progress, cancelled)
        finally:
            await consumer.stop()

    async def _follow(
        self,
        consumer: AIOKafkaConsumer,
        sources: _Sources,
        store: SpeedStore,
        generation: int,
        mine: list[str],
        progress: Callable[[ReplayProgress], None],
        cancelled: Callable[[], bool],
    ) -> None:
        """Read the log until caught up, hand off, switch."""
        last_flush = time.monotonic()
        handoff_at: float | None = None
        targets: dict[str, int] | None = None
        while True:
            if cancelled():
                raise ReplayCancelledError
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            topics = self._topics()
            for tp, records in batches.items():
                if not records:
                    continue
                # Bad items: the live worker dead-letters them; nothing to count here.
                mapper = self._mappers.get(tp.topic)
                decoded = (
                    mapper.decode(tp.partition, [(r.offset, r.value, r.timestamp) for r in records])
                    if mapper
                    else decode_messages([(r.offset, r.value or b"") for r in records])
                )
                sources.add(f"{topics[tp.topic]}:{tp.partition}", decoded.frame, records[-1].offset)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                await asyncio.to_thread(self._flush, sources, store)
                last_flush = time.monotonic()
            live = await asyncio.to_thread(self._live_progress)
            lag = max(
                (
                    through - sources.get(s).through_offset
                    for s, (through, _) in live.items()
                    if s in mine
                ),
                default=0,
            )
            progress(ReplayProgress("log", 1, 1, sources.events, generation, sources.start_ms))
            if handoff_at is None and lag <= CATCH_UP_OFFSETS:
                await asyncio.to_thread(generations.request_handoff, self.storage, generation)
                handoff_at = time.monotonic()
                log.info(
                    "replay generation %d caught up (%d message(s) behind): handing off",
                    generation,
                    max(lag, 0),
                )
            if handoff_at is not None:
                if time.monotonic() - handoff_at > HANDOFF_TIMEOUT_S:
                    raise TimeoutError(
                        "the hand-off did not complete within "
                        f"{HANDOFF_TIMEOUT_S:.0f} s (live workers paused: "
                        f"{targets is not None}); the live generation stays"
                    )
                if targets is None:
                    targets = await asyncio.to_thread(self._reported, live, mine)
                if targets is not None and all(
                    sources.get(s).through_offset >= off for s, off in targets.items()
                ):
                    carried = await asyncio.to_thread(
                        self._switch, sources, store, generation, mine, targets
                    )
                    progress(
                        ReplayProgress(
                            "switched", 1, 1, sources.events, generation, sources.start_ms, carried
                        )
                    )
                    return

    def _topics(self) -> dict[str, str]:
        """Topic -> what stands for the epoch in its source ids: the built-in topic's
        log epoch, a source's name."""
        found = {self.settings.kafka.topic: self.log_epoch}
        for name in self.catalog.source_names:
            source = self.catalog.source(name)
            if source is not None:
                found[source.topic] = source.log_id(
                    self.log_epoch if self.settings.kafka.embedded else None
                )
        return found

    def _live_progress(self) -> dict[str, tuple[int, int]]:
        """source -> (through offset, newest event ms) of the live generation."""
        live = generations.live_generation(self.storage)
        rows = self.storage.query(
            f"SELECT source_id, through_offset, max_event_ms FROM {self.storage.database}"
            ".speed_checkpoints FINAL WHERE generation = {g:UInt32}",
            {"g": live},
        )
        return {str(s): (int(o), int(m)) for s, o, m in rows}

    def _reported(self, live: dict[str, tuple[int, int]], mine: list[str]) -> dict[str, int] | None:
        """Offsets paused workers reported, once every live source of this log has."""
        reported = generations.positions(self.storage)
        wanted = [s for s in live if s in mine]
        if all(s in reported for s in wanted):
            return {s: reported[s] for s in wanted}
        return None

    def _switch(
        self,
        sources: _Sources,
        store: SpeedStore,
        generation: int,
        mine: list[str],
        targets: dict[str, int],
    ) -> int | None:
        """Live workers are paused: write the rest, carry the older windows over, switch.
        Returns how many windows were carried over (None: a replay of all history)."""
        self._flush(sources, store, resume_after=targets)
        old = generations.live_generation(self.storage)
        carried = None
        if sources.start_ms is not None:
            carried = generations.carry_over(self.storage, old, generation, sources.start_ms)
        if self.on_switch is not None:
            self.on_switch(generation)
        generations.set_live(self.storage, generation)
        generations.request_handoff(self.storage, None)
        generations.clear_positions(self.storage, mine)
        generations.drop_generation(self.storage, old)
        log.info(
            "replay: readers and workers switched to generation %d (dropped %d, "
            "carried %s window row(s) over)",
            generation,
            old,
            carried,
        )
        return carried
