"""Faust's consumer, handing each fetched batch of a partition to the stream as one message.

Faust's fetch loop (``Consumer._drain_messages``) makes a ``ConsumerMessage`` of every
record and takes it through the conductor, the stream and an acknowledgement one by one:
~40 us a message, so a worker ran 12-27 K one-event messages/s against ~400 K for a plain
aiokafka consumer on the same topic. This consumer replaces only that loop: the records
of one partition in one fetch become one :class:`BatchMessage` (its ``offset`` the last
record's, its ``records`` the records), delivered like any message, so the agent's stream
takes one event per fetch. Faust keeps the rest: assignment and rebalancing, pausing a
partition whose stream buffer is full, flow control and seeking, commits. Acknowledging a
batch marks every offset of its range acknowledged in Faust's own bookkeeping
(``_acked``), so Faust commits through the batch's last offset, never past it.

:data:`BATCHES` counts what went this way (asserted by tests/integration/test_backlog.py);
tests/unit/test_faust_contract.py checks the Faust internals used here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerMessage, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from speed_layer.delivery import EagerDeliveryConsumer, EagerDeliveryTransport

# Batches delivered and the log messages in them since the process started: proof that the
# fast path runs. Plain ints, bumped once per batch.
BATCHES = {"batches": 0, "messages": 0}
# A stream's buffer holds batches, each up to one fetch of a partition (the consumer's
# max fetch size): a few, not Faust's 4,096 messages' worth.
QUEUE_MAXSIZE = 16
# How long the broker may hold a fetch that finds no new data. Faust fixes 1.5 s; the
# embedded broker holds a fetch that long even when data arrives meanwhile, which cost
# up to 1.5 s of freshness (p50 393 ms against 25 ms at 100 ms, one message every
# 237 ms). An idle consumer then fetches 10 times a second: negligible.
FETCH_MAX_WAIT_MS = 100


class BatchMessage(ConsumerMessage):
    """The records of one partition from one fetch, in offset order, as one message:
    ``offset`` is the last record's, ``first_offset`` the first offset it accounts for
    (offsets between the previous batch and this one that hold no record, such as
    compacted or transaction-marker offsets, are this batch's to acknowledge)."""

    def __init__(
        self, tp: TP, records: Sequence[Any], first_offset: int, generation_id: int | None
    ) -> None:
        last = records[-1]
        timestamp = last.timestamp / 1000.0 if last.timestamp is not None else None
        # Faust's Message types timestamp as float, yet takes None (a record without one).
        super().__init__(
            tp.topic,
            tp.partition,
            last.offset,
            timestamp,  # type: ignore[arg-type]
            last.timestamp_type,
            None,
            None,
            b"",
            None,
            0,
            0,
            tp,
            generation_id=generation_id,
        )
        self.records = records
        self.first_offset = first_offset


def message_records(message: Any, value: bytes | None) -> list[tuple[int, bytes, int | None]]:
    """``(offset, value, Kafka timestamp in ms)`` of every log message a delivered
    message stands for: a batch's records, or the message itself (Faust's own path;
    tests)."""
    if isinstance(message, BatchMessage):
        return [
            (record.offset, record.value or b"", record.timestamp) for record in message.records
        ]
    stamp = message.timestamp
    return [(message.offset, value or b"", None if stamp is None else int(stamp * 1000))]


class QuickFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start(), not yet called
        return consumer


class BatchDeliveryConsumer(EagerDeliveryConsumer):
    def _new_consumer_thread(self) -> QuickFetchConsumerThread:
        return QuickFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop, a batch per partition and fetch instead of a message per
        record (same stop, error and commit-every handling)."""
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        commit_every = self._commit_every
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batches = await self._fetch_batches(timeout=1.0)
                await self.sleep(0)  # as Faust: a fetch that returns at once never yields
                for message in batches:
                    if (
                        self.should_stop
                        or not self.flow_active
                        or message.generation_id != self.app.consumer_generation_id
                    ):
                        break  # a rebalance: what was fetched is fetched again after it
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                    # The next offset to read, as a seek leaves it (Faust's loop stores
                    # the last one read, and so takes that offset again if fetched again).
                    self._read_offset[message.tp] = message.offset + 1
                    BATCHES["batches"] += 1
                    BATCHES["messages"] += len(message.records)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _fetch_batches(self, timeout: float) -> list[BatchMessage]:
        """One fetch as a batch per partition: Faust's ``getmany`` without a message per
        record (partitions paused meanwhile skipped, records already read dropped)."""
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return []
        if not self.flow_active:  # as getmany: seek back to the committed offsets
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust's own handling
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return []
        generation_id = self.app.consumer_generation_id
        batches = []
        for key, fetched in records.items():
            tp = TP(key.topic, key.partition)
            if not fetched or (
                active is not None and tp not in active and tp not in self._buffered_partitions
            ):
                continue
            read = self._read_offset[tp]
            if read is not None and fetched[0].offset < read:
                fetched = [record for record in fetched if record.offset >= read]
                if not fetched:
                    continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            first = fetched[0].offset
            batches.append(
                BatchMessage(
                    tp, fetched, first if read is None else min(first, read), generation_id
                )
            )
        return batches

    def ack(self, message: Message) -> bool:
        """Faust's ``ack``, for every offset a batch accounts for at once."""
        if not isinstance(message, BatchMessage):
            return super().ack(message)
        with ack_lock:
            if message.acked:
                return False
            message.acked = True
            tp = message.tp
            if not self.app.topics.acks_enabled_for(message.topic):
                return False
            try:
                committed = self._committed_offset[tp]
                low = (
                    message.first_offset
                    if committed is None
                    else max(message.first_offset, committed)
                )
                index = self._acked_index[tp]
                fresh = set(range(low, message.offset + 1)).difference(index)
                if not fresh:
                    return False
                self._unacked_messages.discard(message)
                index.update(fresh)
                self._acked[tp].extend(sorted(fresh))
                self._n_acked += len(fresh)
                return True
            finally:
                notify(self._waiting_for_ack)


class BatchDeliveryTransport(EagerDeliveryTransport):
    Consumer = BatchDeliveryConsumer
