"""The demo's database connector: Debezium-style change events of an ``orders`` table,
written straight to their own topic (``demo.orders``, 3 partitions, keyed by order),
never through Stratum's ingest. ``stratum up --demo`` reads them through the ``orders``
source of ``stratum/demo_sources.toml``, so a new user sees a source end to end.

Each new order is an insert (``c``); some are updated later (``u``: paid, with a
corrected amount) and a few deleted (``d``). A snapshot of history comes first as
``r`` records, as a connector's initial snapshot would.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ingest.generator import COUNTRIES, COUNTRY_WEIGHTS
from stratum.kafka_security import aiokafka_options
from stratum.metrics import MetricCatalog
from stratum.settings import KafkaSettings

log = logging.getLogger(__name__)
PARTITIONS = 3


def demo_topic(catalog: MetricCatalog) -> str | None:
    source = catalog.source("orders")
    return source.topic if source is not None else None


async def create_topic(kafka: KafkaSettings, bootstrap: str, topic: str) -> None:
    """What the database team did before Stratum came: create the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_options(kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=PARTITIONS,
                    replication_factor=kafka.replication_factor,
                    topic_configs={
                        "retention.ms": str(kafka.retention_ms),
                        "cleanup.policy": "delete",
                    },
                )
            ]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


class OrderTable:
    """The rows of the demo's orders table and their change events."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def change(self, ts_ms: int, snapshot: bool = False) -> tuple[int, bytes]:
        """One change at ``ts_ms``: (order id, envelope)."""
        rng = self.rng
        roll = rng.random()
        if snapshot or roll < 0.75 or not self.rows:
            order_id, self.next_id = self.next_id, self.next_id + 1
            row = {
                "id": order_id,
                "status": "new",
                "customer": {"country": rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]},
                "total": {"amount": round(rng.lognormvariate(3.3, 0.7), 2), "currency": "EUR"},
            }
            self.rows[order_id] = row
            return order_id, _envelope("r" if snapshot else "c", ts_ms, None, row)
        order_id = rng.choice(list(self.rows)[-500:])
        before = self.rows[order_id]
        if roll < 0.95:
            after = {
                **before,
                "status": "paid",
                "total": {
                    **before["total"],
                    "amount": round(before["total"]["amount"] * rng.uniform(0.9, 1.0), 2),
                },
            }
            self.rows[order_id] = after
            return order_id, _envelope("u", ts_ms, before, after)
        del self.rows[order_id]
        return order_id, _envelope("d", ts_ms, before, None)


def _envelope(op: str, ts_ms: int, before: Any, after: Any) -> bytes:
    return orjson.dumps(
        {
            "schema": {"type": "struct", "name": "shop.public.orders.Envelope"},
            "payload": {
                "before": before,
                "after": after,
                "op": op,
                "ts_ms": ts_ms,
                "source": {"connector": "postgresql", "db": "shop", "table": "orders"},
            },
        }
    )


async def run_orders(
    kafka: KafkaSettings,
    bootstrap: str,
    topic: str,
    *,
    rate_per_s: float = 5.0,
    backfill_s: float = 0.0,
    stop: asyncio.Event | None = None,
) -> int:
    """Write change events until ``stop``; the history first. Returns how many."""
    table = OrderTable()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, **aiokafka_options(kafka)
    )
    await producer.start()
    sent = 0
    try:
        now_ms = int(time.time() * 1000)
        for second in range(int(backfill_s)):
            if stop is not None and stop.is_set():
                return sent
            if table.rng.random() < rate_per_s / 10:  # a tenth of the live rate
                order_id, value = table.change(
                    now_ms - int(backfill_s * 1000) + second * 1000, snapshot=True
                )
                await producer.send(topic, value, key=str(order_id).encode())
                sent += 1
        while stop is None or not stop.is_set():
            for _ in range(max(1, int(rate_per_s * table.rng.uniform(0.5, 1.5)))):
                order_id, value = table.change(int(time.time() * 1000))
                await producer.send(topic, value, key=str(order_id).encode())
                sent += 1
            await asyncio.sleep(1.0)
    except KafkaError as exc:
        log.warning("demo orders: cannot write to %s: %s", topic, exc)
    finally:
        await producer.stop()
    return sent
