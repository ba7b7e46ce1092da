"""Faust's consumer, handing each fetched message to its streams without a task per message.

Faust's fetch loop passes every message to the conductor through ``Service.wait_first``
(the delivery, raced against the consumer's suspend-flow, stopped and crashed events),
which wraps each of the four in a task and waits on them: a third of a worker's busy CPU
at one event per message (py-spy, ``python -m benchmarks.speed --profile``). A delivery
waits only while a stream's buffer is full or flow is suspended for a rebalance, so this
consumer first runs it up to its first suspension, as Python 3.12's eager tasks do; only
one that does suspend goes through ``wait_first``, which still gives it up if flow is
suspended. Faust keeps consumption, assignment and offsets; only this scheduling changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Sequence
from functools import partial
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults
from mode.utils.queues import FlowControlQueue

CATCH_UP_POLL_S = 0.002  # a stream takes ~50 messages in this time, of ~2,400 to go
# Deliveries per path since the process started: proof that the fast path runs (a Faust
# upgrade that stops calling ``wait_first`` with the delivery first would leave "eager" at
# 0 and every message on Faust's own path). Plain ints: a Prometheus counter per message
# would cost more than the path saves.
DELIVERIES = {"eager": 0, "waited": 0, "faust": 0}


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first suspension: ``(True, result)`` if it finished,
    else ``(False, awaitable)`` that finishes it (and returns its result)."""
    try:
        step = coro.send(None)
    except StopIteration as finished:
        return True, finished.value
    return False, _finish(coro, step)


async def _finish(coro: Coroutine[Any, Any, Any], step: Any) -> Any:
    return await _Resumed(coro, step)


class _Resumed:
    """Awaitable that carries on a coroutine suspended on ``step`` (what it yielded: an
    asyncio future, or ``None`` for a bare yield), passing the yields up to the task that
    awaits this, so the task waits, cancels and resumes it as if it had started it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], step: Any) -> None:
        self.coro = coro
        self.step = step

    def __await__(self) -> Generator[Any, Any, Any]:
        step = self.step
        while True:
            try:
                yield step
            except BaseException as exc:  # the task cancels the future and throws here
                advance = partial(self.coro.throw, exc)
            else:
                advance = partial(self.coro.send, None)
            try:
                step = advance()
            except StopIteration as finished:
                return finished.value


async def wait_until_worked_down(
    queues: Sequence[FlowControlQueue[Any]], interrupted: Callable[[], bool]
) -> None:
    """Until every queue holds no more than its pressure-drop level (where Faust resumes
    fetching its partitions), or ``interrupted()``."""
    while not interrupted() and any(q.qsize() > q.pressure_drop_size for q in queues):
        await asyncio.sleep(CATCH_UP_POLL_S)


class EagerDeliveryConsumer(faust_aiokafka.Consumer):
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
            DELIVERIES["faust"] += 1
            return await super().wait_first(*coros, timeout=timeout)
        finished, result = start_eagerly(first)
        if finished:
            DELIVERIES["eager"] += 1
            for other in coros[1:]:  # never started: close them, or Python warns of each
                if asyncio.iscoroutine(other):
                    other.close()
            return WaitResults([first], [result], False)
        DELIVERIES["waited"] += 1
        results = await super().wait_first(result, *coros[1:], timeout=timeout)
        # The delivery waited for room in a stream's buffer: let the stream work it down
        # before delivering more, or each further message waits for one free slot in step
        # with the stream (a sixth of all messages did, working through a backlog).
        await wait_until_worked_down(
            [channel.queue for channel in self.app.topics], self._flow_interrupted
        )
        return results

    def _flow_interrupted(self) -> bool:
        return self.suspend_flow.is_set() or self.should_stop


class EagerDeliveryTransport(faust_aiokafka.Transport):
    Consumer = EagerDeliveryConsumer
