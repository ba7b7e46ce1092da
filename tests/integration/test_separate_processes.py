"""``stratum api``, ``stratum worker`` and ``stratum batch`` as separate processes that
exchange nothing but Kafka and ClickHouse (and the archive between worker and batch),
as compose runs them.

Two tests:

- every role starts as its own process against a broker URL and answers its container
  healthcheck; the worker counts what the API accepted. Each process has its own chDB
  path (a chDB path belongs to one process), so this one runs everywhere;
- the three processes against one ClickHouse server: the API serves what the worker
  wrote and then what the batch process recomputed. It needs a server, so it runs only
  when ``STRATUM_TEST_CLICKHOUSE_URL`` is set (e.g. ``http://default:@127.0.0.1:8123``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port
from tests.processes import StratumProcess, query_chdb, running_broker, stratum_env
from tests.stack import wait_archived, wait_until

pytestmark = pytest.mark.integration
MINUTE = 60_000
ADMIN = "separate-processes-admin-token"  # noqa: S105 - a test token (24+ characters)
INGEST = "separate-processes-ingest-token"  # noqa: S105
INGEST_HEADERS = {"authorization": f"Bearer {INGEST}"}
SERVER_URL = os.environ.get("STRATUM_TEST_CLICKHOUSE_URL")


def _events(t0: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"sep-{i}",
            "ts": t0 + (i * 1009) % (2 * MINUTE),
            "type": "purchase" if i % 3 == 0 else "page_view",
            "country": "DE" if i % 2 else "FR",
            "amount": float(i % 7 + 1),
            "latency_ms": 40 + i % 200,
        }
        for i in range(n)
    ]


def _healthcheck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-c", "from stratum.app.cli import main; main()", "healthcheck", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Roles:
    """The three processes with a common environment; ``clickhouse`` maps a role to
    its ClickHouse URL (one server for all, or a chDB path each)."""

    def __init__(
        self, tmp: Path, bootstrap: str, clickhouse: dict[str, str], database: str = "stratum"
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        shared = tmp / "shared"  # worker writes the archive here, batch reads it
        common = {
            "STRATUM_ENVIRONMENT": "production",
            "STRATUM_API__ADMIN_TOKEN": ADMIN,
            "STRATUM_API__INGEST_TOKEN": INGEST,
            "STRATUM_KAFKA__URL": bootstrap,
            "STRATUM_CLICKHOUSE__DATABASE": database,
            "STRATUM_SPEED__FLUSH_INTERVAL_S": "0.5",
            "STRATUM_ARCHIVE__FLUSH_INTERVAL_S": "1",
            "STRATUM_SPEED__ALLOWED_LATENESS_MS": "60000",
            "STRATUM_BATCH__INTERVAL_S": "3600",
        }
        self.env: dict[str, dict[str, str]] = {}
        self.processes: dict[str, StratumProcess] = {}
        for role in ("api", "worker", "batch"):
            workdir = tmp / role
            workdir.mkdir()
            data_dir = workdir if role == "api" else shared
            self.env[role] = stratum_env(
                workdir,
                **common,
                STRATUM_CLICKHOUSE__URL=clickhouse[role],
                STRATUM_DATA_DIR=str(data_dir),
                STRATUM_API__PORT=str(self.port),
            )
            self.processes[role] = StratumProcess(role, self.env[role], workdir)

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        client = httpx.Client(base_url=self.base_url, timeout=10)
        try:
            wait_until(lambda: self._serving(client), 60, "stratum api to serve")
        finally:
            client.close()

    def _serving(self, client: httpx.Client) -> bool:
        for role, process in self.processes.items():
            assert process.running, f"stratum {role} exited:\n{process.log()[-3000:]}"
        try:
            return client.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> dict[str, int]:
        """SIGTERM each; uvicorn re-raises the signal after its graceful shutdown, so
        the API's clean exit is -SIGTERM once its lifespan has said goodbye."""
        codes = {role: p.stop() for role, p in self.processes.items()}
        if codes["api"] == -signal.SIGTERM and "stopping Stratum" in self.processes["api"].log():
            codes["api"] = 0
        return codes

    def logs(self) -> str:
        return "\n".join(f"--- {r}\n{p.log()[-2000:]}" for r, p in self.processes.items())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with running_broker(tmp_path / "broker") as running:
        yield running.bootstrap


