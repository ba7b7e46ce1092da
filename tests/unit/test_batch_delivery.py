"""A fetched batch acknowledged as one message commits exactly its offsets, through
Faust's own commit bookkeeping (``Consumer._new_offset``), on a consumer that is never
started (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.types import TP

from speed_layer.batch_delivery import (
    FETCH_MAX_WAIT_MS,
    BatchDeliveryConsumer,
    BatchDeliveryTransport,
    BatchMessage,
    QuickFetchConsumerThread,
    message_records,
)

TOPIC = "orders"
TP0 = TP(TOPIC, 0)


def _record(offset: int, partition: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        TOPIC, partition, offset, 1_700_000_000_000, 0, None, f"v{offset}".encode(), None, 0, 2, ()
    )


def _batch(offsets: list[int], first: int | None = None) -> BatchMessage:
    return BatchMessage(
        TP0, [_record(o) for o in offsets], offsets[0] if first is None else first, None
    )


@pytest.fixture
def consumer() -> Iterator[BatchDeliveryConsumer]:
    loop = asyncio.new_event_loop()

    async def make() -> BatchDeliveryConsumer:
        app = faust.App(
            "batch-delivery-test",
            broker="kafka://127.0.0.1:1",
            autodiscover=False,
            web_enabled=False,
        )

        async def nothing(*_: Any) -> None:
            return None

        transport = BatchDeliveryTransport(app.conf.broker_consumer, app)
        made = transport.create_consumer(
            callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
        )
        app.topics.add(app.topic(TOPIC, value_serializer="raw"))
        await app.topics._update_indices()  # what Faust does when the agents subscribe
        assert isinstance(made, BatchDeliveryConsumer)
        return made

    try:
        yield loop.run_until_complete(make())
    finally:
        loop.close()


def test_a_batch_carries_its_records_and_the_last_offset() -> None:
    batch = _batch([5, 6, 9], first=3)
    assert (batch.offset, batch.first_offset, batch.partition, batch.tp) == (9, 3, 0, TP0)
    assert batch.timestamp == 1_700_000_000.0
    assert [(o, v) for o, v, _ in message_records(batch, b"")] == [
        (5, b"v5"),
        (6, b"v6"),
        (9, b"v9"),
    ]
    assert {stamp for _, _, stamp in message_records(batch, b"")} == {1_700_000_000_000}


def test_acknowledging_a_batch_commits_through_its_last_offset(
    consumer: BatchDeliveryConsumer,
) -> None:
    # Offsets without a record (3, 4 before it; 7, 8 inside it) are the batch's too.
    assert consumer.ack(_batch([5, 6, 9], first=3))
    assert consumer._new_offset(TP0) == 10
    assert consumer._n_acked == 7


def test_a_batch_is_acknowledged_once(consumer: BatchDeliveryConsumer) -> None:
    batch = _batch([0, 1, 2])
    assert consumer.ack(batch) and not consumer.ack(batch)
    assert consumer._n_acked == 3


def test_no_commit_passes_a_batch_not_yet_acknowledged(consumer: BatchDeliveryConsumer) -> None:
    consumer._committed_offset[TP0] = 10
    assert consumer.ack(_batch([12, 13, 14]))
    assert consumer._new_offset(TP0) is None  # 10 and 11 are still out
    assert consumer.ack(_batch([10, 11]))
    assert consumer._new_offset(TP0) == 15


def test_offsets_already_committed_are_not_acknowledged_again(
    consumer: BatchDeliveryConsumer,
) -> None:
    consumer._committed_offset[TP0] = 8
    assert consumer.ack(_batch([5, 6, 7, 8, 9]))
    assert sorted(consumer._acked[TP0]) == [8, 9]


def test_a_fetch_becomes_a_batch_per_partition_without_what_was_read(
    consumer: BatchDeliveryConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = {
        TopicPartition(TOPIC, 0): [_record(o) for o in (4, 5, 6)],
        TopicPartition(TOPIC, 1): [_record(o, 1) for o in (3, 4)],
        TopicPartition(TOPIC, 2): [_record(7, 2)],
    }

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        return fetched, {TP0, TP(TOPIC, 1)}  # partition 2 paused meanwhile

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 0)
    consumer._read_offset[TP0] = 5  # delivered through 4 already: 5 is next
    consumer._read_offset[TP(TOPIC, 1)] = 1  # a seek to 1, and 1 and 2 hold no record
    loop = asyncio.new_event_loop()
    try:
        batches = loop.run_until_complete(consumer._fetch_batches(timeout=0.1))
    finally:
        loop.close()
    assert [(b.tp, b.first_offset, b.offset, len(b.records)) for b in batches] == [
        (TP0, 5, 6, 2),
        (TP(TOPIC, 1), 1, 4, 2),
    ]


def test_the_worker_consumer_fetches_with_a_short_broker_wait(
    consumer: BatchDeliveryConsumer,
) -> None:
    thread = consumer._new_consumer_thread()
    assert isinstance(thread, QuickFetchConsumerThread)
    loop = asyncio.new_event_loop()
    try:

        async def make() -> Any:
            return thread._create_worker_consumer(consumer.transport)

        made = loop.run_until_complete(make())
    finally:
        loop.close()
    assert made._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500
