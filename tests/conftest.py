"""Session-wide fixtures: one chDB engine for the whole session (chDB allows one engine
per process). Each user of it gets its own database and data dir, so tests that wipe
their tables cannot disturb a running stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratum.settings import Settings
from stratum.storage import Storage, open_storage
from tests.ports import free_port
from tests.stack import Stack, stack_settings


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stratum")


@pytest.fixture(scope="session")
def clickhouse_url(session_dir: Path) -> str:
    return f"chdb://{session_dir / 'clickhouse'}"


@pytest.fixture(scope="session")
def settings(session_dir: Path, clickhouse_url: str) -> Settings:
    return Settings(
        data_dir=session_dir / "batch",
        clickhouse={"url": clickhouse_url, "database": "stratum"},
        api={"port": free_port(), "admin_token": "test-admin-token"},
        batch={"interval_s": 3600},
        speed={"allowed_lateness_ms": 60_000},
    )


@pytest.fixture(scope="session")
def storage(settings: Settings) -> Iterator[Storage]:
    store = open_storage(settings)
    yield store
    store.close()


@pytest.fixture(scope="session")
def make_stack(session_dir: Path, clickhouse_url: str) -> Iterator[Callable[..., Stack]]:
    """Start isolated stacks (own broker, database, data dir); all stop at session end."""
    started: list[Stack] = []

    def make(
        name: str, *, dashboard: bool = False, speed: dict[str, Any] | None = None, **api: Any
    ) -> Stack:
        settings = stack_settings(session_dir, name, clickhouse_url, free_port(), speed)
        if api:
            settings = settings.model_copy(
                update={"api": settings.api.model_validate({**settings.api.model_dump(), **api})}
            )
        stack = Stack(settings, dashboard=dashboard)
        started.append(stack)
        stack.start()
        return stack

    yield make
    for stack in reversed(started):
        stack.stop()


@pytest.fixture(scope="session")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The shared stack with the dashboard, for browser and API tests."""
    return make_stack("shared", dashboard=True)


READ_TOKEN = "guarded-read-token-0123456789"  # noqa: S105 - test tokens, 24+ characters
INGEST_TOKEN = "guarded-ingest-token-0123456789"  # noqa: S105


@pytest.fixture(scope="session")
def guarded_stack(make_stack: Callable[..., Stack]) -> Stack:
    """A stack with the dashboard behind a read token and ingest behind an ingest token;
    its ``client`` sends the read token, ``post_events`` the ingest token."""
    return make_stack("guarded", dashboard=True, read_token=READ_TOKEN, ingest_token=INGEST_TOKEN)


# Markers by directory, so the fast lane is `-m "not integration and not browser and not
# faults"` (tests/unit only) without each module remembering its pytestmark.
_DIRECTORY_MARKERS = {
    "integration": ("integration",),
    "faults": ("faults", "integration"),
    "browser": ("browser",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its directory (above). Browser tests last: Playwright's sync
    API keeps an event loop running in the main thread for the rest of the session, after
    which ``asyncio.run`` cannot be called.
    Just before them, the other users of the shared ``stack``: its background threads
    (Faust, aiokafka, the scheduler) then run beside as few other tests as possible."""
    for item in items:
        directory = item.path.parent.name
        for marker in _DIRECTORY_MARKERS.get(directory, ()):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)
    items.sort(
        key=lambda item: (
            item.get_closest_marker("browser") is not None,
            bool({"stack", "guarded_stack"} & set(getattr(item, "fixturenames", ()))),
        )
    )
