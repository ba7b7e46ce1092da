"""``stratum up`` end to end: memory under the speed-layer load, the maximum rate from
the log to the API, and freshness at 50 % and 90 % of that maximum.

1. A broker is pre-loaded with N events, 500 per message (the speed benchmark's load);
   ``stratum up`` (fresh data dir, free port, no demo, no scheduled batch) is started
   against it. Done is when the API's ``events`` metric counts all N: the maximum rate
   is the events made visible per second between the first count and the last. Peak
   RSS (VmHWM) of the ``stratum up`` process is read then; the baseline is a plain
   aiokafka consumer's peak RSS on the same topic.
2. The maximum sustainable rate: the highest offered rate (bisected below the
   backlog's, with the load generator on the same two cores) at which the probes'
   latency does not grow. Freshness: events are produced to the log at 50 % and then
   90 % of that rate (packed as ingest packs them). Every 100 ms a probe event with
   its own ``type`` is produced; the API is polled every 50 ms for the probes still
   outstanding, and a probe's freshness is from just before it was produced to the
   first answer that counts it.
   Each level runs for half its duration unmeasured first, to reach a steady state.
3. The same for a ``[[source]]`` of one JSON object per message (``bench.orders``,
   nested fields, created before ``stratum up`` starts, as a team's own topic would
   be): its pre-load is written only after step 2, so the two backlogs do not share the
   machine; then its maximum rate and its freshness at 50 % and 90 % of it. A probe
   there is told apart by its own ``probe`` dimension.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
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
from stratum.settings import DEFAULT_METRICS_FILE

TOPIC = "events"
SOURCE_TOPIC = "bench.orders"
SOURCE_METRIC = "bench_orders"
PARTITIONS = 4
TS_MARK = b"4102444800000"  # 2100-01-01 in ms: a placeholder no real event carries
ID_MARK = b"@@@@@@@@"
SOURCE_DEFINITIONS = f"""
[[source]]
name = "bench_orders"
topic = "{SOURCE_TOPIC}"
format = "json"
event_id = "id"
ts = "at"
ts_unit = "ms"
type = "order"
fields = {{ country = "customer.country", amount = "total.amount", probe = "probe" }}

[[metric]]
name = "{SOURCE_METRIC}"
description = "One-event-per-message orders, by probe (the benchmark's freshness marks)"
source = "bench_orders"
aggregation = "count"
dimensions = ["probe"]
windows = ["1m"]
"""


@dataclass(frozen=True)
class Feed:
    """What one freshness run writes and reads: the topic, the metric counting it, the
    dimension a probe is told apart by, and events per load message."""

    topic: str
    metric: str
    probe_dimension: str
    per_message: int

    def probe(self, name: str) -> bytes:
        now_ms = int(time.time() * 1000)
        if self.topic == TOPIC:
            return orjson.dumps(
                {"event_id": f"{name}-{time.time_ns()}", "ts": now_ms, "type": name}
            )
        return orjson.dumps({"id": f"{name}-{time.time_ns()}", "at": now_ms, "probe": name})


BUILTIN_FEED = Feed(TOPIC, "events", "type", 500)
SOURCE_FEED = Feed(SOURCE_TOPIC, SOURCE_METRIC, "probe", 1)


def api_total(client: httpx.Client, metric: str, start_ms: int, end_ms: int) -> float:
    response = client.get(
        f"/v1/metrics/{metric}", params={"start": start_ms, "end": end_ms, "step": "1h"}
    )
    response.raise_for_status()
    return sum(p["value"] or 0 for s in response.json()["series"] for p in s["points"])


def counters(client: httpx.Client, *names: str) -> dict[str, float]:
    """Values of the named Prometheus samples (0 when absent)."""
    found = dict.fromkeys(names, 0.0)
    for line in client.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found


def speed_events(client: httpx.Client) -> float:
    """The speed layer's own count of events aggregated (its Prometheus counter)."""
    return counters(client, "stratum_speed_events_total")["stratum_speed_events_total"]


