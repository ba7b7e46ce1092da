"""A backlog of one-event messages, far more than a stream's buffer holds, is counted
exactly once, reaches the worker in fetched batches (:mod:`speed_layer.batch_delivery`),
and Faust commits every partition through its last offset once it is stored."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from speed_layer.batch_delivery import BATCHES
from speed_layer.delivery import DELIVERIES
from stratum.producer import partition_for
from tests.processes import committed_offsets
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MESSAGES = 20_000


def _produce_one_per_message(stack: Stack, kind: str, ts: int) -> dict[int, int]:
    """The last offset written per partition."""
    kafka = stack.settings.kafka

    async def produce() -> dict[int, int]:
        # One batch per partition (all sent within the linger): the worker fetches them
        # at once, more than the stream's buffer holds.
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap, linger_ms=3_000, max_batch_size=8 << 20
        )
        await producer.start()
        try:
            sent = []
            for i in range(MESSAGES):
                event_id = f"{kind}-{i}"
                value = orjson.dumps(
                    {"event_id": event_id, "ts": ts + i % 1000, "type": kind, "country": "DE"}
                )
                sent.append(
                    await producer.send(
                        kafka.topic, value, partition=partition_for(event_id, kafka.partitions)
                    )
                )
            last: dict[int, int] = {}
            for meta in await asyncio.gather(*sent):
                last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
            return last
        finally:
            await producer.stop()

    return asyncio.run(produce())


def test_a_backlog_of_single_event_messages_is_counted_once(stack: Stack) -> None:
    kind = f"backlog{time.time_ns()}"
    ts = int(time.time() * 1000)
    span = (ts - 120_000, ts + 120_000)
    before, batches_before = dict(DELIVERIES), dict(BATCHES)
    last = _produce_one_per_message(stack, kind, ts)
    wait_until(
        lambda: stack.total("events", *span, type=kind) >= MESSAGES,
        90,
        f"{MESSAGES:,} one-event messages in the speed layer",
    )
    time.sleep(2 * stack.settings.speed.flush_interval_s + 0.5)  # later flushes add nothing
    assert stack.total("events", *span, type=kind) == MESSAGES

    # Acknowledging a batch acknowledges every offset in it: Faust commits through the end.
    kafka = stack.settings.kafka

    def committed() -> dict[int, int]:
        return asyncio.run(
            committed_offsets(
                stack.bootstrap, stack.settings.speed.consumer_group, kafka.topic, kafka.partitions
            )
        )

    wait_until(
        lambda: all(committed().get(p, 0) > o for p, o in last.items()),
        30,
        f"offsets committed through {last}",
    )

    # The messages came in batches (a delivery per fetch of a partition, not per message),
    # each delivery started eagerly, none by Faust's own per-message path.
    batches = BATCHES["batches"] - batches_before["batches"]
    messages = BATCHES["messages"] - batches_before["messages"]
    eager = DELIVERIES["eager"] - before["eager"]
    print(
        f"\n{messages} messages in {batches} batches; deliveries: {eager} eager, "
        f"{DELIVERIES['waited'] - before['waited']} waited, "
        f"{DELIVERIES['faust'] - before['faust']} by Faust's own path"
    )
    assert messages >= MESSAGES
    assert 0 < batches <= MESSAGES // 100
    assert eager > 0 and DELIVERIES["faust"] == before["faust"]
