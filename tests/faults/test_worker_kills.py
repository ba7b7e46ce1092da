"""SIGKILL the worker again and again during a steady stream, restart it each time, and
check the speed layer's windows against a plain-Python count of the same events:
nothing lost, nothing counted twice.

The worker is a real ``stratum worker`` process (it must own its chDB engine, and it
must die without flushing, committing or leaving its consumer group); events go straight
to the topic the way ingest packs them; the windows are read after the last run by a
short child process that opens the worker's chDB path.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stratum.producer import pack
from tests.processes import (
    StratumProcess,
    committed_offsets,
    query_chdb,
    running_broker,
    stratum_env,
    wait_for_log,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PARTITIONS = 4
GROUP = "stratum-speed"
TOPIC = "events"
MINUTE = 60_000
STREAM_S = 36.0
TICK_S = 0.05
EVENTS_PER_TICK = 40
MAX_KILLS = 6
COUNTRIES = ("DE", "FR", "US", "JP", "BR")
METRICS = """
[[metric]]
name = "events"
aggregation = "count"
dimensions = ["type", "country"]
windows = ["1m"]

[[metric]]
name = "revenue"
aggregation = "sum"
field = "amount"
where = { type = "purchase" }
dimensions = ["country"]
windows = ["1m"]
"""

RESUMED = re.compile(r"partition (\d+) resumed after offset (\d+)")
Key = tuple[str, int, tuple[tuple[str, str], ...]]


def _event(i: int, t0: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"kill-{i}",
        "ts": t0 + i * 17,
        "type": "purchase" if i % 5 == 0 else "page_view",
        "country": COUNTRIES[(i * 7) % len(COUNTRIES)],
    }
    if event["type"] == "purchase":
        event["amount"] = float(i % 40 + 1)  # whole numbers: float sums are exact
    return event


class SteadyStream:
    """Produces ``EVENTS_PER_TICK`` events every ``TICK_S`` for ``STREAM_S`` seconds in
    a background thread, packed as ingest packs them; remembers every event and the
    last offset acknowledged per partition."""

    def __init__(self, bootstrap: str, t0: int) -> None:
        self.bootstrap = bootstrap
        self.t0 = t0
        self.events: list[dict[str, Any]] = []
        self.last_offset: dict[int, int] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.done.set()

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=2)
        await producer.start()
        try:
            deadline = time.monotonic() + STREAM_S
            while time.monotonic() < deadline:
                first = len(self.events)
                chunk = [_event(i, self.t0) for i in range(first, first + EVENTS_PER_TICK)]
                sent = [
                    await producer.send(TOPIC, value, partition=partition)
                    for partition, value in pack(chunk, PARTITIONS, 500)
                ]
                for meta in await asyncio.gather(*sent):
                    self.last_offset[meta.partition] = max(
                        meta.offset, self.last_offset.get(meta.partition, -1)
                    )
                self.events.extend(chunk)
                await asyncio.sleep(TICK_S)
        finally:
            await producer.stop()


def _expected(events: list[dict[str, Any]]) -> tuple[Counter[Key], dict[Key, float]]:
    """The independent computation: plain loops over the events that were produced."""
    counts: Counter[Key] = Counter()
    sums: defaultdict[Key, float] = defaultdict(float)
    for e in events:
        window = e["ts"] - e["ts"] % MINUTE
        counts[("events", window, (("country", e["country"]), ("type", e["type"])))] += 1
        if e["type"] == "purchase":
            key: Key = ("revenue", window, (("country", e["country"]),))
            counts[key] += 1
            sums[key] += e["amount"]
    return counts, dict(sums)


def _stored(chdb_path: Path) -> tuple[Counter[Key], dict[Key, float]]:
    rows = query_chdb(
        chdb_path,
        """
        SELECT metric, toUnixTimestamp64Milli(window_start) AS w,
               any(mapKeys(dims)) AS k, any(mapValues(dims)) AS v,
               sum(count) AS c, sum(sum) AS s
        FROM stratum.speed_windows FINAL
        WHERE generation = 0
        GROUP BY metric, w, group_key""",
    )
    counts: Counter[Key] = Counter()
    sums: dict[Key, float] = {}
    for metric, window, names, values, count, total in rows:
        key: Key = (metric, int(window), tuple(sorted(zip(names, values, strict=True))))
        counts[key] += int(count)
        if metric == "revenue":
            sums[key] = float(total)
    return counts, sums


async def _caught_up(bootstrap: str, last_offset: dict[int, int]) -> bool:
    committed = await committed_offsets(bootstrap, GROUP, TOPIC, PARTITIONS)
    return all(committed.get(p, 0) > offset for p, offset in last_offset.items())


def test_sigkilled_worker_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, figures: Any
) -> None:
    rng = random.Random(8)  # noqa: S311 - kill timing, not security
    workdir = tmp_path / "worker"
    workdir.mkdir()
    (workdir / "metrics.toml").write_text(METRICS)
    now = int(time.time() * 1000)
    t0 = now - 15 * MINUTE  # ~10 minutes of event time: windows close as the stream runs

    with running_broker(tmp_path / "broker", partitions=PARTITIONS) as broker:
        env = stratum_env(
            workdir,
            STRATUM_KAFKA__URL=broker.bootstrap,
            STRATUM_KAFKA__PARTITIONS=str(PARTITIONS),
            STRATUM_CLICKHOUSE__URL=f"chdb://{workdir / 'clickhouse'}",
            STRATUM_DATA_DIR=str(workdir),
            STRATUM_METRICS_FILE=str(workdir / "metrics.toml"),
            STRATUM_SPEED__FLUSH_INTERVAL_S="0.3",
            STRATUM_SPEED__ALLOWED_LATENESS_MS="120000",
            STRATUM_ARCHIVE__FLUSH_INTERVAL_S="0.5",
        )
        worker = StratumProcess("worker", env, workdir)
        stream = SteadyStream(broker.bootstrap, t0)
        kills: list[dict[str, Any]] = []
        try:
            worker.start()
            stream.start()
            while not stream.done.is_set() and len(kills) < MAX_KILLS:
                # Kill only once this run is really working: after a restart it logs the
                # checkpoint it resumes from; the first run gets its first commits.
                if worker.runs == 1:
                    deadline = time.monotonic() + 40
                    while time.monotonic() < deadline and not asyncio.run(
                        committed_offsets(broker.bootstrap, GROUP, TOPIC, PARTITIONS)
                    ):
                        time.sleep(0.3)
                else:
                    assert wait_for_log(worker, "resumed after offset", 40), worker.log()[-3000:]
                time.sleep(rng.uniform(0.3, 2.0))
                if stream.done.is_set():
                    break
                worker.kill()
                committed = asyncio.run(
                    committed_offsets(broker.bootstrap, GROUP, TOPIC, PARTITIONS)
                )
                kills.append({"committed": committed, "log": worker.log_path})
                worker.start()
            assert stream.done.wait(STREAM_S + 30)
            assert stream.error is None, stream.error

            deadline = time.monotonic() + 90
            while not asyncio.run(_caught_up(broker.bootstrap, stream.last_offset)):
                assert worker.running, worker.log()[-3000:]
                assert time.monotonic() < deadline, "the last worker run did not catch up"
                time.sleep(0.5)
            assert worker.stop() == 0, worker.log()[-3000:]
        finally:
            if worker.running:
                worker.kill()

    # Messages the next run got again because they were stored but not yet committed:
    # the ones the resume logic had to skip for the counts to come out right.
    redelivered = 0
    for kill, run in zip(kills, range(2, len(kills) + 2), strict=True):
        text = (workdir / f"worker-{run}.log").read_text(errors="replace")
        for partition, through in RESUMED.findall(text):
            redelivered += max(0, int(through) + 1 - kill["committed"].get(int(partition), 0))
    commits = [sum(k["committed"].values()) for k in kills]

    expected_counts, expected_sums = _expected(stream.events)
    got_counts, got_sums = _stored(workdir / "clickhouse")
    keys = set(expected_counts) | set(got_counts)
    lost = sum(max(0, expected_counts[k] - got_counts[k]) for k in keys)
    duplicated = sum(max(0, got_counts[k] - expected_counts[k]) for k in keys)
    events_checked = sum(v for k, v in expected_counts.items() if k[0] == "events")
    figures(
        "worker kills",
        f"kills survived={len(kills)} events checked={events_checked} "
        f"windows={len(keys)} lost={lost} duplicated={duplicated} "
        f"redelivered messages skipped={redelivered} (commits at each kill: {commits})",
    )

    assert len(kills) >= 3, "the stream ended before the worker was killed three times"
    assert commits == sorted(commits) and commits[-1] > 0
    assert redelivered > 0, "no kill left stored-but-uncommitted messages to re-deliver"
    wrong = sorted(
        (k, expected_counts[k], got_counts[k]) for k in keys if expected_counts[k] != got_counts[k]
    )
    assert lost == 0 and duplicated == 0, (wrong[:10], workdir)
    assert got_counts == expected_counts
    assert got_sums == expected_sums
