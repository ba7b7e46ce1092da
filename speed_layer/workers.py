"""The per-message work behind the Faust agents, kept out of Faust's per-event machinery:
decode a whole message at once, aggregate into plain structures, flush on a timer, and
acknowledge (so Faust commits) only what is safely stored."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from ingest.producer import EventProducer
from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum import archive, telemetry
from stratum.errors import LogUnavailableError
from stratum.events import Event, MessageDecodeError, decode_message
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage import StorageError, generations

SIDE_COLUMNS = ("kind", "recorded_at", "ts", "event_id", "reason", "topic", "partition",
                "offset", "payload")
HANDOFF_TIMEOUT_S = 30.0  # the replay runner's own deadline (speed_layer.replay)

log = logging.getLogger(__name__)


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
    def __init__(self, settings: Settings, catalog: MetricCatalog, store: SpeedStore,
                 producer: EventProducer, log_epoch: str) -> None:
        self.settings = settings
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
        self._backoff_until = 0.0
        self._failures = 0
        self._written: dict[int, int] = {}
        self._side: list[list[Any]] = []
        self._lock = asyncio.Lock()
        self._running = asyncio.Event()  # cleared while paused for a replay's hand-off
        self._running.set()
        self.paused_for: int | None = None
        self._paused_at = 0.0

    def source_id(self, partition: int) -> str:
        return f"{self.log_epoch}:{partition}"

    async def _aggregator(self, partition: int) -> PartitionAggregator:
        agg = self.partitions.get(partition)
        if agg is None:
            agg = PartitionAggregator(self.catalog.metrics, self.settings.speed.allowed_lateness_ms,
                                      dedup_capacity=self.settings.speed.dedup_ids)
            source = self.source_id(partition)
            checkpoint = await asyncio.to_thread(self.store.load_checkpoint, source)
            if checkpoint is not None:
                through, max_event_ms = checkpoint
                agg.max_event_ms = max_event_ms
                windows = await asyncio.to_thread(
                    self.store.load_open_windows, source, agg.watermark_ms,
                    {m.name: m for m in self.catalog.metrics})
                agg.recover(through, max_event_ms, windows)
                log.info("partition %d resumed after offset %d with %d open window(s)",
                         partition, through, len(windows))
            self.partitions[partition] = agg
        return agg

    async def handle(self, event: Any) -> None:
        await self._running.wait()
        await self._process(event)

    async def _process(self, event: Any) -> None:
        message = event.message
        agg = await self._aggregator(message.partition)
        self.last_event_wall = time.time()
        try:
            events, bad = decode_message(event.value)
        except MessageDecodeError as exc:
            await self._dead_letter(message, None, str(exc), event.value)
            events, bad = [], []
        # Not while a flush is writing: it writes the windows' state and the partition's
        # through_offset from a worker thread, and an add in between would make the stored
        # checkpoint claim offsets whose events the stored rows do not hold (lost on resume).
        async with self._lock:
            result = agg.add(message.offset, events, int(time.time() * 1000))
        telemetry.SPEED_EVENTS.inc(result.aggregated)
        telemetry.SPEED_SKIPPED.inc(result.skipped)
        telemetry.SPEED_DUPLICATES.inc(result.duplicates)
        for index, reason in bad:
            await self._dead_letter(message, index, reason, event.value)
        if result.late:
            telemetry.SPEED_LATE.inc(len(result.late))
            watermark = agg.watermark_ms
            for late_event in result.late:
                self._record("late", message, f"its window had closed (watermark {watermark})",
                             late_event, orjson.dumps(late_event).decode())
            await self._send_late(result.late)
        self.acks.pending.append(event)

    def _record(self, kind: str, message: Any, reason: str, event: Event | None,
                payload: str) -> None:
        """Keep a side event for ``side_events`` (written with the next flush)."""
        ts = event.get("ts") if event else None
        self._side.append([
            kind, datetime.now(tz=UTC),
            datetime.fromtimestamp(ts / 1000, tz=UTC) if isinstance(ts, int) else None,
            str(event.get("event_id", "")) if event else "", reason[:1000], message.topic,
            message.partition, message.offset, payload[:4096]])

    async def _send_late(self, late: list[Event]) -> None:
        try:
            await self.producer.send(late, topic=self.settings.kafka.late_topic)
        except LogUnavailableError as exc:  # still archived; batch corrects the window
            log.warning("could not send %d late event(s): %s", len(late), exc)

    async def _dead_letter(self, message: Any, index: int | None, reason: str, value: bytes
                           ) -> None:
        telemetry.DEAD_LETTERS.inc()
        self._record("dead_letter", message, reason if index is None else f"item {index}: "
                     f"{reason}", None, value[:4096].decode("utf-8", errors="replace"))
        log.warning("dead letter: %s[%d]@%d item %s: %s", message.topic, message.partition,
                    message.offset, index, reason)
        record = orjson.dumps({
            "reason": reason, "topic": message.topic, "partition": message.partition,
            "offset": message.offset, "index": index,
            "value": value[:65536].decode("utf-8", errors="replace"),
        })
        try:
            await self.producer.send_raw(self.settings.kafka.dead_letter_topic, record)
        except LogUnavailableError as exc:
            log.error("dead-letter topic unreachable, record logged only: %s", exc)

    async def flush(self) -> None:
        """Upsert changed windows, then acknowledge the messages they hold."""
        if time.monotonic() < self._backoff_until:
            return
        async with self._lock:
            now_ms = int(time.time() * 1000)
            idle_ms = int(self.settings.speed.idle_timeout_s * 1000)
            for agg in self.partitions.values():
                agg.advance_idle(now_ms, idle_ms)
            pending = self.acks.take()
            side, self._side = self._side, []
            drained = {p: agg.drain() for p, agg in self.partitions.items()}
            changed = {p: rows for p, rows in drained.items()
                       if rows or self.partitions[p].through_offset != self._written.get(p)}
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._write, changed, side)
            except StorageError as exc:
                self._side[:0] = side
                for p, rows in drained.items():
                    if p in self.partitions:
                        self.partitions[p].restore(rows)
                self.acks.pending[:0] = pending
                self._failures += 1
                delay = min(30.0, 0.5 * 2 ** self._failures)
                self._backoff_until = time.monotonic() + delay
                self.last_flush_error = str(exc)
                telemetry.SPEED_FLUSH_ERRORS.inc()
                log.error("speed flush failed (retry in %.1f s): %s", delay, exc)
                return
            self._failures = 0
            self.last_flush_error = None
            self.last_flush_wall = time.time()
            telemetry.SPEED_FLUSH.observe(time.perf_counter() - started)
            for p, rows in drained.items():
                telemetry.SPEED_ROWS.inc(len(rows))
                agg = self.partitions.get(p)  # may be revoked meanwhile
                if agg is not None:
                    telemetry.WATERMARK.labels(partition=str(p)).set(agg.watermark_ms)
                    agg.evict_final()
            if pending:
                await self.acks.ack(pending)
            again = await self._follow_generation()
        if again is not None:  # switched generations: outside the lock, which _process takes
            for event in again:
                await self._process(event)
            self._running.set()

    async def _follow_generation(self) -> list[Any] | None:
        """Kappa hand-off, seen from a live worker: pause when a replay asks (after this
        flush, so everything consumed is stored) and report offsets; switch to the new
        generation when readers do, resuming from its checkpoints."""
        state = await asyncio.to_thread(generations.read_state, self.store.storage)
        if state.live != self.store.generation:
            log.info("switching from generation %d to %d", self.store.generation, state.live)
            self.store.generation = state.live
            self.partitions.clear()  # recovered lazily from the new generation's rows
            self._written.clear()
            self.paused_for = None
            # Messages taken but not yet stored were counted only in the old state: the
            # caller applies them again (what the new generation holds is skipped by offset)
            # and then resumes.
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
                await asyncio.to_thread(generations.report_position, self.store.storage,
                                        self.source_id(partition), agg.through_offset)
            log.info("paused for the hand-off to generation %d", state.handoff)
        elif state.handoff is None and self.paused_for is not None:
            self.paused_for = None  # the replay gave up: carry on in the live generation
            self._running.set()
        elif not self._running.is_set() and (
                time.monotonic() - self._paused_at > 2 * HANDOFF_TIMEOUT_S):
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
        self.store.write_many([(self.source_id(p), rows, checkpoints[p])
                               for p, rows in changed.items()])
        for partition, checkpoint in checkpoints.items():
            self._written[partition] = checkpoint["through_offset"]

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked: unacknowledged messages go to their next owner, who
        resumes from ClickHouse."""
        self.assigned -= partitions
        for partition in partitions:
            self.partitions.pop(partition, None)
            self._written.pop(partition, None)
        self.acks.pending = [e for e in self.acks.pending
                             if e.message.partition not in partitions]


