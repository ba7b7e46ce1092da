"""A real Stratum stack for tests: the one-process platform (embedded tansu broker, Faust
speed layer, archiver, batch scheduler, API, optionally the dashboard) served by uvicorn
in a background thread, sharing the session's single chDB engine through its own
database and data dir."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from stratum import archive
from stratum.app.platform import Roles, create_platform_app, uvicorn_server
from stratum.settings import Settings


def wait_until(
    predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2
) -> Any:
    """Poll ``predicate`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def this_minute() -> tuple[int, int]:
    """(an event time a second ago, the start of its minute): events of now are never
    late on a shared stack, whatever other tests moved the watermark to."""
    ts_ms = int(time.time() * 1000) - 1_000
    return ts_ms, ts_ms - ts_ms % 60_000


def archived_ids(data_dir: Path) -> set[str]:
    """The event ids in the archive's files under ``data_dir`` (written whole, by rename)."""
    files = archive.list_files(archive.archive_root(data_dir))
    return {
        i
        for path in files
        for i in pl.read_parquet(path, columns=["event_id"])["event_id"].to_list()
    }


def wait_archived(data_dir: Path, events: list[dict[str, Any]], timeout_s: float = 30) -> None:
    """Return once every one of ``events`` is in an archive file under ``data_dir``."""
    ids = {e["event_id"] for e in events}
    wait_until(
        lambda: not ids - archived_ids(data_dir), timeout_s, f"{len(ids)} event(s) in the archive"
    )


class Stack:
    def __init__(self, settings: Settings, *, dashboard: bool) -> None:
        self.settings = settings
        self.roles = Roles(speed=True, batch=True, dashboard=dashboard)
        self.base_url = f"http://127.0.0.1:{settings.api.port}"
        self.admin_headers = {"authorization": f"Bearer {settings.api.admin_token}"}
        api = settings.api
        # Reads carry the read token and ingest the ingest token, when those are set.
        self.ingest_headers = (
            {"authorization": f"Bearer {api.ingest_token}"} if api.ingest_token else {}
        )
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=30,
            headers={"authorization": f"Bearer {api.read_token}"} if api.read_token else {},
        )
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._error: BaseException | None = None
        self._app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout_s: float = 60, worker_status: str = "ok") -> None:
        """``worker_status``: what the worker's health must say once it owns partitions
        ("degraded" where a test means a source to be left unread)."""
        app = self._app = create_platform_app(self.settings, self.roles)
        self._server = uvicorn_server(app, self.settings)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                self._error = exc

        self._thread = threading.Thread(target=run, name="stratum-stack", daemon=True)
        self._thread.start()
        wait_until(lambda: self._error or self._server.started, timeout_s, "the stack to serve")
        if self._error:
            raise self._error
        self.wait_for_worker(status=worker_status)

    def task_names(self) -> set[str]:
        """The names of the tasks alive in the stack's event loop (asked on that loop)."""

        async def names() -> set[str]:
            return {task.get_name() for task in asyncio.all_tasks()}

        assert self._loop is not None, "the stack is not serving"
        return asyncio.run_coroutine_threadsafe(names(), self._loop).result(timeout=10)

    @property
    def bootstrap(self) -> str:
        return str(self._app.state.log_connection.bootstrap)

    @property
    def log_epoch(self) -> str:
        return str(self._app.state.log_connection.epoch)

    def wait_for_worker(self, timeout_s: float = 60, status: str = "ok") -> None:
        """Faust's first group join takes a few seconds: wait until partitions are ours."""

        def assigned() -> bool:
            worker = self.client.get("/v1/health").json()["components"].get("worker", {})
            return worker.get("status") == status and "partition" in worker.get("detail", "")

        # Stamped as old as ingest accepts (an hour after its limit) so it moves no
        # watermark: tests may then send history as on time.
        oldest_ms = int(time.time() * 1000 - self.settings.api.max_event_age_days * 86_400_000)
        self.post_events(
            [
                {
                    "event_id": f"warmup-{time.time_ns()}",
                    "ts": oldest_ms + 3_600_000,
                    "type": "warmup",
                }
            ],
            wait=False,
        )
        wait_until(assigned, timeout_s, "the speed layer to own its partitions")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.client.close()

    def total(self, metric: str, start_ms: int, end_ms: int, **filters: str) -> float:
        response = self.client.get(
            f"/v1/metrics/{metric}", params={"start": start_ms, "end": end_ms, **filters}
        )
        response.raise_for_status()
        return sum(p["value"] or 0 for s in response.json()["series"] for p in s["points"])

    def post_events(
        self, events: list[Any], *, wait: bool = True, timeout_s: float = 60
    ) -> dict[str, Any]:
        """Post events; with ``wait``, return once the speed layer counts all accepted
        valid events (the ``events`` metric counts every event)."""
        stamps = [e["ts"] for e in events if isinstance(e, dict) and isinstance(e.get("ts"), int)]
        span = (min(stamps) - 120_000, max(stamps) + 120_000) if stamps else None
        before = self.total("events", *span) if (wait and span) else 0.0
        response = self.client.post("/v1/events", json=events, headers=self.ingest_headers)
        assert response.status_code in (202, 422), response.text
        body: dict[str, Any] = response.json()
        if wait and span and response.status_code == 202:
            wanted = before + body["accepted"]
            wait_until(
                lambda: self.total("events", *span) >= wanted,
                timeout_s,
                f"{body['accepted']} event(s) in the speed layer",
            )
        return body

    def wait_archived(self, events: list[dict[str, Any]], timeout_s: float = 30) -> None:
        """Return once every one of ``events`` is in an archive file."""
        wait_archived(self.settings.data_dir, events, timeout_s)

    def run_batch(self, timeout_s: float = 60) -> dict[str, Any]:
        response = self.client.post("/v1/admin/batch", headers=self.admin_headers)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        def finished() -> dict[str, Any] | None:
            job = self.client.get(f"/v1/admin/jobs/{job_id}", headers=self.admin_headers).json()
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None

        job: dict[str, Any] = wait_until(finished, timeout_s, f"batch job {job_id}")
        assert job["state"] == "succeeded", job
        return job


def stack_settings(
    base: Path, name: str, clickhouse_url: str, port: int, speed: dict[str, Any] | None = None
) -> Settings:
    """``speed``: overrides of the speed settings below (e.g. a short idle timeout)."""
    return Settings(
        data_dir=base / name,
        clickhouse={"url": clickhouse_url, "database": f"stratum_{name}"},
        api={"port": port, "admin_token": "test-admin-token"},
        batch={"interval_s": 3600},
        # History posted by tests must not be late because the stack sat idle.
        speed={
            "allowed_lateness_ms": 60_000,
            "flush_interval_s": 0.5,
            "idle_timeout_s": 3600,
            **(speed or {}),
        },
        archive={"flush_interval_s": 1.0},
    )
