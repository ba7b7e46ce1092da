"""A backlog of one-event messages larger than a stream's buffer (Faust's 4,096) is
counted exactly once: the path on which Stratum's consumer waits for the stream to work
its buffer down before delivering more (:mod:`speed_layer.delivery`)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from ingest.producer import partition_for
from speed_layer.delivery import DELIVERIES
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.integration
MESSAGES = 20_000


def _produce_one_per_message(stack: Stack, kind: str, ts: int) -> None:
    kafka = stack.settings.kafka

    async def produce() -> None:
        # One batch per partition (all sent within the linger): the worker fetches them
        # at once, more than the stream's buffer holds.
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=3_000,
                                    max_batch_size=8 << 20)
        await producer.start()
        try:
            sent = []
            for i in range(MESSAGES):
                event_id = f"{kind}-{i}"
                value = orjson.dumps({"event_id": event_id, "ts": ts + i % 1000,
                                      "type": kind, "country": "DE"})
                sent.append(await producer.send(kafka.topic, value, partition=partition_for(
                    event_id, kafka.partitions)))
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(produce())


def test_a_backlog_of_single_event_messages_is_counted_once(stack: Stack) -> None:
    kind = f"backlog{time.time_ns()}"
    ts = int(time.time() * 1000)
    span = (ts - 120_000, ts + 120_000)
    before = dict(DELIVERIES)
    _produce_one_per_message(stack, kind, ts)
    wait_until(lambda: stack.total("events", *span, type=kind) >= MESSAGES, 90,
               f"{MESSAGES:,} one-event messages in the speed layer")
    time.sleep(2 * stack.settings.speed.flush_interval_s + 0.5)  # later flushes add nothing
    assert stack.total("events", *span, type=kind) == MESSAGES
    # Stratum's delivery ran (not Faust's own path), and took both of its branches.
    eager = DELIVERIES["eager"] - before["eager"]
    waited = DELIVERIES["waited"] - before["waited"]
    print(f"\ndeliveries: {eager} eager, {waited} waited, "
          f"{DELIVERIES['faust'] - before['faust']} by Faust's own path")
    assert eager > MESSAGES // 2 and waited > 0
