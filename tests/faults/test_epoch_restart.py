"""``stratum up`` SIGKILLed while the speed layer has counted events that the archive has
not written yet, then started again on the same data dir: the new start retires the dead
epoch, so what is served equals what is archived (the orphans are gone at once, not
only after a batch run) and the batch horizon moves on with the new epoch's events
instead of staying frozen at the dead epoch's archive."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from stratum.archive import archive_root, list_files
from tests.ports import free_port
from tests.processes import StratumProcess, stratum_env, wait_for_log
from tests.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
MINUTE = 60_000
LATENESS = MINUTE
TOKEN = "test-admin-token"


def _events(prefix: str, start_ms: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}{i}",
            "ts": start_ms + i * 500,
            "type": "view",
            "country": ("DE", "FR")[i % 2],
        }
        for i in range(n)
    ]


def _archived(data_dir: Path) -> pl.DataFrame:
    files = list_files(archive_root(data_dir))
    if not files:
        return pl.DataFrame(schema={"event_id": pl.String, "ts": pl.Int64})
    frames = [pl.read_parquet(p, columns=["event_id", "ts"]) for p in files]
    return pl.concat(frames).unique("event_id").with_columns(pl.col("ts").dt.epoch("ms"))


class _Up:
    """One ``stratum up`` child on a data dir, and its API."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        port = free_port()
        env = stratum_env(
            tmp_path,
            STRATUM_DATA_DIR=str(self.data_dir),
            STRATUM_API__PORT=str(port),
            STRATUM_API__ADMIN_TOKEN=TOKEN,
            STRATUM_SPEED__ALLOWED_LATENESS_MS=str(LATENESS),
            STRATUM_SPEED__FLUSH_INTERVAL_S="0.5",
            STRATUM_SPEED__IDLE_TIMEOUT_S="3600",
            # The archive writes every 15 s: a kill right after the speed
            # layer counted a post leaves its events in no archive file.
            STRATUM_ARCHIVE__FLUSH_INTERVAL_S="15",
            STRATUM_BATCH__INTERVAL_S="3600",
        )
        self.process = StratumProcess("up", env, tmp_path)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def start(self) -> None:
        self.process.start()
        wait_until(self._serving, 90, "stratum up to serve")

    def wait_for_worker(self) -> None:
        """Faust's group join takes seconds: wait until the worker owns partitions."""

        def assigned() -> bool:
            # A year old (ingest's oldest accepted time is 365 days back): it moves
            # no watermark and falls outside every range the test reads.
            old_ms = int(time.time() * 1000) - 364 * 86_400_000
            self._post([{"event_id": f"w{time.time_ns()}", "ts": old_ms, "type": "warmup"}])
            worker = self._get("/v1/health")["components"].get("worker", {})
            return "partition" in worker.get("detail", "")

        wait_until(assigned, 90, "the speed layer to own its partitions", interval_s=1.0)

    def _serving(self) -> bool:
        try:
            return self.api.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def _get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def _post(self, events: list[dict[str, Any]]) -> int:
        response = self.api.post("/v1/events", json=events)
        assert response.status_code == 202, response.text
        return int(response.json()["accepted"])

    def served(self, start_ms: int, end_ms: int) -> float:
        body = self._get("/v1/metrics/events", start=start_ms, end=end_ms)
        return float(sum(p["value"] or 0 for s in body["series"] for p in s["points"]))

    def post_and_count(self, events: list[dict[str, Any]], span: tuple[int, int]) -> None:
        wanted = self.served(*span) + self._post(events)
        wait_until(lambda: self.served(*span) >= wanted, 60, "the speed layer to count them")

    def run_batch(self) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {TOKEN}"}
        job_id = self.api.post("/v1/admin/batch", headers=headers).json()["job_id"]

        def finished() -> dict[str, Any] | None:
            job = self.api.get(f"/v1/admin/jobs/{job_id}", headers=headers).json()
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None

        job: dict[str, Any] = wait_until(finished, 120, f"batch job {job_id}")
        assert job["state"] == "succeeded", job
        return job


def test_a_restart_after_sigkill_retires_the_dead_epoch(
    tmp_path: Path, figures: Callable[[str, str], None]
) -> None:
    up = _Up(tmp_path)
    now = int(time.time() * 1000) // MINUTE * MINUTE
    t0 = now - 20 * MINUTE
    span = (t0, now + MINUTE)
    up.start()
    try:
        up.wait_for_worker()
        up.post_and_count(_events("a", t0, 400), span)
        wait_until(
            lambda: (
                _archived(up.data_dir).filter(pl.col("event_id").str.starts_with("a")).height == 400
            ),
            60,
            "the archive",
        )
        up.post_and_count(_events("b", t0 + 4 * MINUTE, 200), span)  # counted ...
        up.process.kill()  # ... and killed before the archive's next write
        orphans = (
            200 - _archived(up.data_dir).filter(pl.col("event_id").str.starts_with("b")).height
        )

        up.start()  # the same data dir: a new epoch
        assert wait_for_log(up.process, "retired log epoch", 10), up.process.log()[-3000:]
        archive = _archived(up.data_dir).filter(pl.col("ts").is_between(*span))
        assert up.served(*span) == archive.height  # the orphans are gone at once

        up.wait_for_worker()
        up.post_and_count(_events("c", t0 + 10 * MINUTE, 400), span)
        wait_until(
            lambda: (
                _archived(up.data_dir).filter(pl.col("event_id").str.starts_with("c")).height == 400
            ),
            60,
            "the new archive",
        )
        job = up.run_batch()
        archive = _archived(up.data_dir).filter(pl.col("ts").is_between(*span))
        newest = int(archive["ts"].max() or 0)
        assert job["horizon_ms"] == (newest - LATENESS) // MINUTE * MINUTE  # not frozen
        assert up.served(*span) == archive.height
        figures(
            "epoch restart",
            f"orphans at the kill={orphans}, served=archived="
            f"{archive.height}, horizon=newest-lateness",
        )
    finally:
        up.process.stop()
        up.api.close()
