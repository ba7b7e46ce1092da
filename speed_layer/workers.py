"""The work behind the Faust agent, kept out of Faust's per-event machinery.

The agent only queues each message (:meth:`SpeedWorker.handle`). Queued messages are
decoded together, once, into a columnar frame (:mod:`stratum.event_frames`) that feeds
both the window aggregation and the archive buffer; windows are upserted on a timer,
archive files written on another, and a message is acknowledged (so Faust commits it)
only once both its window rows and its archive file are stored."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import polars as pl

from speed_layer.aggregator import PartitionAggregator
from speed_layer.batch_delivery import message_records
from speed_layer.replay import HANDOFF_TIMEOUT_S  # the replay runner's own deadline
from speed_layer.store import SpeedStore
from stratum import archive, telemetry
from stratum.definitions_apply import bound_here
from stratum.errors import LogUnavailableError
from stratum.event_frames import DecodedBatch, concat_frames, decode_messages
from stratum.events import Event
from stratum.metrics import MetricCatalog
from stratum.producer import EventProducer
from stratum.settings import Settings
from stratum.sources import BUILTIN, SourceMapper
from stratum.storage import StorageError, generations
from stratum.storage.definitions import DefinitionStore

SIDE_COLUMNS = (
    "kind",
    "recorded_at",
    "ts",
    "event_id",
    "reason",
    "topic",
    "partition",
    "offset",
    "payload",
)
Origin = tuple[str, int, int]  # topic, partition, offset of a log message
# Queued messages are aggregated at each flush, or as soon as this many bytes wait (about
# 100,000 demo events): big enough to amortise the columnar work (Arrow's JSON reader
# costs ~2.3 us/event on batches of 10 messages, ~1.4 on 100), small enough to bound
# memory and the pause. Bytes, not events: counting lines per message cost 2 % of a worker.
APPLY_AT_BYTES = 16 * 1024 * 1024
# ... or once the oldest queued message has waited this long, so that a flush finds its
# events aggregated already and writes at once (freshness: aggregating a second's worth
# at the flush put ~0.4 s between the timer and the write under load).
APPLY_AFTER_S = 0.2

log = logging.getLogger(__name__)


def retry_delay_s(failures: int) -> float:
    """Back-off after ``failures`` failed flushes in a row: 1 s, 2 s, 4 s ... 30 s."""
    return min(30.0, 0.5 * 2.0**failures)


def error_text(exc: BaseException) -> str:
    """An error for health and logs: its type too (a MemoryError has no message)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def defined_sources(catalog: MetricCatalog) -> dict[str, str]:
    """The ``[[source]]``s some metric of ``catalog`` reads: name -> topic."""
    found = {}
    for name in catalog.source_names[1:]:
        source = catalog.source(name)
        if source is not None:
            found[name] = source.topic
    return found


class AckingStream(Protocol):
    async def ack(self, event: Any) -> bool: ...


class _Acks:
    """Faust events waiting for their data to be stored before they are acknowledged."""

    def __init__(self) -> None:
        self.stream: AckingStream | None = None
        self.pending: list[Any] = []

    def take(self) -> list[Any]:
        pending, self.pending = self.pending, []
        return pending

    async def ack(self, events: list[Any]) -> None:
        assert self.stream is not None
        for event in events:
            await self.stream.ack(event)


