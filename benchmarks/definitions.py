"""Live metric definitions on the demo, measured: seconds from Apply to the first speed
point of a new metric, and how long a change takes (Kappa replay of the demo's history,
then batch), through the admin API of ``stratum up --demo``.

    python -m benchmarks.definitions [--settle 60]

Runs the demo as shipped (fresh data dir, free port, 30 minutes of history at 200
events/s) until its history is archived and a first batch run is done (``--settle``
seconds at least), then adds a metric and changes one. Not a pass/fail check.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import StratumChild

TOKEN = "definitions-report-token"
NEW = {
    "aggregation": "count",
    "where": {"type": "purchase"},
    "dimensions": ["device"],
    "windows": ["1m", "1h"],
    "unit": "purchases",
}
CHANGED = {
    "aggregation": "avg",
    "field": "amount",
    "where": {"type": "purchase"},
    "dimensions": ["country", "device"],
    "windows": ["1m", "5m", "1h"],
    "unit": "EUR",
}


def _wait_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/admin/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish within {timeout_s:.0f} s")


def _took(job: dict[str, Any]) -> float:
    return (job["finished_at_ms"] - job["started_at_ms"]) / 1000


def _idle_batch(client: httpx.Client, timeout_s: float) -> None:
    """Wait for a succeeded batch run and no active one (the demo's first run)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = client.get("/v1/admin/jobs", params={"kind": "batch", "limit": 5}).json()["jobs"]
        if (
            jobs
            and jobs[0]["state"] in ("succeeded", "failed")
            and any(j["state"] == "succeeded" for j in jobs)
        ):
            return
        if not jobs or jobs[0]["state"] not in ("queued", "running"):
            client.post("/v1/admin/batch", json={"trigger": "cli"})
        time.sleep(1.0)
    raise RuntimeError("no batch run succeeded")


def report(settle_s: float, workdir: Path) -> None:
    env = {"STRATUM_API__ADMIN_TOKEN": TOKEN}
    with StratumChild("up", workdir, "--demo", env=env) as up:
        up.wait_http(120)
        client = httpx.Client(
            base_url=up.url, timeout=60.0, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        time.sleep(settle_s)
        _idle_batch(client, 600)

        applied_at = time.perf_counter()
        added = client.put(
            "/v1/admin/metrics/purchases_by_device", json=NEW, params={"reason": "benchmark"}
        ).json()
        first = None
        while first is None and time.perf_counter() - applied_at < 60:
            body = client.get("/v1/metrics/purchases_by_device", params={"start": "now-2m"}).json()
            if any(p["value"] for s in body.get("series", []) for p in s["points"]):
                first = time.perf_counter() - applied_at
            time.sleep(0.1)
        batch = _wait_job(client, added["jobs"][-1]["job_id"], 600)
        print(
            f"added a metric: first speed point {first:.1f} s after Apply"
            if first
            else "added a metric: no speed point within 60 s"
        )
        print(
            f"  its backfill: batch job {batch['state']}, {batch['rows_in']:,} events, "
            f"{_took(batch):.1f} s"
        )

        changed_at = time.perf_counter()
        changed = client.put(
            "/v1/admin/metrics/revenue", json=CHANGED, params={"reason": "benchmark"}
        ).json()
        replay = _wait_job(client, changed["jobs"][-1]["job_id"], 1800)
        batch = _wait_job(client, replay["params"]["batch_job"], 1800)
        total = time.perf_counter() - changed_at
        print(
            f"changed a metric: {total:.1f} s from Apply to its batch run's end: replay "
            f"{replay['state']} {_took(replay):.1f} s ({replay['rows_in']:,} events, "
            f"generation {replay['params'].get('generation')}), batch {batch['state']} "
            f"{_took(batch):.1f} s ({batch['rows_in']:,} events)"
        )
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds of demo before the changes"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratum-definitions-") as tmp:
        report(args.settle, Path(tmp))


if __name__ == "__main__":
    main()
