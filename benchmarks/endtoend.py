"""``stratum up`` end to end: memory under the speed-layer load, the maximum rate from
the log to the API, and freshness at 50 % and 90 % of that maximum.

1. A broker is pre-loaded with N events, 500 per message (the speed benchmark's load);
   ``stratum up`` (fresh data dir, free port, no demo, no scheduled batch) is started
   against it. Done is when the API's ``events`` metric counts all N: the maximum rate
   is the events made visible per second between the first count and the last. Peak
   RSS (VmHWM) of the ``stratum up`` process is read then; the baseline is a plain
   aiokafka consumer's peak RSS on the same topic.
2. Freshness: events are produced to the log at 50 % and then 90 % of that rate (packed
   as ingest packs them). Every 100 ms a probe event with its own ``type`` is produced;
   the API is polled every 50 ms for the probes still outstanding, and a probe's
   freshness is from just before it was produced to the first answer that counts it.
   Each level runs for half its duration unmeasured first, to reach a steady state.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.common import (
    Figure,
    Profile,
    StratumChild,
    bench_parser,
    broker,
    emit,
    peak_rss_mib,
    percentile,
    produce,
    run_child,
    synthetic_events,
)
from stratum.producer import pack

TOPIC = "events"
PARTITIONS = 4
TS_MARK = b"4102444800000"  # 2100-01-01 in ms: a placeholder no real event carries
ID_MARK = b"@@@@@@@@"


def api_total(client: httpx.Client, start_ms: int, end_ms: int) -> float:
    response = client.get(
        "/v1/metrics/events", params={"start": start_ms, "end": end_ms, "step": "1h"}
    )
    response.raise_for_status()
    return sum(p["value"] or 0 for s in response.json()["series"] for p in s["points"])


def speed_events(client: httpx.Client) -> float:
    """The speed layer's own count of events aggregated (its Prometheus counter)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("stratum_speed_events_total "):
            return float(line.split()[1])
    return 0.0


def backlog(
    api: StratumChild, events: int, start_ms: int, end_ms: int, timeout_s: float
) -> dict[str, Any]:
    """Wait until the API counts every pre-loaded event. The rate runs from the speed
    layer's first aggregated event (its own counter) to the API counting them all."""
    client = httpx.Client(base_url=api.url, timeout=30.0)
    first: float | None = None
    total = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and first is None:
        if speed_events(client):
            first = time.perf_counter()
        time.sleep(0.05)
    while time.monotonic() < deadline and total < events:
        total = api_total(client, start_ms - 120_000, end_ms + 120_000)
        time.sleep(0.1)
    done = time.perf_counter()
    client.close()
    rate = events / (done - first) if first is not None and total >= events else None
    return {
        "total": total,
        "rate": rate,
        "since_start_s": done - api.started_at,
        "rss_mib": peak_rss_mib(api.pid),
    }


def templates(count: int) -> list[bytes]:
    """Messages of 500 events whose ``ts`` and id prefix are placeholders, so that each
    send stamps the current time and unique ids with one ``bytes.replace`` each."""
    events = synthetic_events(count * 500, 0, 1, id_prefix="@@@@@@@@-")
    for e in events:
        e["ts"] = int(TS_MARK)
    return [value for _, value in pack(events, 1, 500)]


