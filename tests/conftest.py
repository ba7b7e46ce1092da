"""Session-wide fixtures: one data dir and one chDB engine for the whole test session
(chDB allows one engine per process), shared by every integration test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum.settings import Settings
from stratum.storage import Storage, open_storage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stratum")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Settings:
    return Settings(
        data_dir=session_dir,
        api={"port": free_port(), "admin_token": "test-admin-token"},
        batch={"interval_s": 3600},
        speed={"allowed_lateness_ms": 60_000},
    )


@pytest.fixture(scope="session")
def storage(settings: Settings) -> Iterator[Storage]:
    store = open_storage(settings)
    yield store
    store.close()
