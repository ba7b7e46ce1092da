"""Start-up: seconds from spawning ``stratum up --demo`` (fresh data dir, free port) to
the first data point in the API, i.e. the first ``GET /v1/metrics/events`` over the last
hour with a non-zero value.

Baseline: a plain Faust agent process, spawned against an embedded broker holding a few
events, to its first event: interpreter start, imports, the consumer-group join. That is
the floor any Faust-based speed layer pays before it can count anything.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import (
    Figure,
    StratumChild,
    bench_parser,
    broker,
    emit,
    median,
    produce,
    run_child,
    synthetic_events,
)
from stratum.producer import pack

TARGET_S = 15.0


def first_data(timeout_s: float, workdir: Path) -> tuple[float, float]:
    """(seconds to first data in the API, seconds to the first HTTP answer)."""
    with StratumChild("up", workdir, "--demo") as up:
        http_s = up.wait_http(timeout_s)
        client = httpx.Client(base_url=up.url, timeout=10.0)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                response = client.get("/v1/metrics/events", params={"start": "now-1h"})
                if response.status_code == 200 and any(
                    p["value"] for s in response.json()["series"] for p in s["points"]
                ):
                    return time.perf_counter() - up.started_at, http_s
                time.sleep(0.1)
        finally:
            client.close()
    raise RuntimeError(f"no data in the API within {timeout_s:.0f} s")


def faust_first_event(workdir: Path) -> float:
    """Seconds from spawning a plain Faust agent to its first event."""
    with broker(workdir) as bootstrap:
        now = int(time.time() * 1000)
        last = asyncio.run(
            produce(bootstrap, "events", pack(synthetic_events(100, now - 1000, now), 4, 500))
        )
        spawned = time.time()
        result = run_child(
            "benchmarks.speed_roles",
            "faust",
            "--bootstrap",
            bootstrap,
            "--topic",
            "events",
            "--events",
            "100",
            "--expect",
            json.dumps(last),
            "--workdir",
            str(workdir),
            timeout_s=120,
        )
        return float(result["first_wall"]) - spawned


def measure(quick: bool) -> list[Figure]:
    repeats = 1 if quick else 3
    stratum: list[float] = []
    http: list[float] = []
    faust: list[float] = []
    for run in range(repeats):
        with tempfile.TemporaryDirectory(prefix="stratum-bench-startup-") as tmp:
            seconds, http_s = first_data(120.0, Path(tmp))
            stratum.append(seconds)
            http.append(http_s)
        with tempfile.TemporaryDirectory(prefix="stratum-bench-faust-") as tmp:
            faust.append(faust_first_event(Path(tmp)))
        print(
            f"  run {run + 1}: stratum up --demo first data {stratum[-1]:.1f} s (HTTP after "
            f"{http[-1]:.1f} s); plain Faust first event {faust[-1]:.1f} s",
            flush=True,
        )
    return [
        Figure(
            "startup",
            "stratum up --demo to first data in the API",
            "s",
            median(stratum),
            median(faust),
            "plain Faust agent: spawn to first event",
            target=f"<= {TARGET_S:.0f} s",
            met=median(stratum) <= TARGET_S,
            note=f"HTTP served after {median(http):.1f} s",
        )
    ]


def main() -> None:
    args = bench_parser(__doc__ or "").parse_args()
    emit(measure(args.quick), args.emit)


if __name__ == "__main__":
    main()
