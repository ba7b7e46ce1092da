"""Fault-test fixtures: a tansu broker each test owns (so it can pause or starve it), an
in-process stack pointed at that broker, and the figures each fault test reports,
printed again at the end of the run (visible without ``-s`` or ``-rA``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratum.broker import EmbeddedBroker
from tests.ports import free_port
from tests.processes import running_broker
from tests.stack import Stack, stack_settings

FIGURES: list[str] = []


@pytest.fixture(scope="session")
def figures() -> Callable[[str, str], None]:
    """``figures(test, "kills survived=5 ...")``: print now and in the closing summary."""

    def record(name: str, line: str) -> None:
        text = f"{name}: {line}"
        print(text)
        FIGURES.append(text)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault-test figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


class BrokerStack:
    """A Stack whose log is a broker the test controls (``broker``)."""

    def __init__(self, broker: EmbeddedBroker, stack: Stack) -> None:
        self.broker = broker
        self.stack = stack


@pytest.fixture
def broker_stack(
    session_dir: Path, clickhouse_url: str, tmp_path: Path
) -> Iterator[Callable[..., BrokerStack]]:
    """Start a broker and a stack on it (own database and data dir, the session's chDB
    engine); ``api`` overrides API settings. Both stop when the test ends."""
    started: list[tuple[Any, Stack]] = []

    def make(name: str, **api: Any) -> BrokerStack:
        broker_cm = running_broker(tmp_path / f"broker-{name}")
        broker = broker_cm.__enter__()
        base = stack_settings(session_dir, name, clickhouse_url, free_port())
        settings = base.model_copy(
            update={
                "kafka": base.kafka.model_copy(update={"url": broker.bootstrap}),
                "api": base.api.model_copy(update=api),
            }
        )
        stack = Stack(settings, dashboard=False)
        started.append((broker_cm, stack))
        stack.start()
        return BrokerStack(broker, stack)

    yield make
    for broker_cm, stack in reversed(started):
        stack.stop()
        broker_cm.__exit__(None, None, None)
