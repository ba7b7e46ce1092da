"""The eager start of a message's delivery behaves as the task Faust would have made."""

from __future__ import annotations

import asyncio

import pytest
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from speed_layer.delivery import start_eagerly, wait_until_worked_down


async def _no_wait(log: list[str]) -> str:
    log.append("ran")
    return "done"


def test_a_delivery_that_never_waits_finishes_at_once() -> None:
    async def main() -> None:
        log: list[str] = []
        finished, result = start_eagerly(_no_wait(log))
        assert (finished, result, log) == (True, "done", ["ran"])

    asyncio.run(main())


def test_a_waiting_delivery_resumes_with_the_future_result() -> None:
    async def waits(fut: asyncio.Future[int], log: list[str]) -> int:
        log.append("before")
        value = await fut
        log.append(f"got {value}")
        await asyncio.sleep(0)  # a bare yield too
        return value + 1

    async def main() -> None:
        log: list[str] = []
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        finished, rest = start_eagerly(waits(fut, log))
        assert not finished and log == ["before"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        fut.set_result(41)
        assert await task == 42
        assert log == ["before", "got 41"]

    asyncio.run(main())


def test_a_failed_future_raises_inside_the_delivery() -> None:
    async def waits(fut: asyncio.Future[int]) -> str:
        try:
            await fut
        except KeyError as exc:
            return f"caught {exc.args[0]}"
        return "not raised"

    async def main() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        finished, rest = start_eagerly(waits(fut))
        assert not finished
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        fut.set_exception(KeyError("k"))
        assert await task == "caught k"

    asyncio.run(main())


def test_cancelling_the_waiting_delivery_cancels_what_it_awaits() -> None:
    """As wait_first does when flow is suspended: the queue put it waited on is given up."""

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(1)
        log: list[str] = []

        async def deliver() -> None:
            try:
                await queue.put(2)
            finally:
                log.append("cleaned up")

        finished, rest = start_eagerly(deliver())
        assert not finished
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["cleaned up"]
        assert queue.get_nowait() == 1
        queue.put_nowait(3)  # no stale putter holds the slot
        assert queue.get_nowait() == 3

    asyncio.run(main())


def test_an_error_before_the_first_wait_propagates() -> None:
    async def fails() -> None:
        raise ValueError("bad message")

    with pytest.raises(ValueError, match="bad message"):
        start_eagerly(fails())


def _full_buffer() -> FlowControlQueue[int]:
    """A stream's buffer as Faust makes it, full: 10 slots, pressure drops at 4."""
    queue: FlowControlQueue[int] = FlowControlQueue(maxsize=10, flow_control=FlowControlEvent())
    for i in range(10):
        queue.put_nowait(i)
    return queue


def test_the_fetch_loop_waits_until_the_stream_worked_its_buffer_down() -> None:
    async def main() -> None:
        queue = _full_buffer()
        taken: list[int] = []

        async def stream() -> None:
            while not queue.empty():
                taken.append(queue.get_nowait())
                await asyncio.sleep(0)

        consumer = asyncio.ensure_future(stream())
        await wait_until_worked_down([queue], lambda: False)
        assert queue.qsize() <= queue.pressure_drop_size == 4
        assert taken == list(range(10 - queue.qsize()))
        await consumer

    asyncio.run(main())


def test_waiting_for_the_stream_ends_when_flow_is_interrupted() -> None:
    """A stream that takes nothing (paused, or a rebalance suspended flow) must not hold
    the fetch loop once flow is interrupted."""

    async def main() -> None:
        queue = _full_buffer()
        checks: list[int] = []

        def interrupted() -> bool:
            checks.append(1)
            return len(checks) > 3

        await asyncio.wait_for(wait_until_worked_down([queue], interrupted), timeout=5)
        assert queue.qsize() == 10 and len(checks) == 4

    asyncio.run(main())
