"""Bring-your-own topics: a Stratum stack against a Kafka it did not start (a tansu broker
the test starts), reading two topics the test created with its own partition counts:
one JSON event per message (``clicks``, 2 partitions) and Debezium change events
(``orders``, 3 partitions: inserts, updates, deletes, snapshot reads, a schema change,
garbage). Served values must equal the test's own computation of the same events before
and after batch and after a Kappa replay; unmappable messages are dead-lettered with
source, partition, offset and reason. A source added to the definitions of a running
Stratum (``stratum definitions import``) is served after a restart with the whole history
its topic already held."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner

from stratum.app.cli import main
from stratum.broker import EmbeddedBroker
from stratum.settings import Settings
from stratum.storage import open_storage
from tests.conftest import free_port
from tests.processes import running_broker
from tests.stack import Stack, stack_settings, wait_until

MINUTE = 60_000
METRICS = """
[[metric]]
name = "events"
aggregation = "count"
windows = ["1m"]

[[source]]
name = "orders"
topic = "shop.orders"
format = "debezium"
ts = "@ts_ms"
deletes = "event"
fields = { country = "customer.country", amount = "total.amount" }

[[source]]
name = "clicks"
topic = "app.clicks"
format = "json"
event_id = "id"
ts = "at"
ts_unit = "s"
type = "click"
fields = { page = "ctx.page", ms = "timing.ms" }

[[metric]]
name = "order_revenue"
source = "orders"
aggregation = "sum"
field = "amount"
where = { op = ["c", "u", "r"] }
dimensions = ["country"]
windows = ["1m", "1h"]

[[metric]]
name = "order_deletes"
source = "orders"
aggregation = "count"
where = { op = "d" }
windows = ["1m"]

[[metric]]
name = "click_ms"
source = "clicks"
aggregation = "sum"
field = "ms"
dimensions = ["page"]
windows = ["1m"]
"""


def _envelope(
    op: str, ts_ms: int, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> bytes:
    return orjson.dumps(
        {
            "schema": {"type": "struct"},
            "payload": {
                "op": op,
                "ts_ms": ts_ms,
                "before": before,
                "after": after,
                "source": {"connector": "postgresql", "table": "orders"},
            },
        }
    )


def _order(order_id: int, country: str, amount: float) -> dict[str, Any]:
    return {"id": order_id, "customer": {"country": country}, "total": {"amount": amount}}


class Feed:
    """What the test writes, per topic partition in order, and what it expects."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.messages: list[tuple[str, int, bytes]] = []
        self.revenue: dict[str, float] = defaultdict(float)
        self.deletes = 0
        self.click_ms: dict[str, float] = defaultdict(float)
        self.bad: list[tuple[str, int, int, str]] = []  # topic, partition, index, reason part

    def add(self, topic: str, partition: int, value: bytes, bad: str | None = None) -> None:
        if bad is not None:
            index = sum(1 for t, p, _ in self.messages if (t, p) == (topic, partition))
            self.bad.append((topic, partition, index, bad))
        self.messages.append((topic, partition, value))

    def build(self) -> None:
        for i in range(90):  # orders: each partition's change events in time order
            partition, ts = i % 3, self.t0 + i * 10_000
            country = ("DE", "FR", "US")[i % 3]
            row = _order(i, country, 10.0 + i)
            op = "r" if i < 9 else "c"
            self.add("shop.orders", partition, _envelope(op, ts, None, row))
            self.revenue[country] += 10.0 + i
            if i % 10 == 5:  # an update of the same order: its after-image counts too
                updated = _order(i, country, 1.5)
                self.add("shop.orders", partition, _envelope("u", ts + 1, row, updated))
                self.revenue[country] += 1.5
            if i % 15 == 7:
                self.add("shop.orders", partition, _envelope("d", ts + 2, row, None))
                self.deletes += 1
        self.add(
            "shop.orders",
            0,
            orjson.dumps(
                {
                    "schema": {},
                    "payload": {
                        "databaseName": "shop",
                        "ddl": "ALTER TABLE orders ADD COLUMN note text",
                    },
                }
            ),
        )
        self.add("shop.orders", 1, b"\x00garbage", bad="not JSON")
        self.add(
            "shop.orders",
            2,
            orjson.dumps({"payload": {"op": "c", "ts_ms": None, "after": _order(999, "DE", 5.0)}}),
            bad="no time",
        )
        self.add(
            "shop.orders",
            0,
            _envelope(
                "c",
                self.t0 + 900_000,
                None,
                {"id": 1000, "customer": {"country": "DE"}, "total": {"amount": "NaN"}},
            ),
            bad="not finite",
        )
        for i in range(60):  # clicks: one JSON event per message, time in seconds
            partition, ts = i % 2, self.t0 + i * 15_000
            page = ("/", "/cart")[i % 2]
            self.add(
                "app.clicks",
                partition,
                orjson.dumps(
                    {"id": f"c{i}", "at": ts / 1000, "ctx": {"page": page}, "timing": {"ms": i}}
                ),
            )
            self.click_ms[page] += i
        self.add("app.clicks", 1, orjson.dumps({"at": self.t0 / 1000, "ctx": {}}), bad="no id")
        self.add(
            "app.clicks",
            0,
            orjson.dumps({"id": "x", "at": self.t0 / 1000, "timing": {"ms": [1]}}),
            bad="array",
        )


