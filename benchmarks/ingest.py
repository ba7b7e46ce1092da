"""Ingest: events/s accepted by ``POST /v1/events`` through to the log.

``stratum api`` (ingest, REST API, dashboard; no speed layer competing for the CPU) runs
against a broker this benchmark starts. Clients post JSON arrays of 1,000 events over
several connections; an event counts once the API has answered 202, which it does only
after the log acknowledged it. Baseline: the same events, packed the same way (500 per
NDJSON message), produced straight to the same broker with aiokafka from one process.

Then the default ``stratum up`` (embedded broker, speed layer and batch in the same
process), where a 202 also waits for the journal's group-committed fsync: the same
posts, no baseline (compare it with a run on an earlier commit).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from benchmarks.common import (
    Figure,
    StratumChild,
    bench_parser,
    broker,
    cpu_seconds,
    emit,
    median,
    median_pair,
    synthetic_events,
)
from stratum.producer import pack

BATCH = 1000
CONNECTIONS = 8


def bodies(count: int) -> list[list[dict[str, object]]]:
    now = int(time.time() * 1000)
    events = synthetic_events(count * BATCH, now - 60_000, now, id_prefix="i")
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


async def post_all(url: str, batches: list[bytes], duration_s: float) -> tuple[int, float, int]:
    """Post ``batches`` round-robin over ``CONNECTIONS`` connections for ``duration_s``;
    returns (accepted events, seconds, non-202 answers)."""
    accepted = failed = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=url, timeout=30.0, limits=limits, headers={"content-type": "application/json"}
    ) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker(first: int) -> None:
            nonlocal accepted, failed
            index = first
            while time.perf_counter() < deadline:
                response = await client.post("/v1/events", content=batches[index % len(batches)])
                index += CONNECTIONS
                if response.status_code == 202:
                    accepted += int(response.json()["accepted"])
                else:
                    failed += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
        return accepted, time.perf_counter() - started, failed


def measure(quick: bool) -> list[Figure]:
    duration_s = 5.0 if quick else 10.0
    repeats = 1 if quick else 3
    raw = bodies(60)
    encoded = [orjson.dumps(b) for b in raw]
    stratum_rates: list[float] = []
    stratum_cpu: list[float] = []
    baseline_rates: list[float] = []
    baseline_cpu: list[float] = []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="stratum-bench-ingest-") as tmp:
        workdir = Path(tmp)
        with (
            broker(workdir) as bootstrap,
            StratumChild("api", workdir, env={"STRATUM_KAFKA__URL": bootstrap}) as api,
        ):
            api.wait_http()
            asyncio.run(post_all(api.url, encoded[:8], 1.0))  # warm-up: connections, JIT-free
            for _ in range(repeats):
                cpu_before = api.cpu_seconds()
                accepted, seconds, failed = asyncio.run(post_all(api.url, encoded, duration_s))
                stratum_rates.append(accepted / seconds)
                stratum_cpu.append(accepted / max(api.cpu_seconds() - cpu_before, 1e-9))
                failures += failed
                print(
                    f"  POST /v1/events  {accepted / seconds:>10,.0f} ev/s "
                    f"({accepted:,} in {seconds:.1f} s, {failed} non-202)",
                    flush=True,
                )
                rate, per_cpu = asyncio.run(direct(bootstrap, raw, duration_s))
                baseline_rates.append(rate)
                baseline_cpu.append(per_cpu)
                print(f"  aiokafka direct  {rate:>10,.0f} ev/s", flush=True)
        with StratumChild("up", workdir) as up:
            up.wait_http()
            asyncio.run(post_all(up.url, encoded[:8], 1.0))
            up_rates = []
            for _ in range(repeats):
                accepted, seconds, failed = asyncio.run(post_all(up.url, encoded, duration_s))
                up_rates.append(accepted / seconds)
                print(
                    f"  stratum up       {accepted / seconds:>10,.0f} ev/s "
                    f"({accepted:,} in {seconds:.1f} s, {failed} non-202)",
                    flush=True,
                )
    note = f"{CONNECTIONS} connections, JSON arrays of {BATCH} events, 4 partitions"
    if failures:
        note += f"; {failures} non-202 answers"
    return [
        Figure(
            "ingest",
            "events/s accepted by stratum up (embedded log, journal fsync'd)",
            "ev/s",
            median(up_rates),
            note="speed layer in the same process",
        ),
        Figure(
            "ingest",
            "events/s accepted through to the log",
            "ev/s",
            *median_pair(stratum_rates, baseline_rates),
            "aiokafka producing the same events",
            note=note,
        ),
        Figure(
            "ingest",
            "events per CPU-second of the ingest process",
            "ev/CPU-s",
            *median_pair(stratum_cpu, baseline_cpu),
            "aiokafka producer process",
        ),
    ]


async def direct(
    bootstrap: str, batches: list[list[dict[str, object]]], duration_s: float
) -> tuple[float, float]:
    """The baseline: pack and produce ``CONNECTIONS`` batches at a time straight to the
    log, waiting for the acknowledgements as ingest does, for ``duration_s``."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    sent = index = 0
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < duration_s:
            futures = []
            for _ in range(CONNECTIONS):
                batch = batches[index % len(batches)]
                index += 1
                for partition, value in pack(batch, 4, 500):
                    futures.append(await producer.send("events", value, partition=partition))
                sent += len(batch)
            await asyncio.gather(*futures)
    finally:
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        await producer.stop()
    return sent / seconds, sent / max(cpu, 1e-9)


def main() -> None:
    args = bench_parser(__doc__ or "").parse_args()
    emit(measure(args.quick), args.emit)


if __name__ == "__main__":
    main()