def test_each_role_runs_as_its_own_process_against_a_broker_url(
    tmp_path: Path, broker: str
) -> None:
    roles = Roles(
        tmp_path,
        broker,
        {r: f"chdb://{tmp_path / r / 'clickhouse'}" for r in ("api", "worker", "batch")},
    )
    t0 = int(time.time() * 1000) - 2 * 3_600_000
    t0 -= t0 % MINUTE
    events = _events(t0, 300)
    try:
        roles.start()
        with httpx.Client(base_url=roles.base_url, timeout=10, headers=INGEST_HEADERS) as client:
            response = client.post("/v1/events", json=events)
            assert response.status_code == 202, response.text
            assert response.json()["accepted"] == len(events)

        def worker_busy() -> bool:
            check = _healthcheck(roles.env["worker"], "worker")
            return check.returncode == 0 and "partition" in check.stdout

        wait_until(worker_busy, 60, "the worker's heartbeat to report its partitions")
        for role, args in {"batch": ["batch"], "api": ["api", "--url", roles.base_url]}.items():
            check = _healthcheck(roles.env[role], *args)
            assert check.returncode == 0, (role, check.stdout, check.stderr)
        # Every event archived where batch reads them: the worker has flushed them all.
        wait_archived(tmp_path / "shared", events, 30)
    finally:
        codes = roles.stop()
    assert codes == {"api": 0, "worker": 0, "batch": 0}, (codes, roles.logs())
    rows = query_chdb(
        tmp_path / "worker" / "clickhouse",
        "SELECT sum(count) FROM stratum.speed_windows FINAL WHERE metric = 'events'",
    )
    assert rows == [[len(events)]], roles.logs()
    stale = _healthcheck(roles.env["worker"], "worker", "--max-age", "0.5")
    assert stale.returncode == 1 and "old" in stale.stdout


@pytest.mark.skipif(
    SERVER_URL is None,
    reason=(
        "needs a ClickHouse server: set STRATUM_TEST_CLICKHOUSE_URL=http(s)://user:pass@host:8123 "
        "(chDB allows one process per data path, so three processes cannot share one here)"
    ),
)
def test_three_processes_share_only_kafka_and_a_clickhouse_server(
    tmp_path: Path, broker: str
) -> None:
    from stratum.storage import Storage

    assert SERVER_URL is not None
    database = f"stratum_test_{uuid.uuid4().hex[:12]}"
    roles = Roles(
        tmp_path, broker, dict.fromkeys(("api", "worker", "batch"), SERVER_URL), database=database
    )
    now = int(time.time() * 1000)
    t0 = now - 2 * 3_600_000
    t0 -= t0 % MINUTE
    events = _events(t0, 240)
    expected = float(len(events))
    admin = {"authorization": f"Bearer {ADMIN}"}
    try:
        roles.start()
        with httpx.Client(base_url=roles.base_url, timeout=30, headers=INGEST_HEADERS) as client:

            def total(source: str) -> float:
                body = client.get(
                    "/v1/metrics/events", params={"start": t0, "end": t0 + 2 * MINUTE}
                ).json()
                points = [p for s in body["series"] for p in s["points"]]
                if not points or {p["source"] for p in points} != {source}:
                    return -1.0
                return float(sum(p["value"] or 0 for p in points))

            response = client.post("/v1/events", json=events)
            assert response.status_code == 202, response.text
            wait_until(
                lambda: total("speed") == expected, 90, "the API to serve the worker's windows"
            )
            # A current event moves the batch horizon past the history.
            clock = client.post(
                "/v1/events", json=[{"event_id": "sep-clock", "ts": now, "type": "tick"}]
            )
            assert clock.status_code == 202
            wait_archived(tmp_path / "shared", [*events, {"event_id": "sep-clock"}], 60)
            job = client.post("/v1/admin/batch", headers=admin)
            assert job.status_code == 202, job.text
            job_id = job.json()["job_id"]

            def finished() -> dict[str, Any] | None:
                found = client.get(f"/v1/admin/jobs/{job_id}", headers=admin).json()
                return found if found["state"] in ("succeeded", "failed") else None

            done = wait_until(finished, 120, "the batch process to run the job")
            assert done["state"] == "succeeded", done
            wait_until(lambda: total("batch") == expected, 30, "the API to serve batch values")
    finally:
        codes = roles.stop()
        server = Storage(SERVER_URL, "default")
        server.command(f"DROP DATABASE IF EXISTS {database}")
        server.close()
    assert codes == {"api": 0, "worker": 0, "batch": 0}, (codes, roles.logs())
