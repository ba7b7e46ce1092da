"""What :mod:`speed_layer.delivery` and :mod:`speed_layer.batch_delivery` rely on in Faust
and mode, checked on the installed versions. The eager delivery overrides
``Consumer.wait_first`` and assumes Faust's fetch loop calls it with the message's delivery
first; the batch delivery replaces that fetch loop (``_drain_messages``, mirroring it and
``getmany``) and extends ``Consumer.ack`` to a range of offsets in Faust's own commit
bookkeeping. If an upgrade changes any of that shape, the overrides would silently stop
applying (or commit wrongly), so these fail first and say which assumption broke.
pyproject.toml pins the versions these were checked on."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
from faust import channels, streams, topics
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ConsumerMessage, Message
from mode import Service
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from speed_layer.batch_delivery import BatchDeliveryConsumer, BatchMessage
from speed_layer.delivery import EagerDeliveryConsumer


def _source(function: object) -> str:
    return re.sub(r"\s+", " ", inspect.getsource(function))  # type: ignore[arg-type]


def test_the_fetch_loop_hands_each_message_to_wait_first_delivery_first() -> None:
    loop = _source(faust_consumer.Consumer._drain_messages)
    assert "await self.wait_first( callback(message), self.suspend_flow.wait() )" in loop


def test_the_consumer_we_extend_is_the_one_faust_uses_for_aiokafka() -> None:
    assert issubclass(EagerDeliveryConsumer, faust_aiokafka.Consumer)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer
    assert "wait_first" not in vars(faust_aiokafka.Consumer)  # mode's, not overridden
    assert inspect.signature(Service.wait_first).parameters.keys() >= {"coros", "timeout"}


def test_wait_results_has_the_fields_we_build() -> None:
    assert WaitResults._fields == ("done", "results", "stopped")


@pytest.mark.parametrize("attribute", ["_stopped", "_crashed"])
def test_services_keep_the_private_events_we_read(attribute: str) -> None:
    assert attribute in _source(Service.__init__)


def test_consumers_have_flow_and_stop_flags() -> None:
    init = _source(faust_consumer.Consumer.__init__)
    assert "self.suspend_flow = Event()" in init
    assert isinstance(inspect.getattr_static(Service, "should_stop"), property)


def test_stream_queues_expose_their_pressure_drop_level() -> None:
    queue: FlowControlQueue[int] = FlowControlQueue(maxsize=10, flow_control=FlowControlEvent())
    assert isinstance(queue.pressure_drop_size, int)
    assert queue.qsize() == 0


def test_installed_versions_are_within_the_pins() -> None:
    """The pins in pyproject.toml are what these checks ran on; widen both together."""
    faust_major_minor = tuple(int(p) for p in version("faust-streaming").split(".")[:2])
    mode_major_minor = tuple(int(p) for p in version("mode-streaming").split(".")[:2])
    assert faust_major_minor == (0, 15)
    assert (0, 6) <= mode_major_minor < (0, 8)


# The batch delivery (speed_layer.batch_delivery).


def test_the_fetcher_runs_the_consumers_drain_loop() -> None:
    assert "await consumer._drain_messages(self)" in _source(faust_consumer.Fetcher)
    assert "_drain_messages" not in vars(faust_aiokafka.Consumer)  # Faust's base loop
    assert "_drain_messages" in vars(BatchDeliveryConsumer)


def test_the_drain_loop_we_replace_has_the_shape_we_mirror() -> None:
    loop = _source(faust_consumer.Consumer._drain_messages)
    for part in [
        "while not (consumer_should_stop() or fetcher_should_stop()):",
        "ait = cast(AsyncIterator, getmany(timeout=1.0))",
        "if r_offset is None or offset >= r_offset:",
        "if self._n_acked >= commit_every: self._n_acked = 0 await self.commit()",
        "set_read_offset(tp, offset)",
        "except self.consumer_stopped_errors:",
        "set_flag(flag_consumer_fetching)",
        "unset_flag(flag_consumer_fetching)",
    ]:
        assert part in loop, part


def test_getmany_filters_and_seeks_as_our_fetch_does() -> None:
    getmany = _source(faust_consumer.Consumer.getmany)
    for part in [
        "records, active_partitions = await self._wait_next_records(timeout)",
        "if records is None or self.should_stop:",
        "if self.flow_active:",
        "tp in active_partitions or tp in self._buffered_partitions",
        "self.app.monitor.track_tp_end_offset(tp, highwater_mark)",
        "await self.perform_seek()",
        "generation_id=self.app.consumer_generation_id",
    ]:
        assert part in getmany + _source(faust_aiokafka.Consumer._to_message), part


@pytest.mark.parametrize(
    "part",
    [
        "self._read_offset = defaultdict(lambda: None)",
        "self._acked = defaultdict(list)",
        "self._acked_index = defaultdict(set)",
        "self._buffered_partitions = set()",
        "self._commit_every = self.app.conf.broker_commit_every",
        "self._unacked_messages = WeakSet()",
    ],
)
def test_consumers_keep_the_bookkeeping_we_extend(part: str) -> None:
    assert part in _source(faust_consumer.Consumer.__init__)


def test_ack_is_per_offset_bookkeeping_that_the_commit_reads() -> None:
    ack = _source(faust_consumer.Consumer.ack)
    for part in [
        "with ack_lock:",
        "if committed is None or offset >= committed:",
        "acked_index = self._acked_index[tp]",
        "self._unacked_messages.discard(message)",
        "acked_for_tp = self._acked[tp] acked_for_tp.append(offset)",
        "self._n_acked += 1",
        "notify(self._waiting_for_ack)",
    ]:
        assert part in ack, part
    new_offset = _source(faust_consumer.Consumer._new_offset)
    assert "batch = next(consecutive_numbers(acked))" in new_offset
    assert "return batch[-1] + 1" in new_offset
    assert "return consumer.ack(self)" in _source(ConsumerMessage.on_final_ack)


def test_a_batch_message_is_a_consumer_message_that_carries_records() -> None:
    assert "__slots__" not in vars(ConsumerMessage)  # so a subclass may add attributes
    assert issubclass(BatchMessage, ConsumerMessage)
    assert {"offset", "tp", "generation_id", "acked"} <= set(Message.__slots__)


def test_streams_drop_messages_of_an_older_generation() -> None:
    assert "message.generation_id != self.app.consumer_generation_id" in _source(
        streams.Stream._py_aiter
    )


def test_the_conductor_delivers_a_message_once_to_each_channels_queue() -> None:
    on_message = _source(faust_conductor.ConductorCompiler.build)
    assert "event = await chan.decode(message, propagate=True)" in on_message
    assert "queue.put_nowait_enhanced(" in on_message


def test_a_topics_maxsize_bounds_its_channel_queue() -> None:
    assert "maxsize=maxsize" in _source(topics.Topic.__init__)
    assert "maxsize = self.maxsize" in _source(channels.Channel.queue.fget)  # type: ignore[attr-defined]


def test_faust_builds_its_worker_consumer_where_we_lower_the_fetch_wait() -> None:
    create = _source(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500," in create
    assert "return AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)" in _source(
        faust_aiokafka.Consumer._new_consumer_thread
    )
    import aiokafka.consumer.consumer as aiokafka_consumer

    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in _source(
        aiokafka_consumer.AIOKafkaConsumer.start
    )