def backlog(
    api: StratumChild,
    metric: str,
    events: int,
    start_ms: int,
    end_ms: int,
    timeout_s: float,
    counted_before: float = 0.0,
) -> dict[str, Any]:
    """Wait until the API counts every pre-loaded event; the rate is the slope of the
    speed layer's own counter between 10 % and 90 % of the backlog. A worker reports a
    whole fetch at once and the API shows it after a flush, so rates taken from the
    first count or to the last answer were off by up to 2x either way on a backlog of
    a second or two."""
    client = httpx.Client(base_url=api.url, timeout=30.0)
    marks: dict[float, tuple[float, float]] = {}
    total = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(marks) < 2:
        counted = speed_events(client) - counted_before
        now = time.perf_counter()
        for share in (0.1, 0.9):
            if share not in marks and counted >= share * events:
                marks[share] = (now, counted)
        time.sleep(0.02)
    while time.monotonic() < deadline and total < events:
        total = api_total(client, metric, start_ms - 120_000, end_ms + 120_000)
        time.sleep(0.1)
    client.close()
    rate = None
    if len(marks) == 2 and total >= events and marks[0.9][0] > marks[0.1][0]:
        (t1, c1), (t9, c9) = marks[0.1], marks[0.9]
        rate = (c9 - c1) / (t9 - t1)
    return {
        "total": total,
        "rate": rate,
        "since_start_s": time.perf_counter() - api.started_at,
        "rss_mib": peak_rss_mib(api.pid),
    }


def templates(count: int) -> list[bytes]:
    """Messages of 500 events whose ``ts`` and id prefix are placeholders, so that each
    send stamps the current time and unique ids with one ``bytes.replace`` each."""
    events = synthetic_events(count * 500, 0, 1, id_prefix="@@@@@@@@-")
    for e in events:
        e["ts"] = int(TS_MARK)
    return [value for _, value in pack(events, 1, 500)]


def order(event: dict[str, Any], ts_ms: int) -> bytes:
    """A service's own shape of one event: nested, other names than Stratum's."""
    return orjson.dumps(
        {
            "id": event["event_id"],
            "at": ts_ms,
            "customer": {"country": event["country"], "user": event["user_id"]},
            "total": {"amount": event.get("amount", 0.0)},
        }
    )


def order_templates(count: int) -> list[bytes]:
    """One-event messages with the same placeholders as :func:`templates`."""
    events = synthetic_events(count, 0, 1, id_prefix="@@@@@@@@-")
    return [order(e, int(TS_MARK)) for e in events]


async def send_all(producer: Any, topic: str, messages: Iterable[tuple[int, bytes]]) -> None:
    """Send through one record batch per partition at a time: per-message ``send``
    costs the load generator more CPU than one-event messages at these rates allow."""
    batches: dict[int, Any] = {}
    for partition, value in messages:
        batch = batches.get(partition) or producer.create_batch()
        if batch.append(key=None, value=value, timestamp=None) is None:
            await producer.send_batch(batch, topic, partition=partition)
            batch = producer.create_batch()
            batch.append(key=None, value=value, timestamp=None)
        batches[partition] = batch
    for partition, batch in batches.items():
        await producer.send_batch(batch, topic, partition=partition)


async def freshness(
    api_url: str, bootstrap: str, feed: Feed, rate: float, duration_s: float, pool: list[bytes]
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
    trend: list[tuple[float, float]] = []  # (sent at, latency ms) per probe seen
    stop = asyncio.Event()
    sent = 0
    counter = 0
    tag = f"{time.time_ns() % 10**10:010d}"
    salt = int(tag) * 7919  # a different id range for every run: duplicates are dropped

    async def load() -> None:
        nonlocal sent, counter
        started = time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate / feed.per_message)
            stamp = str(int(time.time() * 1000)).encode()
            messages = []
            while sent < due:
                counter += 1
                value = (
                    pool[counter % len(pool)]
                    .replace(TS_MARK, stamp)
                    .replace(ID_MARK, f"{(salt + counter) % 16**8:08x}".encode())
                )
                messages.append((counter % PARTITIONS, value))
                sent += 1
            await send_all(producer, feed.topic, messages)
            await asyncio.sleep(0.01)

    async def probes() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            name = f"probe-{tag}-{index}"  # unique per run: the API keeps old probes
            outstanding[name] = time.perf_counter()
            await producer.send(feed.topic, feed.probe(name), partition=index % PARTITIONS)
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
                    ("group_by", feed.probe_dimension),
                    *((feed.probe_dimension, n) for n in names),
                ]
                response = await client.get(f"/v1/metrics/{feed.metric}", params=params)
                seen = time.perf_counter()
                if response.status_code == 200:
                    for series in response.json()["series"]:
                        name = series["group"][feed.probe_dimension]
                        if name in outstanding and any(p["value"] for p in series["points"]):
                            sent_at = outstanding.pop(name)
                            latencies.append((seen - sent_at) * 1000)
                            trend.append((sent_at, (seen - sent_at) * 1000))
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
        "trend": sorted(trend),
        "lost": lost,
        "events": sent * feed.per_message,
        "rate": sent * feed.per_message / duration_s,
    }


