"""What ``stratum up --demo`` shows, measured: first data, drift before and after a batch
run, the sketches' error on the demo's data, and a Kappa replay of the demo's history.

    python -m benchmarks.demo [--minutes 10]

Runs the demo as shipped (fresh data dir, free port, default settings: 5 minutes of
allowed lateness, so batch covers windows older than that) for ``--minutes``, then:

1. asks the API for every metric's windows, as served (speed, where batch has not run);
2. triggers a batch run and waits for it;
3. prints ``/v1/drift`` per metric: how far the speed values served before the run were
   from batch, and why (late events, duplicates, sketch error);
4. reads the same windows again: up to the horizon they now come from batch and equal
   its values (drift of the served values after the run);
5. triggers a Kappa replay from the start and reports its duration and events/s.

Not a pass/fail check: figures for the README and issue notes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import StratumChild

TOKEN = "demo-report-token"


def _wait_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/admin/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise RuntimeError(f"job {job_id} did not finish within {timeout_s:.0f} s")


def _served(
    client: httpx.Client, metric: dict[str, Any], start_ms: int, end_ms: int
) -> dict[int, tuple[float | None, str]]:
    body = client.get(
        f"/v1/metrics/{metric['name']}",
        params={"start": start_ms, "end": end_ms, "step": metric["windows"][0]},
    ).json()
    return {p["t_ms"]: (p["value"], p["source"]) for s in body["series"] for p in s["points"]}


def report(minutes: float, workdir: Path) -> None:
    env = {"STRATUM_API__ADMIN_TOKEN": TOKEN}
    with StratumChild("up", workdir, "--demo", env=env) as up:
        up.wait_http(120)
        client = httpx.Client(
            base_url=up.url, timeout=60.0, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        started_ms = int(time.time() * 1000)
        first = None
        while first is None and time.perf_counter() - up.started_at < 120:
            body = client.get("/v1/metrics/events", params={"start": "now-1h"}).json()
            if any(p["value"] for s in body["series"] for p in s["points"]):
                first = time.perf_counter() - up.started_at
            time.sleep(0.2)
        print(
            f"first data in the API: {first:.1f} s after `stratum up --demo`"
            if first
            else "no data within 120 s"
        )
        print(f"running the demo for {minutes:g} min ...", flush=True)
        time.sleep(minutes * 60)
        status = client.get("/v1/status").json()
        metrics = client.get("/v1/metrics").json()["metrics"]
        now_ms = int(time.time() * 1000)
        before = {m["name"]: _served(client, m, started_ms - 3_600_000, now_ms) for m in metrics}

        accepted = client.post("/v1/admin/batch", json={"trigger": "cli"}).json()
        job = _wait_job(client, accepted["job_id"], 600)
        horizon_ms = job["horizon_ms"]
        print(
            f"\nbatch run: {job['state']}, {job['rows_in']:,} events in, "
            f"{(job['finished_at_ms'] - job['started_at_ms']) / 1000:.1f} s, horizon "
            f"{job['horizon']}"
        )
        print(f"pipeline status before the run: {_status_line(status)}")
        print("\ndrift of the served values (speed before the run vs batch), per metric:")
        for metric in metrics:
            name = metric["name"]
            drift = client.get(
                "/v1/drift",
                params={"metric": name, "start": started_ms - 3_600_000, "end": horizon_ms},
            ).json()
            s = drift["summary"]
            sketched = [
                abs(p["relative"])
                for p in drift["points"]
                if p["reason"].startswith("sketch") and p["relative"] is not None
            ]
            after = _served(client, metric, started_ms - 3_600_000, horizon_ms)
            batch = {p["t_ms"]: p["batch"] for p in drift["points"]}
            off_after = sum(
                1
                for t, (v, _) in after.items()
                if t in batch
                and (v is None) != (batch[t] is None)
                or (
                    v is not None
                    and batch.get(t) is not None
                    and abs(v - batch[t]) > 1e-9 * max(1.0, abs(batch[t]))
                )
            )
            sources = sorted({src for _, src in after.values()})
            served_before = sum(1 for t in batch if t in before[name])
            print(
                f"  {name:14s} windows {s['windows_compared']:4d} (served before: "
                f"{served_before}); off before {s['windows_off']:3d} "
                f"(max |rel| {s['max_abs_relative']:.4f}; reasons {s['by_reason']})"
                + (
                    f"; sketch |rel| max {max(sketched):.4f} mean "
                    f"{sum(sketched) / len(sketched):.4f}"
                    if sketched
                    else ""
                )
                + f"; off after {off_after} (sources now {sources})"
            )

        accepted = client.post("/v1/admin/replay", json={}).json()
        job = _wait_job(client, accepted["job_id"], 1800)
        took = (job["finished_at_ms"] - job["started_at_ms"]) / 1000
        generation = client.get("/v1/admin/generation").json()
        print(
            f"\nKappa replay from the start: {job['state']}, {job['rows_in']:,} events in "
            f"{took:.1f} s = {job['rows_in'] / took:,.0f} events/s; live generation now "
            f"{generation['live']}" + (f"; error: {job['error']}" if job["error"] else "")
        )
        client.close()


def _status_line(status: dict[str, Any]) -> str:
    speed = status["speed"]
    return (
        f"event-time lag {speed['lag_s']} s, watermark lag {speed['watermark_lag_s']} s "
        f"(allowed lateness included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratum-demo-report-") as tmp:
        report(args.minutes, Path(tmp))


if __name__ == "__main__":
    main()
