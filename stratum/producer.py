"""Batched producing into the log: events are grouped by partition (hash of event_id, so
duplicates land together) and packed many to a Kafka message as NDJSON, because the
speed layer's cost is per message, not per event. In the core because ingest writes the
events topic and the speed layer the late and dead-letter topics."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stratum.errors import LogUnavailableError
from stratum.events import Event, encode_events
from stratum.kafka_security import aiokafka_options
from stratum.settings import KafkaSettings

log = logging.getLogger(__name__)


class AckJournal(Protocol):
    """Where acknowledged messages go before ``send`` returns (:class:`ingest.journal.
    Journal`, wired in by :mod:`stratum.app.durable`)."""

    def append(self, messages: Sequence[tuple[int, int, bytes]]) -> int: ...

    async def commit(self, sequence: int) -> None: ...


def partition_for(event_id: str, partitions: int) -> int:
    return zlib.crc32(event_id.encode()) % partitions


def pack(events: Sequence[Event], partitions: int, per_message: int) -> list[tuple[int, bytes]]:
    """``(partition, NDJSON message)`` pairs, at most ``per_message`` events each."""
    by_partition: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_partition[partition_for(event["event_id"], partitions)].append(event)
    messages = []
    for partition, group in sorted(by_partition.items()):
        for start in range(0, len(group), per_message):
            messages.append((partition, encode_events(group[start : start + per_message])))
    return messages


class EventProducer:
    """Owns one aiokafka producer; ``send`` returns once the log has acknowledged and,
    with a ``journal`` (the embedded broker, whose log is in memory), once the journal
    holds the acknowledged messages on disk."""

    def __init__(self, kafka: KafkaSettings, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.partitions = kafka.partitions
        self.last_error: str | None = None  # the last send failed: the log looks down
        self.journal: AckJournal | None = None
        self.acked: dict[int, int] = {}  # events topic: partition -> last offset acknowledged
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=int(timeout_s * 1000),
            enable_idempotence=False,
            **aiokafka_options(kafka),
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
            found = self._producer._metadata.partitions_for_topic(self.kafka.topic)  # noqa: SLF001
            if found:
                self.partitions = len(found)
        except KafkaError as exc:
            raise LogUnavailableError(
                f"cannot connect to Kafka at {self.bootstrap}: {exc}"
            ) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, events: Sequence[Event], topic: str | None = None) -> int:
        """Produce events; raises :class:`LogUnavailableError` if the log did not take
        all of them in time (the caller then reports failure: nothing is acknowledged
        that the log did not acknowledge)."""
        if not events:
            return 0
        topic = topic or self.kafka.topic
        messages = pack(events, self.partitions, self.kafka.events_per_message)
        try:
            futures = [
                await self._producer.send(topic, value, partition=partition)
                for partition, value in messages
            ]
            metas = await asyncio.wait_for(asyncio.gather(*futures), timeout=self.timeout_s)
        except (KafkaError, TimeoutError) as exc:
            self.last_error = (
                f"the log did not acknowledge {len(events)} event(s) within "
                f"{self.timeout_s:g} s: {exc or type(exc).__name__}"
            )
            raise LogUnavailableError(f"{self.last_error}; retry later") from exc
        self.last_error = None
        if topic == self.kafka.topic:
            for meta in metas:
                if meta.offset > self.acked.get(meta.partition, -1):
                    self.acked[meta.partition] = meta.offset
            if self.journal is not None:  # one record, then the group commit's fsync
                sequence = self.journal.append(
                    [
                        (meta.partition, meta.offset, value)
                        for meta, (_, value) in zip(metas, messages, strict=True)
                    ]
                )
                await self.journal.commit(sequence)
        return len(events)

    async def send_raw(self, topic: str, value: bytes, partition: int | None = None) -> None:
        try:
            await self._producer.send_and_wait(topic, value, partition=partition)
        except KafkaError as exc:
            raise LogUnavailableError(f"could not write to {topic}: {exc}") from exc