FALLING_BEHIND = 0.05  # latency growing 50 ms per second: a backlog of 5 % of the rate


def behind(result: dict[str, Any]) -> float:
    """How fast the probes' latency grew over the run, in seconds per second (the
    least-squares slope over send time): the share of the offered rate that piles up."""
    trend = result["trend"]
    if len(trend) < 9:
        return float("inf")
    sent = np.array([t for t, _ in trend])
    latency_s = np.array([ms / 1000 for _, ms in trend])
    return float(np.polyfit(sent - sent[0], latency_s, 1)[0])


def keeps_up(result: dict[str, Any], rate: float) -> bool:
    """Whether a run at ``rate`` was sustained: every probe seen, the load generator
    offered what was asked, and the latency grew less than :data:`FALLING_BEHIND`."""
    return not result["lost"] and result["rate"] >= 0.95 * rate and behind(result) < FALLING_BEHIND


def drain(api: StratumChild, bootstrap: str, feed: Feed, pool: list[bytes]) -> None:
    """Probes alone until two runs in a row see them within 800 ms (bounded: 60 s), so
    that a run that fell behind leaves no backlog to the next."""
    deadline = time.monotonic() + 60
    quiet_runs = 0
    while time.monotonic() < deadline and quiet_runs < 2:
        quiet = asyncio.run(freshness(api.url, bootstrap, feed, 0.0, 1.0, pool))
        fresh = not quiet["lost"] and (percentile(quiet["latencies"], 50) or 1e9) < 800
        quiet_runs = quiet_runs + 1 if fresh else 0


def sustainable(
    api: StratumChild,
    bootstrap: str,
    feed: Feed,
    ceiling: float,
    pool: list[bytes],
    step_s: float,
) -> float:
    """The maximum sustainable rate (the highest offered rate whose latency does not
    grow, as in Karimov et al., ICDE 2018), by bisection below the backlog rate. The
    backlog rate is measured with the machine to itself; here the load generator shares
    its two cores, as any producer on the same host would."""
    low, high = 0.25 * ceiling, ceiling
    for _ in range(4):
        rate = (low + high) / 2
        result = asyncio.run(freshness(api.url, bootstrap, feed, rate, step_s, pool))
        held = keeps_up(result, rate)
        print(
            f"  {feed.topic} at {rate:,.0f} ev/s: "
            + ("sustained" if held else "not sustained")
            + f" (latency growing {behind(result) * 1000:+.0f} ms/s, median "
            f"{percentile([ms for _, ms in result['trend']], 50) or 0:.0f} ms, offered "
            f"{result['rate']:,.0f}, {result['lost']} not seen)",
            flush=True,
        )
        if held:
            low = rate
        else:
            high = rate
            drain(api, bootstrap, feed, pool)
    return low