async def freshness(
    api_url: str, bootstrap: str, rate: float, duration_s: float, pool: list[bytes]
) -> dict[str, Any]:
    """Load at ``rate`` events/s with probes; returns probe latencies in ms."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=2,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    outstanding: dict[str, float] = {}
    latencies: list[float] = []
    stop = asyncio.Event()
    sent = 0
    counter = 0
    tag = f"{time.time_ns() % 10**10:010d}"
    salt = int(tag) * 7919  # a different id range for every run: duplicates are dropped

    async def load() -> None:
        nonlocal sent, counter
        started = time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate / 500)
            while sent < due:
                counter += 1
                value = (
                    pool[counter % len(pool)]
                    .replace(TS_MARK, str(int(time.time() * 1000)).encode())
                    .replace(ID_MARK, f"{(salt + counter) % 16**8:08x}".encode())
                )
                await producer.send(TOPIC, value, partition=counter % PARTITIONS)
                sent += 1
            await asyncio.sleep(0.01)

    async def probes() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            name = f"probe-{tag}-{index}"  # unique per run: the API keeps old probes
            value = orjson.dumps(
                {
                    "event_id": f"{name}-{time.time_ns()}",
                    "ts": int(time.time() * 1000),
                    "type": name,
                    "country": "ZZ",
                }
            )
            outstanding[name] = time.perf_counter()
            await producer.send(TOPIC, value, partition=index % PARTITIONS)
            await asyncio.sleep(0.1)

    async def poll(client: httpx.AsyncClient) -> None:
        while not stop.is_set() or outstanding:
            names = list(outstanding)[:40]
            if names:
                now_ms = int(time.time() * 1000)
                params: list[tuple[str, str | int]] = [
                    ("start", now_ms - 600_000),
                    ("end", now_ms + 60_000),
                    ("step", "10m"),
                    ("group_by", "type"),
                    *(("type", n) for n in names),
                ]
                response = await client.get("/v1/metrics/events", params=params)
                seen = time.perf_counter()
                if response.status_code == 200:
                    for series in response.json()["series"]:
                        name = series["group"]["type"]
                        if name in outstanding and any(p["value"] for p in series["points"]):
                            latencies.append((seen - outstanding.pop(name)) * 1000)
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=api_url, timeout=30.0) as client:
        poller = asyncio.create_task(poll(client))
        workers = [asyncio.create_task(load()), asyncio.create_task(probes())]
        await asyncio.sleep(duration_s)
        stop.set()
        await asyncio.gather(*workers)
        try:
            await asyncio.wait_for(poller, timeout=15.0)
        except TimeoutError:
            pass
    lost = len(outstanding)
    await producer.stop()
    return {
        "latencies": latencies,
        "lost": lost,
        "events": sent * 500,
        "rate": sent * 500 / duration_s,
    }


def measure(quick: bool, profile: bool = False) -> list[Figure]:
    events = 300_000 if quick else 1_000_000
    duration_s = 10.0 if quick else 20.0
    with tempfile.TemporaryDirectory(prefix="stratum-bench-e2e-") as tmp:
        workdir = Path(tmp)
        with broker(workdir, partitions=PARTITIONS) as bootstrap:
            now = int(time.time() * 1000)
            start_ms, end_ms = now - 600_000, now
            loaded = synthetic_events(events, start_ms, end_ms, id_prefix="m")
            last = asyncio.run(produce(bootstrap, TOPIC, pack(loaded, PARTITIONS, 500)))
            del loaded
            plain = run_child(
                "benchmarks.speed_roles",
                "plain",
                "--bootstrap",
                bootstrap,
                "--topic",
                TOPIC,
                "--events",
                str(events),
                "--expect",
                json.dumps(last),
                "--workdir",
                tmp,
                timeout_s=300,
            )
            env = {"STRATUM_KAFKA__URL": bootstrap, "STRATUM_BATCH__ENABLED": "false"}
            with StratumChild("up", workdir, env=env) as api:
                api.wait_http()
                spy = (
                    Profile(
                        api.pid,
                        "endtoend-backlog",
                        f"stratum up consuming a pre-loaded log of {events:,} events",
                    )
                    if profile
                    else None
                )
                found = backlog(api, events, start_ms, end_ms, timeout_s=600)
                if spy:
                    spy.finish()
                print(
                    f"  stratum up: {found['total']:,.0f}/{events:,} events visible, "
                    f"{found['rate'] or 0:,.0f} ev/s log to API, peak RSS "
                    f"{found['rss_mib']:.0f} MiB",
                    flush=True,
                )
                levels: dict[int, dict[str, Any]] = {}
                pool = templates(40)
                for share in (50, 90):
                    target = (found["rate"] or 0) * share / 100
                    # Settle at this rate first (windows of the backlog close, the archive
                    # catches up), then measure the steady state.
                    asyncio.run(freshness(api.url, bootstrap, target, duration_s / 2, pool))
                    spy = (
                        Profile(
                            api.pid,
                            f"endtoend-freshness-{share}",
                            f"stratum up at {share} % of its maximum rate",
                        )
                        if profile
                        else None
                    )
                    levels[share] = asyncio.run(
                        freshness(api.url, bootstrap, target, duration_s, pool)
                    )
                    if spy:
                        spy.finish()
                    lat = levels[share]["latencies"]
                    print(
                        f"  freshness at {share} % ({target:,.0f} ev/s): p50 "
                        f"{percentile(lat, 50) or 0:.0f} ms, p99 {percentile(lat, 99) or 0:.0f}"
                        f" ms over {len(lat)} probes, {levels[share]['lost']} not seen",
                        flush=True,
                    )
                rss_after = peak_rss_mib(api.pid)
    complete = found["total"] >= events
    out = [
        Figure(
            "e2e",
            "stratum up: log to API, max events/s",
            "ev/s",
            found["rate"],
            plain["rate"],
            "plain aiokafka consumer (no storage)",
            note=f"{events:,} pre-loaded events, 500/message"
            + ("" if complete else "; INCOMPLETE"),
        ),
        Figure(
            "memory",
            "stratum up peak RSS under the speed-layer load",
            "MiB",
            found["rss_mib"],
            plain["peak_rss_mib"],
            "plain aiokafka consumer",
            note=f"after {events:,} events; {rss_after or 0:.0f} MiB after freshness too",
        ),
    ]
    for share, level in levels.items():
        lat = level["latencies"]
        note = f"{level['rate']:,.0f} ev/s offered, {len(lat)} probes, {level['lost']} not seen"
        out.append(
            Figure(
                "freshness",
                f"produced -> visible in API at {share} % of max, p50",
                "ms",
                percentile(lat, 50),
                note=note,
            )
        )
        out.append(
            Figure(
                "freshness",
                f"produced -> visible in API at {share} % of max, p99",
                "ms",
                percentile(lat, 99),
            )
        )
    return out


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the stratum up process into benchmarks/profiles/",
    )
    args = parser.parse_args()
    emit(measure(args.quick, args.profile), args.emit)


if __name__ == "__main__":
    main()
