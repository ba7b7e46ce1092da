"""``stratum up`` starts each role as its own process does (stratum/app/roles.py): the
Kappa replay runner runs beside the speed layer only where ``run_replays`` allows it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.integration


def test_up_runs_the_replay_runner_only_where_run_replays_allows(
    stack: Stack, make_stack: Callable[..., Stack]
) -> None:
    assert stack.settings.speed.run_replays
    assert "replays" in stack.task_names()
    held_back = make_stack("noreplays", speed={"run_replays": False})
    names = held_back.task_names()
    assert "replays" not in names
    assert "journal-prune" in names  # the speed layer and its journal did start