def levels(
    api: StratumChild,
    bootstrap: str,
    feed: Feed,
    backlog_found: dict[str, Any],
    pool: list[bytes],
    duration_s: float,
    profile: bool,
) -> dict[int, dict[str, Any]]:
    """The sustainable rate below ``backlog_found``'s (stored there as
    ``"sustainable"``), then freshness of ``feed`` at 50 % and 90 % of it."""
    max_rate = sustainable(api, bootstrap, feed, backlog_found["rate"] or 0, pool, duration_s * 0.8)
    backlog_found["sustainable"] = max_rate
    drain(api, bootstrap, feed, pool)
    found: dict[int, dict[str, Any]] = {}
    for share in (50, 90):
        target = max_rate * share / 100
        # Settle at this rate first (windows of the backlog close, the archive catches
        # up), then measure the steady state.
        asyncio.run(freshness(api.url, bootstrap, feed, target, duration_s / 2, pool))
        spy = (
            Profile(
                api.pid,
                f"endtoend-freshness-{feed.metric}-{share}",
                f"stratum up at {share} % of its maximum rate ({feed.topic})",
            )
            if profile
            else None
        )
        found[share] = asyncio.run(freshness(api.url, bootstrap, feed, target, duration_s, pool))
        if spy:
            spy.finish()
        lat = found[share]["latencies"]
        print(
            f"  {feed.topic} freshness at {share} % ({target:,.0f} ev/s): p50 "
            f"{percentile(lat, 50) or 0:.0f} ms, p99 {percentile(lat, 99) or 0:.0f}"
            f" ms over {len(lat)} probes, {found[share]['lost']} not seen",
            flush=True,
        )
    return found


def freshness_figures(label: str, found: dict[int, dict[str, Any]]) -> list[Figure]:
    targets = {50: 1500.0, 90: 3000.0}
    out = []
    for share, level in found.items():
        lat = level["latencies"]
        p99 = percentile(lat, 99)
        note = f"{level['rate']:,.0f} ev/s offered, {len(lat)} probes, {level['lost']} not seen"
        out.append(
            Figure(
                "freshness",
                f"{label}: produced -> visible in API at {share} % of max, p50",
                "ms",
                percentile(lat, 50),
                note=note,
            )
        )
        out.append(
            Figure(
                "freshness",
                f"{label}: produced -> visible in API at {share} % of max, p99",
                "ms",
                p99,
                target=f"<= {targets[share]:,.0f} ms",
                met=None if p99 is None else p99 <= targets[share] and not level["lost"],
            )
        )
    return out


def source_run(
    workdir: Path, bootstrap: str, events: int, duration_s: float, profile: bool
) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """A second ``stratum up`` (own data dir, its built-in topic empty) with the JSON
    source over a pre-loaded ``bench.orders``: the maximum rate of one-event messages
    and the freshness at 50 % and 90 % of it. A run of its own, because the first
    one's workers would consume the source's pre-load while it is written."""
    workdir.mkdir()
    definitions = workdir / "metrics.toml"
    definitions.write_text(DEFAULT_METRICS_FILE.read_text() + SOURCE_DEFINITIONS)
    now = int(time.time() * 1000)
    start_ms, end_ms = now - 600_000, now
    orders = synthetic_events(events, start_ms, end_ms, seed=5, id_prefix="o")
    asyncio.run(
        produce(
            bootstrap,
            SOURCE_TOPIC,
            [(i % PARTITIONS, order(e, e["ts"])) for i, e in enumerate(orders)],
        )
    )
    del orders
    idle = "bench-idle-events"
    env = {
        "STRATUM_KAFKA__URL": bootstrap,
        "STRATUM_KAFKA__TOPIC": idle,
        "STRATUM_KAFKA__LATE_TOPIC": f"{idle}-late",
        "STRATUM_KAFKA__DEAD_LETTER_TOPIC": f"{idle}-dead-letter",
        "STRATUM_BATCH__ENABLED": "false",
        "STRATUM_METRICS_FILE": str(definitions),
    }
    with StratumChild("up", workdir, env=env) as api:
        api.wait_http()
        found = backlog(api, SOURCE_METRIC, events, start_ms, end_ms, 600)
        print(
            f"  source {SOURCE_TOPIC}: {found['total']:,.0f}/{events:,} one-event"
            f" messages visible, {found['rate'] or 0:,.0f} ev/s log to API",
            flush=True,
        )
        return found, levels(
            api, bootstrap, SOURCE_FEED, found, order_templates(2000), duration_s, profile
        )