class SpeedWorker:
    def __init__(
        self,
        settings: Settings,
        catalog: MetricCatalog,
        store: SpeedStore,
        producer: EventProducer,
        log_epoch: str,
        archiver: ArchiveWorker | None = None,
        mapper: SourceMapper | None = None,
    ) -> None:
        """``mapper``: a ``[[source]]``'s mapping (``log_epoch`` is then its name);
        None: the built-in topic."""
        self.settings = settings
        self.mapper = mapper
        self.source = mapper.source.name if mapper else BUILTIN
        self.catalog = catalog
        self.store = store
        self.producer = producer
        self.log_epoch = log_epoch
        self.partitions: dict[int, PartitionAggregator] = {}
        self.assigned: set[int] = set()  # partitions of the events topic Faust gave us
        self.acks = _Acks()
        self.last_event_wall = 0.0
        self.last_flush_wall = 0.0
        self.last_flush_error: str | None = None
        self.broken: str | None = None  # set when aggregation failed: see _apply
        self._backoff_until = 0.0
        self._failures = 0
        self.archiver = archiver or ArchiveWorker(settings, log_epoch, self.source)
        # partition -> (offset, value, Kafka timestamp ms) of messages taken, not aggregated
        self._inbox: dict[int, list[tuple[int, bytes, int | None]]] = {}
        self._inbox_bytes = 0
        self._inbox_since = 0.0  # monotonic time the oldest queued message came
        self._topics: dict[int, str] = {}  # partition -> its topic, for side records
        self._written: dict[int, int] = {}  # partition -> offset its stored rows hold
        self.received: dict[int, int] = {}  # partition -> last offset taken from the log
        self._side: list[list[Any]] = []
        self._lock = asyncio.Lock()
        self._running = asyncio.Event()  # cleared while paused for a replay's hand-off
        self._running.set()
        self.paused_for: int | None = None
        self._paused_at = 0.0
        self.definitions_version: int | None = None  # of the catalog computed now
        # [[source]]s some metric of those definitions reads: name -> topic. A source
        # added at run time is here but has no worker until the workers restart (Faust
        # subscribes agents at start): the health says so.
        self.defined_sources: dict[str, str] = {}

    @property
    def stored_offsets(self) -> Mapping[int, int]:
        """Partition -> the offset through which its window rows are in ClickHouse."""
        return self._written

    @property
    def stored_through(self) -> dict[int, int]:
        """Partition -> the offset through which window rows and archive are both stored
        (what is acknowledged, so Faust commits it)."""
        archived = self.archiver.stored
        return {p: min(through, archived.get(p, -1)) for p, through in self._written.items()}

    def source_id(self, partition: int) -> str:
        return f"{self.log_epoch}:{partition}"

    async def _aggregator(self, partition: int) -> PartitionAggregator:
        agg = self.partitions.get(partition)
        if agg is None:
            agg = PartitionAggregator(
                self.catalog.metrics,
                self.settings.speed.allowed_lateness_ms,
                dedup_capacity=self.settings.speed.dedup_ids,
            )
            source = self.source_id(partition)
            checkpoint = await asyncio.to_thread(self.store.load_checkpoint, source)
            if checkpoint is not None:
                through, max_event_ms = checkpoint
                agg.max_event_ms = max_event_ms
                windows = await asyncio.to_thread(
                    self.store.load_open_windows,
                    source,
                    agg.watermark_ms,
                    {m.name: m for m in self.catalog.metrics},
                )
                agg.recover(through, max_event_ms, windows)
                self._written.setdefault(partition, through)  # stored before we took it
                log.info(
                    "partition %d resumed after offset %d with %d open window(s)",
                    partition,
                    through,
                    len(windows),
                )
            self.partitions[partition] = agg
        return agg

    async def handle(self, event: Any) -> None:
        if not self._running.is_set():  # paused: backpressure, or a replay's hand-off
            await self._running.wait()
        self._receive(event)
        if (
            self._inbox_bytes >= APPLY_AT_BYTES
            or time.monotonic() - self._inbox_since >= APPLY_AFTER_S
        ):
            async with self._lock:
                await self._apply()

    def _receive(self, event: Any) -> None:
        """Queue what ``event`` carries: a fetched batch of a partition's messages
        (:mod:`speed_layer.batch_delivery`), or one message."""
        message = event.message
        records = message_records(message, event.value)
        if not self._inbox:
            self._inbox_since = time.monotonic()
        self._inbox.setdefault(message.partition, []).extend(records)
        self._inbox_bytes += sum(len(value) for _, value, _ in records)
        self._topics[message.partition] = message.topic
        self.received[message.partition] = message.offset
        self.last_event_wall = time.time()
        self.acks.pending.append(event)

    async def _apply(self) -> None:
        """Aggregate and buffer for the archive every queued message (lock held: a flush
        must never store a checkpoint claiming offsets whose events its rows lack)."""
        newer = bound_here(self.store.storage.database)
        if (
            newer is not None
            and self.definitions_version is not None
            and newer > self.definitions_version
        ):
            return  # keep them queued: the flush loads that version first, then applies
        inbox, self._inbox = self._inbox, {}
        self._inbox_bytes = 0
        now_ms = int(time.time() * 1000)
        for partition, messages in inbox.items():
            agg = await self._aggregator(partition)
            # Off the event loop: Arrow's reader and Polars let go of the GIL, so the API
            # (same loop in `stratum up`) and Faust's fetches go on while a batch decodes.
            decoded = await asyncio.to_thread(self._decode, partition, messages, now_ms)
            last = messages[-1][0]
            topic = self._topics.get(partition, self.settings.kafka.topic)
            try:
                result = agg.add_frame(decoded.frame, last, now_ms)
            except Exception as exc:
                # Fail-stop: the state may hold part of this batch, so nothing more is
                # stored or acknowledged; a restart resumes from the last consistent
                # checkpoint and the log delivers these messages again.
                self.broken = f"{type(exc).__name__}: {exc}"
                self._running.clear()  # the agent stops taking messages: backpressure
                log.critical(
                    "speed aggregation failed; storing nothing until restarted", exc_info=exc
                )
                raise
            self.archiver.add(partition, decoded.frame, last)
            telemetry.SPEED_EVENTS.inc(result.aggregated)
            telemetry.SPEED_SKIPPED.inc(result.skipped)
            telemetry.SPEED_DUPLICATES.inc(result.duplicates)
            for bad in decoded.bad:
                offset, value, _ = messages[bad.message]
                await self._dead_letter((topic, partition, offset), bad.index, bad.reason, value)
            if result.late:
                telemetry.SPEED_LATE.inc(len(result.late))
                watermark = agg.watermark_ms
                for late_event, offset in zip(result.late, result.late_offsets, strict=True):
                    self._record(
                        "late",
                        (topic, partition, offset),
                        f"its window had closed (watermark {watermark})",
                        late_event,
                        orjson.dumps(late_event).decode(),
                    )
                await self._send_late(result.late)

    def _decode(
        self, partition: int, messages: list[tuple[int, bytes, int | None]], now_ms: int
    ) -> DecodedBatch:
        """One partition's queued messages as a frame: the built-in topic's NDJSON, or a
        source's mapping (which also reads the Kafka timestamp)."""
        if self.mapper is None:
            return decode_messages(
                [(offset, value) for offset, value, _ in messages], now_ms=now_ms
            )
        return self.mapper.decode(
            partition,
            [(offset, value, stamp or 0) for offset, value, stamp in messages],
            now_ms=now_ms,
        )

    def _record(
        self, kind: str, origin: Origin, reason: str, event: Event | None, payload: str
    ) -> None:
        """Keep a side event for ``side_events`` (written with the next flush)."""
        ts = event.get("ts") if event else None
        topic, partition, offset = origin
        self._side.append(
            [
                kind,
                datetime.now(tz=UTC),
                datetime.fromtimestamp(ts / 1000, tz=UTC) if isinstance(ts, int) else None,
                str(event.get("event_id", "")) if event else "",
                reason[:1000],
                topic,
                partition,
                offset,
                payload[:4096],
            ]
        )

    async def _send_late(self, late: list[Event]) -> None:
        try:
            await self.producer.send(late, topic=self.settings.kafka.late_topic)
        except LogUnavailableError as exc:  # still archived; batch corrects the window
            log.warning("could not send %d late event(s): %s", len(late), exc)

    async def _dead_letter(
        self, origin: Origin, index: int | None, reason: str, value: bytes
    ) -> None:
        telemetry.DEAD_LETTERS.inc()
        self._record(
            "dead_letter",
            origin,
            reason if index is None else f"item {index}: {reason}",
            None,
            value[:4096].decode("utf-8", errors="replace"),
        )
        topic, partition, offset = origin
        log.warning("dead letter: %s[%d]@%d item %s: %s", topic, partition, offset, index, reason)
        record = orjson.dumps(
            {
                "reason": reason,
                "source": self.source,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "index": index,
                "value": value[:65536].decode("utf-8", errors="replace"),
            }
        )
        try:
            await self.producer.send_raw(self.settings.kafka.dead_letter_topic, record)
        except LogUnavailableError as exc:
            log.error("dead-letter topic unreachable, record logged only: %s", exc)

    async def flush(self) -> None:
        """Upsert changed windows, then acknowledge what is stored in both sinks; write
        the archive too when its buffer is due (full, or its interval passed)."""
        await self._flush_windows()
        if self.archiver.due:
            await self.flush_archive()

    async def _flush_windows(self) -> None:
        if time.monotonic() < self._backoff_until or self.broken:
            return
        async with self._lock:
            await self._apply()
            now_ms = int(time.time() * 1000)
            idle_ms = int(self.settings.speed.idle_timeout_s * 1000)
            for agg in self.partitions.values():
                agg.advance_idle(now_ms, idle_ms)
            side, self._side = self._side, []
            drained = {p: agg.drain() for p, agg in self.partitions.items()}
            changed = {
                p: rows
                for p, rows in drained.items()
                if rows or self.partitions[p].through_offset != self._written.get(p)
            }
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._write, changed, side)
            except Exception as exc:  # noqa: BLE001 - whatever failed, nothing is lost
                # ClickHouse down (StorageError) or anything else (a bug, MemoryError):
                # the rows go back to be written again, stored offsets do not move, so
                # nothing is acknowledged that is not stored.
                self._side[:0] = side
                for p, rows in drained.items():
                    if p in self.partitions:
                        self.partitions[p].restore(rows)
                self._failures += 1
                delay = retry_delay_s(self._failures)
                self._backoff_until = time.monotonic() + delay
                self.last_flush_error = error_text(exc)
                telemetry.SPEED_FLUSH_ERRORS.inc()
                log.error(
                    "speed flush failed (retry in %.1f s): %s",
                    delay,
                    self.last_flush_error,
                    exc_info=not isinstance(exc, StorageError),
                )
                return
            self._failures = 0
            self.last_flush_error = None
            self.last_flush_wall = time.time()
            telemetry.SPEED_FLUSH.observe(time.perf_counter() - started)
            for p, rows in drained.items():
                telemetry.SPEED_ROWS.inc(len(rows))
                owned = self.partitions.get(p)  # may be revoked meanwhile
                if owned is not None:
                    telemetry.WATERMARK.labels(partition=str(p)).set(owned.watermark_ms)
                    owned.evict_final()
            await self._ack_stored()
            again = await self._follow_generation()
        if again is not None:  # switched generations: the lock is free again
            for event in again:
                self._receive(event)
            self._running.set()

    async def flush_archive(self) -> None:
        """Write the archive buffer, then acknowledge what is stored in both sinks. The
        write holds the archiver's own lock, not the worker's: the agent goes on
        aggregating and the windows go on being flushed meanwhile (a write of 200 K
        events takes ~0.1 s)."""
        if self.broken:
            return
        async with self._lock:
            await self._apply()
        if await self.archiver.flush():
            async with self._lock:
                await self._ack_stored()

    async def _ack_stored(self) -> None:
        """Acknowledge the messages whose window rows and archive file are both stored."""
        stored = self.stored_through
        ready, waiting = [], []
        for event in self.acks.pending:
            message = event.message
            if message.offset <= stored.get(message.partition, -1):
                ready.append(event)
            else:
                waiting.append(event)
        self.acks.pending = waiting
        if ready:
            await self.acks.ack(ready)

    async def _follow_generation(self) -> list[Any] | None:
        """Kappa hand-off, seen from a live worker: pause when a replay asks (after this
        flush, so everything consumed is stored) and report offsets; switch to the new
        generation when readers do, resuming from its checkpoints."""
        state = await asyncio.to_thread(generations.read_state, self.store.storage)
        version = state.definitions
        redefined = version is not None and version != self.definitions_version
        if state.live != self.store.generation or redefined:
            if version is not None and redefined:  # metrics added or deleted, or a new
                # generation's; a source's worker computes that source's metrics only
                catalog = await asyncio.to_thread(
                    DefinitionStore(self.store.storage).catalog, version
                )
                self.catalog = catalog.for_source(self.source)
                self.defined_sources = defined_sources(catalog)
                self.definitions_version = version
                log.info(
                    "computing definitions version %s (%d metric(s))",
                    state.definitions,
                    len(self.catalog.metrics),
                )
            if state.live != self.store.generation:
                log.info("switching from generation %d to %d", self.store.generation, state.live)
            self.store.generation = state.live
            self.partitions.clear()  # recovered lazily from the new generation's rows
            self._written.clear()
            self.paused_for = None
            # Messages taken but not yet stored were counted only in the old state: the
            # caller queues them again (what the new generation holds is skipped by offset,
            # what the archive holds by the archiver) and then resumes.
            self._inbox, self._inbox_bytes = {}, 0
            for partition in sorted(self.assigned):  # what they hold counts as stored
                await self._aggregator(partition)
            return self.acks.take()
        if state.handoff is not None and self.paused_for != state.handoff:
            self._running.clear()
            self.paused_for = state.handoff
            self._paused_at = time.monotonic()
            # Every assigned partition, also those without a message since the last
            # switch (their aggregator is recovered from the checkpoint): the replay
            # waits for a position from every source the live generation holds.
            for partition in sorted(self.assigned | set(self.partitions)):
                agg = await self._aggregator(partition)
                await asyncio.to_thread(
                    generations.report_position,
                    self.store.storage,
                    self.source_id(partition),
                    agg.through_offset,
                )
            log.info("paused for the hand-off to generation %d", state.handoff)
        elif state.handoff is None and self.paused_for is not None:
            self.paused_for = None  # the replay gave up: carry on in the live generation
            self._running.set()
        elif not self._running.is_set() and (
            time.monotonic() - self._paused_at > 2 * HANDOFF_TIMEOUT_S
        ):
            # The replay has given up by now (its own deadline is half this): resume, and
            # do not pause again for the same hand-off.
            log.warning("hand-off to generation %s stalled: resuming", self.paused_for)
            self._running.set()
        return None

    def _write(self, changed: dict[int, list[Any]], side: list[list[Any]]) -> None:
        self.store.storage.insert("side_events", side, SIDE_COLUMNS)
        # Every partition's rows in one insert, then every checkpoint in one (per-insert
        # cost in ClickHouse, not per row, dominated a flush written partition by partition).
        checkpoints = {p: self.partitions[p].checkpoint() for p in changed}
        self.store.write_many(
            [(self.source_id(p), rows, checkpoints[p]) for p, rows in changed.items()]
        )
        for partition, checkpoint in checkpoints.items():
            self._written[partition] = checkpoint["through_offset"]

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked: unacknowledged messages go to their next owner, who
        resumes from ClickHouse."""
        self.assigned -= partitions
        self.archiver.forget(partitions)
        for partition in partitions:
            self.partitions.pop(partition, None)
            self._written.pop(partition, None)
            self.received.pop(partition, None)
            self._inbox_bytes -= sum(len(v) for _, v, _ in self._inbox.pop(partition, []))
        self.acks.pending = [e for e in self.acks.pending if e.message.partition not in partitions]


class ArchiveWorker:
    """Buffers decoded events per partition and writes immutable Parquet files; knows
    through which offset each partition is stored."""

    def __init__(self, settings: Settings, log_epoch: str, source: str = BUILTIN) -> None:
        self.settings = settings
        self.log_epoch = log_epoch
        self.root = archive.archive_root(settings.data_dir, source)
        self.frames: dict[int, list[pl.DataFrame]] = defaultdict(list)
        self.buffered = 0
        self.added: dict[int, int] = {}  # partition -> last offset buffered
        self.stored: dict[int, int] = {}  # partition -> last offset stored in a file
        self.last_flush_wall = 0.0
        self.last_flush_error: str | None = None
        self._last_flush = time.monotonic()
        self._failures = 0
        self._retry_at = 0.0  # monotonic time before which a failed write is not retried
        # One write at a time: a flush's offsets count as stored only after every
        # earlier flush's files are written.
        self._writing = asyncio.Lock()

    def add(self, partition: int, frame: pl.DataFrame, through_offset: int) -> None:
        """Buffer a batch's events; offsets already buffered (messages queued again after
        a generation switch) are not archived twice."""
        done = self.added.get(partition, -1)
        if through_offset <= done:
            return
        if frame.height and frame["offset"][0] <= done:
            frame = frame.filter(pl.col("offset") > done)
        if frame.height:
            self.frames[partition].append(frame)
            self.buffered += frame.height
        self.added[partition] = through_offset

    @property
    def due(self) -> bool:
        return (
            self.buffered >= self.settings.archive.max_buffered_events
            or time.monotonic() - self._last_flush >= self.settings.archive.flush_interval_s
        )

    async def flush(self) -> bool:
        """Write every buffered frame; whether it worked. A failed write, whatever the
        error (a full disk, a Polars error, MemoryError), keeps the frames for the next
        flush and leaves ``stored`` alone, so their offsets are never acknowledged
        without a file; retries back off."""
        async with self._writing:
            return await self._flush()

    async def _flush(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        marks = dict(self.added)
        frames, self.frames = self.frames, defaultdict(list)
        count, self.buffered = self.buffered, 0
        self._last_flush = time.monotonic()
        started = time.perf_counter()
        try:
            files = await asyncio.to_thread(self._write, frames)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing is lost
            for partition, parts in frames.items():
                if partition in self.added:  # not revoked meanwhile
                    self.frames[partition][:0] = parts
                    self.buffered += sum(f.height for f in parts)
            self._failures += 1
            delay = retry_delay_s(self._failures)
            self._retry_at = time.monotonic() + delay
            self.last_flush_error = error_text(exc)
            telemetry.ARCHIVE_FLUSH_ERRORS.inc()
            log.error(
                "archive write failed (retry in %.1f s): %s",
                delay,
                self.last_flush_error,
                exc_info=not isinstance(exc, OSError),
            )
            return False
        # Not for a partition revoked while its file was written: its next owner
        # resumes from what ClickHouse holds.
        self.stored.update({p: mark for p, mark in marks.items() if p in self.added})
        self._failures = 0
        self._retry_at = 0.0
        self.last_flush_error = None
        self.last_flush_wall = time.time()
        telemetry.ARCHIVE_FLUSH.observe(time.perf_counter() - started)
        telemetry.ARCHIVE_EVENTS.inc(count)
        telemetry.ARCHIVE_FILES.inc(files)
        return True

    def _write(self, frames: dict[int, list[pl.DataFrame]]) -> int:
        written = 0
        for partition, parts in frames.items():
            if not parts:
                continue
            frame = concat_frames(parts)
            written += len(
                archive.write_frame(
                    self.root, self.log_epoch, partition, frame, *archive.offset_range(frame)
                )
            )
        return written

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.buffered -= sum(f.height for f in self.frames.pop(partition, []))
            self.added.pop(partition, None)
            self.stored.pop(partition, None)
