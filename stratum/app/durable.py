"""Durable acceptance on the embedded broker, whose log lives in memory: wiring of the
journal (:mod:`ingest.journal`) into ``stratum up``.

- at start, before the speed layer consumes: :func:`recover_at_start` archives what a
  dead epoch acknowledged but never archived (the platform then retires dead epochs);
- while running: ingest answers 202 only once the journal is fsync'd; every
  ``PRUNE_INTERVAL_S`` segments the speed layer has stored (windows and archive) go;
- at a graceful stop: :meth:`DurableAcceptance.drain` waits, bounded by
  ``STRATUM_API__DRAIN_TIMEOUT_S``, until the speed layer has stored everything ingest
  got acknowledged; what a timed-out drain leaves stays in the journal for the next start.

With an external Kafka none of this runs: ``acks=all`` is the durability point there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from ingest.journal import Journal, journal_dir
from ingest.recovery import recover_journal
from stratum.producer import EventProducer
from stratum.settings import Settings

log = logging.getLogger("stratum.durable")
PRUNE_INTERVAL_S = 2.0
DRAIN_POLL_S = 0.05


class StoringWorker(Protocol):
    """What the drain and the pruning need of the in-process speed worker."""

    received: dict[int, int]

    @property
    def stored_through(self) -> Mapping[int, int]: ...

    async def flush(self) -> None: ...

    async def flush_archive(self) -> None: ...


async def recover_at_start(settings: Settings, epoch: str) -> None:
    """Journal recovery: before anything consumes or retires a dead epoch, its archive
    gets what it acknowledged (:mod:`ingest.recovery`)."""
    started = time.monotonic()
    recovered = await asyncio.to_thread(recover_journal, settings.data_dir, epoch)
    if recovered.segments_deleted:
        log.info("journal recovery took %.1f s", time.monotonic() - started)


class DurableAcceptance:
    """The journal of one ``stratum up``, its pruning and the drain at stop."""

    def __init__(self, settings: Settings, epoch: str, producer: EventProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.journal = Journal(journal_dir(settings.data_dir), epoch)
        self.worker: StoringWorker | None = None
        producer.journal = self.journal
        self._pruner: asyncio.Task[None] | None = None

    def start(self, worker: StoringWorker) -> None:
        self.worker = worker
        self._pruner = asyncio.create_task(self._prune_forever(), name="journal-prune")

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            self.prune()

    def prune(self, *, closing: bool = False) -> None:
        if self.worker is not None:
            try:
                self.journal.prune(self.worker.stored_through, closing=closing)
            except OSError as exc:  # a segment left behind is recovered (idempotently)
                log.warning("could not delete a journal segment: %s", exc)

    async def drain(self) -> bool:
        """Wait until the speed layer has stored (windows and archive) every offset ingest
        got acknowledged, flushing once it has taken them from the log; ``False`` when
        ``drain_timeout_s`` ran out first (the journal keeps the rest)."""
        worker = self.worker
        target = dict(self.producer.acked)
        started = time.monotonic()
        deadline = started + self.settings.api.drain_timeout_s
        behind = target
        while worker is not None:
            stored = worker.stored_through
            behind = {p: o for p, o in target.items() if stored.get(p, -1) < o}
            if not behind:
                log.info(
                    "drained the log into windows and archive in %.1f s", time.monotonic() - started
                )
                return True
            if time.monotonic() >= deadline:
                break
            if all(worker.received.get(p, -1) >= o for p, o in behind.items()):
                await worker.flush()
                await worker.flush_archive()
            await asyncio.sleep(DRAIN_POLL_S)
        log.warning(
            "drain stopped after %.1f s with %d partition(s) not stored through "
            "the last accepted offset; the journal keeps them for the next start",
            time.monotonic() - started,
            len(behind),
        )
        return False

    async def close(self) -> None:
        """After the speed layer stopped: delete what it stored, close the files."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        self.prune(closing=True)
        left = self.journal.segment_count
        self.journal.close()
        if left:
            log.info("%d journal segment(s) kept for recovery at the next start", left)
