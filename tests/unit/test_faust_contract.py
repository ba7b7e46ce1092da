"""What :mod:`speed_layer.delivery` relies on in Faust and mode, checked on the installed
versions. The eager delivery overrides ``Consumer.wait_first`` and assumes Faust's fetch
loop calls it with the message's delivery first; if an upgrade changes that shape, the
override would silently stop applying (or break), so these fail first and say which
assumption broke. pyproject.toml pins the versions these were checked on."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent, FlowControlQueue

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
    queue: FlowControlQueue[int] = FlowControlQueue(maxsize=10,
                                                    flow_control=FlowControlEvent())
    assert isinstance(queue.pressure_drop_size, int)
    assert queue.qsize() == 0


def test_installed_versions_are_within_the_pins() -> None:
    """The pins in pyproject.toml are what these checks ran on; widen both together."""
    faust_major_minor = tuple(int(p) for p in version("faust-streaming").split(".")[:2])
    mode_major_minor = tuple(int(p) for p in version("mode-streaming").split(".")[:2])
    assert faust_major_minor == (0, 15)
    assert (0, 6) <= mode_major_minor < (0, 8)