def measure(quick: bool, profile: bool = False) -> list[Figure]:
    events = 1_000_000 if quick else 3_000_000
    duration_s = 10.0 if quick else 20.0
    with tempfile.TemporaryDirectory(prefix="stratum-bench-e2e-") as tmp:
        workdir = Path(tmp)
        with broker(workdir, topics=[SOURCE_TOPIC], partitions=PARTITIONS) as bootstrap:
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
            env = {
                "STRATUM_KAFKA__URL": bootstrap,
                "STRATUM_BATCH__ENABLED": "false",
            }
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
                found = backlog(api, "events", events, start_ms, end_ms, timeout_s=600)
                if spy:
                    spy.finish()
                print(
                    f"  stratum up: {found['total']:,.0f}/{events:,} events visible, "
                    f"{found['rate'] or 0:,.0f} ev/s log to API, peak RSS "
                    f"{found['rss_mib']:.0f} MiB",
                    flush=True,
                )
                builtin = levels(
                    api, bootstrap, BUILTIN_FEED, found, templates(40), duration_s, profile
                )
                rss_after = peak_rss_mib(api.pid)
            single_n = events // 2
            single, source = source_run(
                workdir / "source", bootstrap, single_n, duration_s, profile
            )
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
            "e2e",
            "stratum up: json source, log to API, max events/s",
            "ev/s",
            single["rate"],
            note=f"{single_n:,} pre-loaded one-event messages, a second stratum up"
            + ("" if single["total"] >= single_n else "; INCOMPLETE"),
        ),
        Figure(
            "e2e",
            "stratum up: log to API, max sustainable events/s (producer on the same host)",
            "ev/s",
            found["sustainable"],
            note="freshness levels are shares of this",
        ),
        Figure(
            "e2e",
            "stratum up: json source, max sustainable events/s (producer on the same host)",
            "ev/s",
            single["sustainable"],
            note="freshness levels are shares of this",
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
    return (
        out
        + freshness_figures("built-in topic", builtin)
        + freshness_figures("json source", source)
    )


FLUSH_COUNT, FLUSH_SUM = "stratum_speed_flush_seconds_count", "stratum_speed_flush_seconds_sum"
ARCHIVE_COUNT = "stratum_archive_flush_seconds_count"
ARCHIVE_SUM = "stratum_archive_flush_seconds_sum"


def steady(rate: float, runs: int, duration_s: float) -> None:
    """Freshness of the built-in topic at one offered rate, run after run on one
    ``stratum up``: whether latency drifts over a process's life, and what share of
    the time the speed layer spends flushing (no figures for the table)."""
    with tempfile.TemporaryDirectory(prefix="stratum-bench-steady-") as tmp:
        workdir = Path(tmp)
        with broker(workdir, topics=[SOURCE_TOPIC], partitions=PARTITIONS) as bootstrap:
            env = {"STRATUM_KAFKA__URL": bootstrap, "STRATUM_BATCH__ENABLED": "false"}
            with (
                StratumChild("up", workdir, env=env) as api,
                httpx.Client(base_url=api.url, timeout=30.0) as client,
            ):
                api.wait_http()
                pool = templates(40)
                for run in range(runs):
                    names = (FLUSH_COUNT, FLUSH_SUM, ARCHIVE_COUNT, ARCHIVE_SUM)
                    before = counters(client, *names)
                    result = asyncio.run(
                        freshness(api.url, bootstrap, BUILTIN_FEED, rate, duration_s, pool)
                    )
                    after = counters(client, *names)
                    flushes, flushing_s, writes, writing_s = (
                        after[name] - before[name] for name in names
                    )
                    lat = result["latencies"]
                    print(
                        f"  run {run + 1:2d} at {result['rate']:,.0f} ev/s: p50 "
                        f"{percentile(lat, 50) or 0:.0f} ms, p99 {percentile(lat, 99) or 0:.0f}"
                        f" ms, latency growing {behind(result) * 1000:+.0f} ms/s; "
                        f"{flushes / duration_s:.1f} flushes/s, mean "
                        f"{1000 * flushing_s / max(flushes, 1):.0f} ms; {writes:.0f} archive "
                        f"writes, mean {1000 * writing_s / max(writes, 1):.0f} ms",
                        flush=True,
                    )


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the stratum up process into benchmarks/profiles/",
    )
    parser.add_argument(
        "--steady",
        type=float,
        metavar="EV_PER_S",
        help="instead: freshness at this rate, --runs times on one stratum up",
    )
    parser.add_argument("--runs", type=int, default=12, help="runs of 10 s for --steady")
    args = parser.parse_args()
    if args.steady:
        steady(args.steady, args.runs, 10.0)
        return
    emit(measure(args.quick, args.profile), args.emit)


if __name__ == "__main__":
    main()