async def _create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create the topics a producer outside Stratum owns: name -> partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"retention.ms": str(7 * 86_400_000), "cleanup.policy": "delete"}
        await admin.create_topics(
            [
                NewTopic(topic, num_partitions=n, replication_factor=1, topic_configs=configs)
                for topic, n in partitions.items()
            ]
        )
    finally:
        await admin.close()


async def _produce(bootstrap: str, messages: list[tuple[str, int, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, partition, value in messages:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def _dead_letters(bootstrap: str, topic: str, wanted: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [orjson.loads(r.value) for r in records]
            if len([f for f in found if f.get("source") != "events"]) >= wanted:
                break
    finally:
        await consumer.stop()
    return [f for f in found if f.get("source") in ("orders", "clicks")]


def _settings_on(
    session_dir: Path, clickhouse_url: str, name: str, bootstrap: str, metrics_file: Path
) -> Settings:
    """A stack's settings (own database and data dir) on a broker the test started."""
    settings = stack_settings(session_dir, name, clickhouse_url, free_port())
    return settings.model_copy(
        update={
            "metrics_file": metrics_file,
            "kafka": settings.kafka.model_copy(update={"url": bootstrap}),
        }
    )


@pytest.fixture(scope="module")
def world(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Stack, str, Feed]]:
    broker = EmbeddedBroker(session_dir / "sources-broker")
    (session_dir / "sources-broker").mkdir(exist_ok=True)
    broker.start()
    asyncio.run(_create_topics(broker.bootstrap, {"shop.orders": 3, "app.clicks": 2}))
    metrics_file = session_dir / "sources-metrics.toml"
    metrics_file.write_text(METRICS)
    settings = _settings_on(session_dir, clickhouse_url, "sources", broker.bootstrap, metrics_file)
    stack = Stack(settings, dashboard=False)
    try:
        stack.start()
        t0 = int(time.time() * 1000) - 3 * 3_600_000
        feed = Feed(t0 - t0 % 3_600_000)
        feed.build()
        asyncio.run(_produce(broker.bootstrap, feed.messages))
        yield stack, broker.bootstrap, feed
    finally:
        stack.stop()
        broker.stop()


def _totals(
    stack: Stack, metric: str, dimension: str | None, span: tuple[int, int]
) -> dict[str, float]:
    response = stack.client.get(
        f"/v1/metrics/{metric}",
        params={"start": span[0], "end": span[1], **({"group_by": dimension} if dimension else {})},
    )
    response.raise_for_status()
    return {
        (s["group"] or {}).get(dimension or "", ""): round(
            sum(p["value"] or 0 for p in s["points"]), 6
        )
        for s in response.json()["series"]
    }


def _served(stack: Stack, feed: Feed) -> tuple[dict[str, float], ...]:
    span = (feed.t0, feed.t0 + 2 * 3_600_000)
    return (
        _totals(stack, "order_revenue", "country", span),
        _totals(stack, "order_deletes", None, span),
        _totals(stack, "click_ms", "page", span),
    )


def _expected(feed: Feed) -> tuple[dict[str, float], ...]:
    return (
        {k: round(v, 6) for k, v in feed.revenue.items()},
        {"": float(feed.deletes)},
        {k: round(v, 6) for k, v in feed.click_ms.items()},
    )


def test_sources_served_like_the_builtin_topic(world: tuple[Stack, str, Feed]) -> None:
    stack, bootstrap, feed = world
    expected = _expected(feed)
    wait_until(lambda: _served(stack, feed) == expected, 60, f"speed-layer values {expected}")

    letters = asyncio.run(
        _dead_letters(bootstrap, stack.settings.kafka.dead_letter_topic, len(feed.bad))
    )
    got = sorted((d["topic"], d["partition"], d["source"]) for d in letters)
    assert got == sorted(
        (t, p, "orders" if t == "shop.orders" else "clicks") for t, p, _, _ in feed.bad
    )
    reasons = " | ".join(d["reason"] for d in letters)
    for _, _, _, part in feed.bad:
        assert part in reasons, reasons
    assert all(isinstance(d["offset"], int) for d in letters)

    # per-partition progress of every source, with the partition counts of its topic
    parts = stack.client.get("/v1/pipeline").json()["partitions"]
    assert sorted((p["source"], p["partition"]) for p in parts if p["source"] != "events") == [
        ("clicks", 0),
        ("clicks", 1),
        ("orders", 0),
        ("orders", 1),
        ("orders", 2),
    ]
    assert all(
        p["source_id"] == f"src.{p['source']}:{p['partition']}"
        for p in parts
        if p["source"] != "events"
    )

    # archived per source: its own directory, its name in the file names
    root = stack.settings.data_dir / "archive"
    for source in ("orders", "clicks"):
        wait_until(
            lambda s=source: list((root / s).glob("date=*/hour=*/" + s + "-p*.parquet")),
            30,
            f"archive files of {source}",
        )
    stack.run_batch()
    assert _served(stack, feed) == expected
    sources = {
        p["source"]
        for s in stack.client.get(
            "/v1/metrics/order_revenue", params={"start": feed.t0, "end": feed.t0 + 3_600_000}
        ).json()["series"]
        for p in s["points"]
    }
    assert "batch" in sources, sources

    response = stack.client.post("/v1/admin/replay", headers=stack.admin_headers, json={})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job = stack.client.get(f"/v1/admin/jobs/{job_id}", headers=stack.admin_headers).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(finished, 90, f"replay job {job_id}")
    assert job["state"] == "succeeded", job
    assert _served(stack, feed) == expected


BEFORE_SOURCE = """
[[metric]]
name = "events"
aggregation = "count"
windows = ["1m"]
"""
WITH_SOURCE = (
    BEFORE_SOURCE
    + """
[[source]]
name = "visits"
topic = "web.visits"
format = "json"
event_id = "id"
ts = "at"
fields = { country = "geo.country", secs = "duration" }

[[metric]]
name = "visit_seconds"
source = "visits"
aggregation = "sum"
field = "secs"
dimensions = ["country"]
windows = ["1m"]
"""
)


def _visit(t0: int, i: int) -> dict[str, Any]:
    """Event i of ``web.visits``: later events have later times, so each partition is in
    time order and nothing produced after the restart is late."""
    return {
        "id": f"v{i}",
        "at": t0 + i * 20_000,
        "geo": {"country": ("DE", "FR", "US")[i % 3]},
        "duration": i % 7 + 0.5,
    }


def _visit_messages(visits: list[dict[str, Any]]) -> list[tuple[str, int, bytes]]:
    return [("web.visits", int(v["id"][1:]) % 2, orjson.dumps(v)) for v in visits]


def _visit_seconds(visits: list[dict[str, Any]]) -> dict[str, float]:
    """The test's own visit_seconds by country, from the events themselves."""
    sums: dict[str, float] = defaultdict(float)
    for visit in visits:
        sums[visit["geo"]["country"]] += visit["duration"]
    return {k: round(v, 6) for k, v in sums.items()}


def _hours_ago(hours: int) -> int:
    t0 = int(time.time() * 1000) - hours * 3_600_000
    return t0 - t0 % 3_600_000


def test_a_source_added_to_the_definitions_is_served_with_its_history_after_a_restart(
    session_dir: Path, clickhouse_url: str
) -> None:
    """Issue 18: a topic already holding events, Stratum first run without it; the
    definitions gain it as a user adds it (``stratum definitions import``), then a restart:
    the served metric covers everything in the topic from its first offset, and what
    arrives after the restart."""
    t0 = _hours_ago(3)
    visits = [_visit(t0, i) for i in range(90)]
    history, unread, after_restart = visits[:40], visits[40:60], visits[60:]
    span = (t0, t0 + 2 * 3_600_000)

    with running_broker(session_dir / "restart-broker") as broker:
        asyncio.run(_create_topics(broker.bootstrap, {"web.visits": 2}))
        asyncio.run(_produce(broker.bootstrap, _visit_messages(history)))
        metrics_file = session_dir / "restart-metrics.toml"
        metrics_file.write_text(BEFORE_SOURCE)
        settings = _settings_on(
            session_dir, clickhouse_url, "restart", broker.bootstrap, metrics_file
        )

        first = Stack(settings, dashboard=False)
        try:
            first.start()
            # the topic grows while Stratum runs without reading it
            asyncio.run(_produce(broker.bootstrap, _visit_messages(unread)))
            metrics_file.write_text(WITH_SOURCE)  # the file alone would not count: import it
            result = CliRunner().invoke(
                main,
                ["definitions", "import", str(metrics_file), "--url", first.base_url]
                + ["--token", first.settings.api.admin_token, "--reason", "visits source"],
            )
            assert result.exit_code == 0, result.output
            assert result.output.startswith("version 2: added visit_seconds"), result.output
            # not live: the answer, the definitions job and the health say a restart is due
            notice = "source 'visits' (topic 'web.visits') is read after the workers restart"
            assert f"restart needed: {notice}" in result.output, result.output
            job_id = next(
                line.split()[2]
                for line in result.output.splitlines()
                if line.strip().startswith("definitions job")
            )
            job = first.client.get(f"/v1/admin/jobs/{job_id}", headers=first.admin_headers).json()
            assert job["params"]["restart_needed"] == [notice], job
            unread = (
                "source 'visits' (topic 'web.visits') defined but not read: restart the workers"
            )
            worker = wait_until(
                lambda: _worker_if(first, "degraded"), 30, "the worker to say a restart is due"
            )
            assert worker["detail"].startswith(unread), worker
        finally:
            first.stop()

        second = Stack(settings, dashboard=False)
        try:
            second.start()
            asyncio.run(_produce(broker.bootstrap, _visit_messages(after_restart)))
            want = _visit_seconds(visits)
            wait_until(
                lambda: _totals(second, "visit_seconds", "country", span) == want,
                60,
                f"visit_seconds {want} (all {len(visits)} events of the topic)",
            )
            parts = second.client.get("/v1/pipeline").json()["partitions"]
            assert sorted(
                (p["partition"], p["through_offset"]) for p in parts if p["source"] == "visits"
            ) == [(0, len(visits) // 2 - 1), (1, len(visits) // 2 - 1)]
        finally:
            second.stop()


def _worker_if(stack: Stack, status: str) -> dict[str, str] | None:
    """The worker's health, if its status is ``status``."""
    worker: dict[str, str] = stack.client.get("/v1/health").json()["components"]["worker"]
    return worker if worker["status"] == status else None


def test_a_source_workers_failing_flushes_show_in_health_until_they_recover(
    session_dir: Path, clickhouse_url: str
) -> None:
    """A source's worker whose ClickHouse writes fail (a real refusal: a CHECK constraint
    on speed_windows rejecting that source's rows, so the built-in worker writes on) turns
    the worker ``down`` in /v1/health with the source named, and ``ok`` once the writes
    work again, with every event counted."""
    t0 = _hours_ago(2)
    visits = [_visit(t0, i) for i in range(40)]
    span = (t0, t0 + 3_600_000)
    with running_broker(session_dir / "srcfail-broker") as broker:
        asyncio.run(_create_topics(broker.bootstrap, {"web.visits": 2}))
        metrics_file = session_dir / "srcfail-metrics.toml"
        metrics_file.write_text(WITH_SOURCE)
        settings = _settings_on(
            session_dir, clickhouse_url, "srcfail", broker.bootstrap, metrics_file
        )
        stack = Stack(settings, dashboard=False)
        storage = open_storage(settings)
        table = f"{settings.clickhouse.database}.speed_windows"
        try:
            stack.start()
            asyncio.run(_produce(broker.bootstrap, _visit_messages(visits[:20])))
            want = _visit_seconds(visits[:20])
            wait_until(
                lambda: _totals(stack, "visit_seconds", "country", span) == want,
                60,
                f"visit_seconds {want}",
            )
            storage.command(
                f"ALTER TABLE {table} ADD CONSTRAINT refuse_visits "
                "CHECK NOT startsWith(source_id, 'src.visits')"
            )
            asyncio.run(_produce(broker.bootstrap, _visit_messages(visits[20:])))
            worker = wait_until(
                lambda: _worker_if(stack, "down"), 30, "the worker down for the source"
            )
            assert worker["detail"].startswith("source 'visits': flush failing: "), worker
            assert "refuse_visits" in worker["detail"], worker
            assert stack.client.get("/v1/health").json()["status"] == "down"
            # the built-in worker goes on meanwhile
            stack.post_events([{"event_id": "srcfail-1", "ts": t0, "type": "x"}])
            assert _totals(stack, "visit_seconds", "country", span) == want

            storage.command(f"ALTER TABLE {table} DROP CONSTRAINT refuse_visits")
            wait_until(lambda: _worker_if(stack, "ok"), 60, "the worker ok again")
            want = _visit_seconds(visits)
            wait_until(
                lambda: _totals(stack, "visit_seconds", "country", span) == want,
                30,
                f"visit_seconds {want} after the retried flush",
            )
        finally:
            storage.command(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS refuse_visits")
            storage.close()
            stack.stop()


async def _topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_a_source_whose_topic_is_missing_is_reported_and_never_created(
    session_dir: Path, clickhouse_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stratum never creates a source's topic. One missing at start is left unread (the
    embedded broker auto-creates a topic a consumer subscribes to), logged as an error and
    reported by the worker's health, while the rest runs; the fix the message gives
    (create the topic, restart) then works."""
    t0 = _hours_ago(2)
    visits = [_visit(t0, i) for i in range(12)]
    span = (t0, t0 + 3_600_000)
    with running_broker(session_dir / "missing-broker") as broker:
        metrics_file = session_dir / "missing-metrics.toml"
        metrics_file.write_text(WITH_SOURCE)
        settings = _settings_on(
            session_dir, clickhouse_url, "missing", broker.bootstrap, metrics_file
        )

        first = Stack(settings, dashboard=False)
        try:
            with caplog.at_level(logging.ERROR, logger="stratum.app.roles"):
                # owns the built-in topic's partitions (ingest and speed work), degraded
                first.start(worker_status="degraded")
            worker = first.client.get("/v1/health").json()["components"]["worker"]
            assert worker["detail"].startswith(
                "source 'visits': topic 'web.visits' does not exist"
            ), worker
            assert "its metrics (visit_seconds) are not computed" in worker["detail"]
            assert "then restart the worker" in worker["detail"]
            logged = [
                r.getMessage()
                for r in caplog.records
                if r.name == "stratum.app.roles" and r.levelno == logging.ERROR
            ]
            assert len(logged) == 1 and worker["detail"].startswith(logged[0] + "; "), logged
            # the group has joined and subscribed: the topic is still not there
            assert "web.visits" not in asyncio.run(_topic_names(broker.bootstrap))
            assert _totals(first, "visit_seconds", "country", span) == {}
        finally:
            first.stop()

        asyncio.run(_create_topics(broker.bootstrap, {"web.visits": 2}))
        asyncio.run(_produce(broker.bootstrap, _visit_messages(visits)))
        second = Stack(settings, dashboard=False)
        try:
            second.start()  # the worker is "ok" again
            want = _visit_seconds(visits)
            wait_until(
                lambda: _totals(second, "visit_seconds", "country", span) == want,
                60,
                f"visit_seconds {want} once the topic exists",
            )
        finally:
            second.stop()
