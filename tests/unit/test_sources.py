"""The mapping of ``[[source]]`` messages to events, and the catalog's validation of
sources: dotted paths, time units, ids from offsets, Debezium ops, and messages that say
which source is wrong and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from stratum.archive import file_name, parse_file_name
from stratum.metrics import MetricDefinitionError, parse_catalog
from stratum.sources import SourceDefinition, SourceMapper, is_source_log, source_of_id
from stratum.topics import source_topic_problems

NOW = 1_800_000_000_000
METRIC = {"name": "m", "aggregation": "count"}


def _decode(
    source: dict[str, Any], *values: Any, partition: int = 2, kafka_ms: int = NOW - 5
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    mapper = SourceMapper(SourceDefinition.model_validate({"name": "s", "topic": "t.x", **source}))
    messages = [
        (10 + i, v if isinstance(v, bytes) or v is None else orjson.dumps(v), kafka_ms)
        for i, v in enumerate(values)
    ]
    decoded = mapper.decode(partition, messages, now_ms=NOW)
    return decoded.frame.to_dicts(), [(b.message, b.reason) for b in decoded.bad]


def test_dotted_paths_constant_type_and_units() -> None:
    rows, bad = _decode(
        {
            "event_id": "order.id",
            "ts": "meta.at",
            "ts_unit": "s",
            "type": "order",
            "fields": {"country": "customer.country", "amount": "total.amount", "vip": "vip"},
        },
        {
            "order": {"id": 7},
            "meta": {"at": NOW // 1000},
            "customer": {"country": "DE"},
            "total": {"amount": 12.5},
            "vip": True,
            "ignored": {"deep": 1},
        },
    )
    assert bad == []
    assert rows == [
        {
            "offset": 10,
            "event_id": "7",
            "ts": NOW,
            "type": "order",
            "amount": 12.5,
            "country": "DE",
            "vip": "true",
        }
    ]


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("s", NOW / 1000),
        ("ms", NOW),
        ("us", NOW * 1000),
        ("ns", NOW * 1_000_000),
        ("ms", str(NOW)),
        ("iso", "2027-01-15T08:00:00Z"),
        ("iso", "2027-01-15T09:00:00+01:00"),
    ],
)
def test_time_units(unit: str, value: Any) -> None:
    rows, bad = _decode({"ts": "t", "ts_unit": unit}, {"t": value})
    assert bad == []
    assert rows[0]["ts"] == NOW


def test_ids_from_offsets_and_kafka_time() -> None:
    rows, _ = _decode({"ts": "kafka"}, {"a": 1}, {"a": 2}, partition=3)
    assert [r["event_id"] for r in rows] == ["t.x/3/10", "t.x/3/11"]
    assert {r["ts"] for r in rows} == {NOW - 5}
    assert {r["type"] for r in rows} == {"s"}  # no type: the source's name
    lines, _ = _decode({"format": "ndjson", "ts": "kafka"}, b'{"a":1}\n{"a":2}')
    assert [r["event_id"] for r in lines] == ["t.x/2/10", "t.x/2/10/1"]


def test_unmappable_messages_say_why() -> None:
    rows, bad = _decode(
        {"event_id": "id", "ts": "t", "fields": {"v": "v"}},
        b"not json",
        {"t": NOW},
        {"id": "a"},
        {"id": "b", "t": "soon"},
        {"id": "c", "t": NOW, "v": {"x": 1}},
        {"id": "d", "t": NOW, "v": "inf"},
        [1, 2],
        {"id": "ok", "t": NOW, "v": 1},
    )
    assert [r["event_id"] for r in rows] == ["ok"]
    reasons = dict(bad)
    assert reasons[0].startswith("not JSON")
    assert reasons[1].startswith("no id")
    assert reasons[2].startswith("no time")
    assert "not a number" in reasons[3]
    assert "got an object" in reasons[4]
    assert "not finite" in reasons[5]
    assert "expected a JSON object" in reasons[6]


def _change(op: str, before: Any = None, after: Any = None, **payload: Any) -> dict[str, Any]:
    return {
        "schema": {"type": "struct"},
        "payload": {"op": op, "ts_ms": NOW, "before": before, "after": after, **payload},
    }


@pytest.mark.parametrize("deletes", ["skip", "event"])
def test_debezium_ops(deletes: str) -> None:
    source = {
        "format": "debezium",
        "event_id": "@source.lsn",
        "ts": "@ts_ms",
        "deletes": deletes,
        "fields": {"amount": "amount"},
    }
    rows, bad = _decode(
        source,
        _change("c", after={"amount": 1}, source={"lsn": 1}),
        _change("u", before={"amount": 1}, after={"amount": 2}, source={"lsn": 2}),
        _change("r", after={"amount": 3}, source={"lsn": 3}),
        _change("d", before={"amount": 4}, source={"lsn": 4}),
        {"payload": {"databaseName": "shop", "ddl": "ALTER TABLE x ADD y int"}},  # schema
        None,  # tombstone
        {"op": "c", "ts_ms": NOW, "after": {"amount": 5}, "source": {"lsn": 5}},  # bare
        _change("x", after={}),
        _change("c", after=None),
        {"payload": {"after": {}}},
    )
    expected = [("1", "c", 1.0), ("2", "u", 2.0), ("3", "r", 3.0), ("5", "c", 5.0)]
    if deletes == "event":
        expected.insert(3, ("4", "d", 4.0))
    assert [(r["event_id"], r["op"], r["amount"]) for r in rows] == expected
    assert bad == [
        (7, "unknown Debezium op 'x'"),
        (8, "op 'c' without its 'after' row image"),
        (9, "not a Debezium change event: no op"),
    ]


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(MetricDefinitionError) as info:
        parse_catalog(data)
    return str(info.value)


def test_catalog_sources_and_their_metrics() -> None:
    catalog = parse_catalog(
        {
            "source": [
                {"name": "orders", "topic": "shop.orders", "format": "debezium", "ts": "@ts_ms"}
            ],
            "metric": [METRIC, {**METRIC, "name": "o", "source": "orders"}],
        }
    )
    assert catalog.source_names == ["events", "orders"]
    assert catalog.for_source("orders").names == ["o"]
    assert catalog.for_source("events").names == ["m"]
    assert catalog.source("orders") is not None
    assert parse_catalog({"metric": [METRIC]}).metrics[0].source == "events"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"name": "Orders", "topic": "t", "ts": "kafka"},
            "source 'Orders': name: String should match",
        ),
        ({"name": "events", "topic": "t", "ts": "kafka"}, "'events' is the built-in source"),
        ({"name": "o", "topic": "t"}, "source 'o': definition: needs ts ="),
        ({"name": "o", "topic": "t", "ts": "a..b"}, "ts: 'a..b' is not a dotted path"),
        ({"name": "o", "topic": "t", "ts": "kafka", "format": "avro"}, "source 'o': format:"),
        ({"name": "o", "topic": "t", "ts": "kafka", "ts_unit": "min"}, "source 'o': ts_unit:"),
        (
            {"name": "o", "topic": "t", "ts": "kafka", "fields": {"ts": "x"}},
            "field 'ts' is reserved",
        ),
        (
            {"name": "o", "topic": "t", "ts": "kafka", "deletes": "event"},
            'deletes applies to format "debezium" only',
        ),
        ({"name": "o", "topic": "t", "ts": "@ts_ms"}, "envelope paths (@...)"),
        ({"name": "o", "topic": "t", "format": "stratum", "ts": "x"}, "takes no event_id, ts"),
        ({"name": "o", "topic": "t", "ts": "kafka", "colour": "red"}, "source 'o': colour: Extra"),
    ],
)
def test_source_validation_names_source_and_problem(source: dict[str, Any], message: str) -> None:
    assert message in _problems({"source": [source], "metric": [METRIC]})


def test_catalog_cross_checks() -> None:
    twice = {"name": "o", "topic": "t", "ts": "kafka"}
    assert "source 'o': duplicate name" in _problems({"source": [twice, twice], "metric": [METRIC]})
    assert "topic 't' is read by another source" in _problems(
        {"source": [twice, {**twice, "name": "p"}], "metric": [METRIC]}
    )
    assert "metric 'x': source 'nope' is not defined" in _problems(
        {"metric": [{**METRIC, "name": "x", "source": "nope"}]}
    )


def test_missing_source_topics_name_source_topic_metrics_and_fix() -> None:
    catalog = parse_catalog(
        {
            "source": [
                {"name": "orders", "topic": "shop.orders", "ts": "kafka"},
                {"name": "clicks", "topic": "app.clicks", "ts": "kafka"},
                {"name": "unused", "topic": "not.read", "ts": "kafka"},  # no metric reads it
            ],
            "metric": [
                METRIC,
                {**METRIC, "name": "orders_n", "source": "orders"},
                {**METRIC, "name": "orders_m", "source": "orders"},
                {**METRIC, "name": "clicks_n", "source": "clicks"},
            ],
        }
    )
    problems = source_topic_problems(catalog, {"events", "app.clicks", "other"})
    assert list(problems) == ["orders"]  # not the built-in topic, nor an unread source
    message = problems["orders"]
    assert message.startswith("source 'orders': topic 'shop.orders' does not exist")
    assert "its metrics (orders_n, orders_m) are not computed" in message
    assert "never creates" in message and "then restart the worker" in message
    assert source_topic_problems(catalog, {"shop.orders", "app.clicks"}) == {}
    assert source_topic_problems(parse_catalog({"metric": [METRIC]}), set()) == {}


def test_unread_sources_degrade_the_worker_and_come_first() -> None:
    from stratum.app.roles import with_unread_sources
    from stratum.health import ComponentHealth

    ok = ComponentHealth(status="ok", detail="4 partition(s), event-time lag 0.5 s")
    assert with_unread_sources(ok, {}) == ok
    unread = {"orders": "source 'orders': topic 'shop.orders' does not exist"}
    assert with_unread_sources(ok, unread) == ComponentHealth(
        status="degraded",
        detail="source 'orders': topic 'shop.orders' does not exist; 4 partition(s), "
        "event-time lag 0.5 s",
    )
    down = ComponentHealth(status="down", detail="flush failing: x")
    assert with_unread_sources(down, unread).status == "down"


def test_source_ids_and_archive_names() -> None:
    assert is_source_log("src.orders") and not is_source_log("1764930000000")
    assert not is_source_log("0") and not is_source_log("L")  # epochs of tests: letters
    assert source_of_id("src.orders:2") == "orders"
    assert source_of_id("1764930000000:2") == "events"
    assert source_of_id("L:2") == "events"
    orders = SourceDefinition(name="orders", topic="t", ts="kafka")
    assert orders.log_id() == "src.orders"  # an external topic: no epoch
    assert orders.log_id("1764930000000") == "src.orders.1764930000000"  # embedded
    assert source_of_id("src.orders.1764930000000:0") == "orders"
    assert file_name("src.orders.17", 0, 1, 2) == "orders.17-p0-1-2.parquet"
    assert parse_file_name(Path("orders.17-p0-1-2.parquet")) == ("src.orders.17", 0, 1, 2)
    assert file_name("src.orders", 2, 5, 9) == "orders-p2-5-9.parquet"
    assert parse_file_name(Path("orders-p2-5-9.parquet")) == ("src.orders", 2, 5, 9)
    old = Path("events-1764930000000-p1-0-41.parquet")  # files written before sources
    assert parse_file_name(old) == ("1764930000000", 1, 0, 41)
    assert file_name("1764930000000", 1, 0, 41) == old.name


def test_epoch_retirement_skips_source_ids() -> None:
    """A source's topic outlives Stratum: its ids are never a dead epoch to retire."""
    from speed_layer.recovery import dead_sources

    found = dead_sources(["src.orders:0", "src.orders.17:1", "17:0", "18:0"], "18", set())
    assert found == {"17": ["17:0"]}