class ArchiveWorker:
    """Buffers raw events per partition and writes immutable Parquet files."""

    def __init__(self, settings: Settings, log_epoch: str) -> None:
        self.settings = settings
        self.log_epoch = log_epoch
        self.root = archive.archive_root(settings.data_dir)
        self.buffer: dict[int, list[tuple[int, Event]]] = defaultdict(list)
        self.buffered = 0
        self.acks = _Acks()
        self.last_flush_wall = 0.0
        self.last_flush_error: str | None = None
        self._lock = asyncio.Lock()

    async def handle(self, event: Any) -> None:
        message = event.message
        try:
            events, _ = decode_message(event.value)  # bad records: the speed agent DLQs them
        except MessageDecodeError:
            events = []
        bucket = self.buffer[message.partition]
        bucket.extend((message.offset, e) for e in events)
        self.buffered += len(events)
        self.acks.pending.append(event)
        if self.buffered >= self.settings.archive.max_buffered_events:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self.acks.pending:
                return
            buffer, self.buffer = self.buffer, defaultdict(list)
            pending = self.acks.take()
            count, self.buffered = self.buffered, 0
            try:
                files = await asyncio.to_thread(self._write, buffer)
            except OSError as exc:
                for partition, rows in buffer.items():
                    self.buffer[partition][:0] = rows
                self.buffered += count
                self.acks.pending[:0] = pending
                self.last_flush_error = str(exc)
                log.error("archive write failed, will retry: %s", exc)
                return
            self.last_flush_error = None
            self.last_flush_wall = time.time()
            telemetry.ARCHIVE_EVENTS.inc(count)
            telemetry.ARCHIVE_FILES.inc(files)
            await self.acks.ack(pending)

    def _write(self, buffer: dict[int, list[tuple[int, Event]]]) -> int:
        written = 0
        for partition, rows in buffer.items():
            written += len(archive.write_partition_range(self.root, self.log_epoch, partition,
                                                         rows))
        return written

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.buffered -= len(self.buffer.pop(partition, []))
        self.acks.pending = [e for e in self.acks.pending
                             if e.message.partition not in partitions]
