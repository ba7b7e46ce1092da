"""Speed layer: events/s from the log to ClickHouse upserts, per worker process.

Pre-loads one topic with N events packed 500 to a message (as ingest packs them) and one
with events one per message, then times, each in a fresh process on the same topic:

- Stratum's worker (speed agent + archiver), first event to the last checkpoint written,
  twice: with the baselines' job as metrics (``same-job``: count and latency sum per
  minute, type and country, :file:`speed_metrics.toml`), whose stored windows are
  compared with the baselines' aggregates, and with the shipped catalog;
- a plain aiokafka consumer + orjson + dict aggregation (the practical Python ceiling);
- a plain Faust agent doing the same job (what Faust alone costs per message).

The targets apply to the same job; the shipped catalog's figures say what its quantile
sketch and distinct count cost on top.

Rates are wall-clock; "per CPU-second" divides by the CPU the process used over the same
span, i.e. the rate per core. Repeats alternate the roles and report the median.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Figure,
    bench_parser,
    broker,
    emit,
    median,
    median_pair,
    produce,
    run_child,
    synthetic_events,
)
from benchmarks.speed_roles import AGGREGATE_FILE
from stratum.producer import pack

BATCHED_TOPIC = "bench-batched"
SINGLE_TOPIC = "bench-single"
PARTITIONS = 4
ROLES = ("stratum", "same-job", "plain", "faust")
# The baselines' job as Stratum metrics: count and sum of latency_ms per minute, type and
# country (the results are compared); "stratum" runs the shipped catalog.
SAME_JOB_METRICS = Path(__file__).with_name("speed_metrics.toml")
PROCESS = {"same-job": ("stratum", "--metrics", str(SAME_JOB_METRICS))}


def preload(bootstrap: str, batched: int, single: int) -> tuple[dict[int, int], dict[int, int]]:
    """Both topics, events stamped over the last 10 minutes (on time for the default
    5-minute lateness); returns the last offset per partition of each."""
    now = int(time.time() * 1000)
    events = synthetic_events(batched, now - 600_000, now, id_prefix="b")
    batched_last = asyncio.run(produce(bootstrap, BATCHED_TOPIC, pack(events, PARTITIONS, 500)))
    del events
    singles = synthetic_events(single, now - 600_000, now, seed=11, id_prefix="s")
    single_last = asyncio.run(produce(bootstrap, SINGLE_TOPIC, pack(singles, PARTITIONS, 1)))
    return batched_last, single_last


def run_role(
    role: str,
    bootstrap: str,
    topic: str,
    events: int,
    expect: dict[int, int],
    workdir: Path,
    profile: str | None = None,
) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{role}-", dir=workdir))
    result = run_child(
        "benchmarks.speed_roles",
        *PROCESS.get(role, (role,)),
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--events",
        str(events),
        "--expect",
        json.dumps(expect),
        "--workdir",
        str(run_dir),
        timeout_s=600,
        profile=profile,
    )
    dumped = run_dir / AGGREGATE_FILE
    if dumped.exists():
        result["aggregate"] = json.loads(dumped.read_bytes())
    done = "complete" if result.get("complete") else "INCOMPLETE"
    print(
        f"  {role:8s} {topic:14s} {result['rate']:>10,.0f} ev/s wall, "
        f"{result['rate_per_cpu_s']:>10,.0f} ev/CPU-s, join {result['join_s']:.1f} s, "
        f"{result['seconds']:.2f} s, rss {result['peak_rss_mib'] or 0:.0f} MiB, {done}"
        + (f", counted {result['counted']}" if "counted" in result else ""),
        flush=True,
    )
    busiest = list(result.get("thread_cpu_s", {}).items())[:6]
    if busiest:
        print(
            "           CPU-s by thread: " + ", ".join(f"{n} {s:.2f}" for n, s in busiest),
            flush=True,
        )
    return result


def measure(
    quick: bool,
    roles: tuple[str, ...] = ROLES,
    repeats: int | None = None,
    batched_n: int | None = None,
    profile: bool = False,
    single_n: int | None = None,
) -> list[Figure]:
    batched_n = batched_n or (300_000 if quick else 1_000_000)
    # Enough one-event messages that the rate is the worker's, not its 1 s flush cadence
    # (at 30 K, the first flush after the last event was most of the run).
    single_n = single_n or (300_000 if quick else 1_000_000)
    repeats = repeats or (1 if quick else 3)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="stratum-bench-speed-") as tmp:
        workdir = Path(tmp)
        with broker(workdir, topics=(BATCHED_TOPIC, SINGLE_TOPIC), partitions=PARTITIONS) as boot:
            started = time.perf_counter()
            batched_last, single_last = preload(boot, batched_n, single_n)
            print(
                f"  pre-loaded {batched_n:,} batched + {single_n:,} single events in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            plan = [(BATCHED_TOPIC, batched_n, batched_last), (SINGLE_TOPIC, single_n, single_last)]
            for repeat in range(repeats):
                for topic, n, last in plan:
                    for role in roles:
                        spy = (
                            f"speed-{role}-{topic.removeprefix('bench-')}"
                            if profile and repeat == 0
                            else None
                        )
                        runs.setdefault((role, topic), []).append(
                            run_role(role, boot, topic, n, last, workdir, spy)
                        )
    if roles != ROLES:
        return []  # a partial run (profiling, iterating): the lines above are the figures
    return figures(runs, batched_n, single_n)


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in runs])


def _pair(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Stratum and baseline of the repeat whose ratio is the median (runs alternate)."""
    return median_pair([r[key] for r in a], [r[key] for r in b])


def same_results(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two roles' aggregates (``benchmarks.speed_roles.dump_aggregate``) agree:
    the same groups, equal counts, latency sums equal up to float summation order."""
    left, right = a.get("aggregate"), b.get("aggregate")
    if left is None or right is None or left.keys() != right.keys():
        return False
    return all(
        left[k][0] == right[k][0]
        and math.isclose(left[k][1], right[k][1], rel_tol=1e-9, abs_tol=1e-6)
        for k in left
    )


def figures(
    runs: dict[tuple[str, str], list[dict[str, Any]]], batched_n: int, single_n: int
) -> list[Figure]:
    out = []
    checks = {}
    for topic in (BATCHED_TOPIC, SINGLE_TOPIC):
        pairs = zip(
            runs[("same-job", topic)], runs[("plain", topic)], runs[("faust", topic)], strict=True
        )
        checks[topic] = all(same_results(s, p) and same_results(p, f) for s, p, f in pairs)
        groups = len(runs[("plain", topic)][0].get("aggregate") or {})
        print(
            f"  {topic}: Stratum's stored windows {'equal' if checks[topic] else 'DIFFER FROM'}"
            f" the baselines' aggregates ({groups} minute x type x country groups)",
            flush=True,
        )

    def complete(role: str, topic: str, n: int) -> bool:
        return all(r.get("complete") and r.get("counted") == n for r in runs[(role, topic)])

    same_b, stratum_b = runs[("same-job", BATCHED_TOPIC)], runs[("stratum", BATCHED_TOPIC)]
    plain_b, faust_b = runs[("plain", BATCHED_TOPIC)], runs[("faust", BATCHED_TOPIC)]
    ok_b = complete("same-job", BATCHED_TOPIC, batched_n) and checks[BATCHED_TOPIC]
    note = (
        f"{batched_n:,} events, 500/message, {PARTITIONS} partitions, 1 worker; same job: "
        "count and latency sum per minute, type and country, results compared"
    )
    if not ok_b:
        note += "; INCOMPLETE run or results differ"
    cpu_s, cpu_p = _pair(same_b, plain_b, "rate_per_cpu_s")
    out.append(
        Figure(
            "speed",
            "events/s per worker, 500 events/message",
            "ev/s",
            *_pair(same_b, plain_b, "rate"),
            "plain aiokafka + orjson + dict",
            note=note,
        )
    )
    out.append(
        Figure(
            "speed",
            "events/CPU-s (per core), 500 events/message",
            "ev/CPU-s",
            cpu_s,
            cpu_p,
            "plain aiokafka + orjson + dict",
            target=">= 0.5x baseline",
            met=cpu_s >= 0.5 * cpu_p and ok_b,
            note=note,
        )
    )
    out.append(
        Figure(
            "speed",
            "events/s, 500 events/message, vs plain Faust",
            "ev/s",
            *_pair(same_b, faust_b, "rate"),
            "plain Faust agent, same job",
        )
    )
    shipped = "shipped catalog (4 metrics: count, sum, p95 sketch, distinct)"
    out.append(
        Figure(
            "speed",
            f"events/CPU-s, 500 events/message, {shipped}",
            "ev/CPU-s",
            *_pair(stratum_b, plain_b, "rate_per_cpu_s"),
            "plain aiokafka + orjson + dict (count and sum only)",
            note="" if complete("stratum", BATCHED_TOPIC, batched_n) else "INCOMPLETE run",
        )
    )
    same_s, stratum_s = runs[("same-job", SINGLE_TOPIC)], runs[("stratum", SINGLE_TOPIC)]
    faust_s, plain_s = runs[("faust", SINGLE_TOPIC)], runs[("plain", SINGLE_TOPIC)]
    ok_s = complete("same-job", SINGLE_TOPIC, single_n) and checks[SINGLE_TOPIC]
    single_s, single_f = _pair(same_s, faust_s, "rate")
    out.append(
        Figure(
            "speed",
            "events/s per worker, 1 event/message",
            "ev/s",
            single_s,
            single_f,
            "plain Faust agent, same job",
            target=">= 1.0x baseline",
            met=single_s >= single_f and ok_s,
            note=f"{single_n:,} events" + ("" if ok_s else "; INCOMPLETE or differ"),
        )
    )
    out.append(
        Figure(
            "speed",
            "events/CPU-s, 1 event/message",
            "ev/CPU-s",
            *_pair(same_s, faust_s, "rate_per_cpu_s"),
            "plain Faust agent, same job",
        )
    )
    out.append(
        Figure(
            "speed",
            f"events/s, 1 event/message, {shipped}",
            "ev/s",
            *_pair(stratum_s, faust_s, "rate"),
            "plain Faust agent (count and sum)",
        )
    )
    out.append(
        Figure(
            "speed",
            "events/s, 1 event/message, vs plain consumer",
            "ev/s",
            *_pair(same_s, plain_s, "rate"),
            "plain aiokafka + orjson + dict",
        )
    )
    out.append(
        Figure(
            "speed",
            "consumer-group join (start to first event)",
            "s",
            _med(same_b, "join_s"),
            _med(faust_b, "join_s"),
            "plain Faust agent",
        )
    )
    out.append(
        Figure(
            "speed",
            "worker peak RSS (1 M-event run)"
            if batched_n >= 1_000_000
            else f"worker peak RSS ({batched_n:,}-event run)",
            "MiB",
            _med(stratum_b, "peak_rss_mib"),
            _med(plain_b, "peak_rss_mib"),
            "plain aiokafka consumer",
            note=shipped,
        )
    )
    return out


def main() -> None:
    parser = bench_parser(__doc__ or "")
    parser.add_argument(
        "--roles",
        default=",".join(ROLES),
        help="comma-separated subset of stratum,plain,faust (no figures then)",
    )
    parser.add_argument("--repeats", type=int, help="runs of each role (default 3, quick 1)")
    parser.add_argument("--events", type=int, help="batched events (default 1 M, quick 300 K)")
    parser.add_argument("--singles", type=int, help="one-event messages (default 1 M, quick 300 K)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy Stratum's first runs into benchmarks/profiles/",
    )
    args = parser.parse_args()
    roles = tuple(r for r in args.roles.split(",") if r)
    emit(
        measure(args.quick, roles, args.repeats, args.events, args.profile, args.singles), args.emit
    )


if __name__ == "__main__":
    main()
