"""Malformed and hostile input: POST /v1/events fuzzed with hypothesis, and garbage
written straight to the log.

Every generated event is built either valid or with one known defect, so which events
must be accepted is known by construction, not by asking the validator under test.
The checks: never a 5xx, ``accepted`` equals the number of valid events, every bad one
is rejected at its index with a reason that names the defect, and every accepted event
reaches the archive (the master dataset keeps even events too late for the speed layer).
Garbage records on the topic must show up on the dead-letter topic with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum.archive import archive_root
from stratum.numbers import reads_as_non_finite
from tests.faults.conftest import BrokerStack
from tests.stack import Stack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
HOUR_MS = 3_600_000
NOW_MS = int(time.time() * 1000)
PREFIX = f"fz{NOW_MS}"
MAX_EXAMPLES = 300
# Printable text only: with at most 3 fields of 1,024 such characters a valid event stays
# under the 16 KiB limit whatever the characters (control characters escape to 6 bytes).
TEXT = st.characters(blacklist_categories=("Cs", "Cc"))


@dataclass(frozen=True)
class Case:
    """One item of a request body and what ingest must say about it."""

    item: Any
    valid: bool
    reason: str = ""  # a fragment the rejection message must contain


def _iso(ms: int, offset_h: int) -> str:
    zone = UTC if offset_h == 0 else timezone_of(offset_h)
    return datetime.fromtimestamp(ms / 1000, tz=zone).isoformat()


def timezone_of(offset_h: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=offset_h))


DAY_MS = 24 * HOUR_MS
OLDEST_MS = NOW_MS - 364 * DAY_MS  # ingest takes events up to 365 days old (the default)
timestamps = st.one_of(
    st.integers(OLDEST_MS, NOW_MS + 20 * HOUR_MS),  # 364 days ago up to 20 h ahead: allowed
    st.floats(OLDEST_MS, NOW_MS + 20 * HOUR_MS, allow_nan=False),
    st.builds(_iso, st.integers(OLDEST_MS, NOW_MS + 20 * HOUR_MS), st.integers(-12, 12)),
)
# Symmetric: ingest rejects -2**63 although int64 holds it (|value| <= 2**63 - 1).
INT64 = st.integers(-(2**63) + 1, 2**63 - 1)
measures = st.one_of(INT64, st.floats(allow_nan=False, allow_infinity=False))
extra_fields = st.dictionaries(
    st.text(TEXT, min_size=1, max_size=64).filter(lambda k: k not in ("event_id", "ts", "type")),
    st.one_of(
        st.text(TEXT, max_size=1024).filter(lambda t: not reads_as_non_finite(t)),
        measures,
        st.none(),
    ),
    max_size=3,
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event = dict(draw(extra_fields))
    event.update(
        {
            "event_id": "",
            "ts": draw(timestamps),
            "type": draw(st.text(TEXT, min_size=1, max_size=64)),
        }
    )
    return event


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"x": value}
    return value


@st.composite
def invalid_cases(draw: st.DrawFn) -> Case:
    """A valid event with exactly one defect, and the reason fragment it must earn."""
    event = draw(valid_events())
    defect = draw(
        st.sampled_from(
            [
                "not_object",
                "no_id",
                "no_type",
                "no_ts",
                "id_type",
                "type_type",
                "ts_bool",
                "ts_text",
                "ts_naive",
                "ts_past",
                "ts_old",
                "ts_seconds",
                "ts_future",
                "nested",
                "bool_field",
                "huge_field",
                "many_fields",
                "long_key",
                "long_id",
                "int_range",
                "non_finite_text",
                "too_big",
            ]
        )
    )
    match defect:
        case "not_object":
            return Case(
                draw(
                    st.one_of(
                        st.lists(INT64, max_size=3),
                        INT64,
                        st.text(max_size=5),
                        st.booleans(),
                        st.none(),
                    )
                ),
                False,
                "must be a JSON object",
            )
        case "no_id" | "no_type" | "no_ts":
            field = {"no_id": "event_id", "no_type": "type", "no_ts": "ts"}[defect]
            del event[field]
            return Case(event, False, field)
        case "id_type":
            event["event_id"] = draw(INT64)
            return Case(event, False, "event_id")
        case "type_type":
            event["type"] = draw(st.lists(INT64, max_size=2))
            return Case(event, False, "type")
        case "ts_bool":
            event["ts"] = draw(st.booleans())
            return Case(event, False, "ts")
        case "ts_text":
            event["ts"] = "yesterday-" + draw(st.text(TEXT, max_size=10))
            return Case(event, False, "ts")
        case "ts_naive":
            event["ts"] = "2026-01-01T10:00:00"
            return Case(event, False, "ts")
        case "ts_past":
            event["ts"] = draw(st.integers(-(2**62), -1))
            return Case(event, False, "ts")
        case "ts_old":
            event["ts"] = draw(st.integers(0, NOW_MS - 366 * DAY_MS))
            return Case(event, False, "ts")
        case "ts_seconds":
            event["ts"] = draw(st.integers(OLDEST_MS // 1000, NOW_MS // 1000))
            return Case(event, False, "looks like epoch seconds")
        case "non_finite_text":
            event["amount"] = draw(st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e999"]))
            return Case(event, False, "amount")
        case "ts_future":
            event["ts"] = draw(
                st.one_of(
                    st.integers(NOW_MS + 25 * HOUR_MS, 2**62), st.just("9999-12-31T23:59:59Z")
                )
            )
            return Case(event, False, "ts")
        case "nested":
            event["payload"] = _nested(draw(st.integers(1, 200)))
            return Case(event, False, "payload")
        case "bool_field":
            event["flag"] = draw(st.booleans())
            return Case(event, False, "flag")
        case "huge_field":
            event["note"] = "x" * draw(st.integers(1025, 200_000))
            return Case(event, False, "note")
        case "many_fields":
            event.update({f"f{i}": i for i in range(draw(st.integers(65, 300)))})
            return Case(event, False, "fields")
        case "long_key":
            event["k" * draw(st.integers(65, 500))] = 1
            return Case(event, False, "field names")
        case "long_id":
            event["event_id"] = "i" * draw(st.integers(129, 5000))
            return Case(event, False, "event_id")
        case "int_range":
            event["big"] = draw(st.integers(2**63, 2**64 - 1))
            return Case(event, False, "big")
        case _:
            event.update({f"s{i}": "y" * 1000 for i in range(20)})
            return Case(event, False, "bytes")


cases = st.one_of(valid_events().map(lambda e: Case(e, True)), invalid_cases())


def _body(items: list[Any], ndjson: bool) -> bytes:
    if ndjson and isinstance(items[0], dict):
        return b"\n".join(orjson.dumps(i) for i in items)
    return orjson.dumps(items)


def _archived_ids(stack: Stack) -> set[str]:
    files = list(archive_root(stack.settings.data_dir).glob("date=*/hour=*/*.parquet"))
    if not files:
        return set()
    frame = pl.concat([pl.read_parquet(f, columns=["event_id"]) for f in files])
    return set(frame.filter(pl.col("event_id").str.starts_with(PREFIX))["event_id"])


def test_fuzzed_bodies_get_no_5xx_and_every_valid_event_is_kept(
    broker_stack: Callable[..., BrokerStack], figures: Any
) -> None:
    stack = broker_stack("fuzz").stack
    ids = itertools.count()
    accepted: set[str] = set()
    tally = {"bodies": 0, "events": 0, "valid": 0, "invalid": 0, "whole_body": 0}

    def post(body: bytes) -> Any:
        response = stack.client.post(
            "/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, response.text[:2000]
        return response

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(cases, min_size=1, max_size=8), ndjson=st.booleans())
    def one_body(batch: list[Case], ndjson: bool) -> None:
        items = []
        for case in batch:
            item = case.item
            if isinstance(item, dict) and item.get("event_id") == "":
                item = {**item, "event_id": f"{PREFIX}-{next(ids)}"}
            items.append(item)
        response = post(_body(items, ndjson))
        tally["bodies"] += 1
        tally["events"] += len(batch)
        valid = [i for i, c in enumerate(batch) if c.valid]
        tally["valid"] += len(valid)
        tally["invalid"] += len(batch) - len(valid)
        body = response.json()
        if valid:
            assert response.status_code == 202, body
            rejected = body["rejected"]
            assert body["accepted"] == len(valid)
            accepted.update(items[i]["event_id"] for i in valid)
        else:
            assert response.status_code == 422, body
            rejected = body["error"]["details"]["rejected"]
        assert [r["index"] for r in rejected] == [i for i, c in enumerate(batch) if not c.valid]
        for r in rejected:
            assert batch[r["index"]].reason in r["error"], (batch[r["index"]], r)

    one_body()

    @settings(
        max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.one_of(st.binary(min_size=1, max_size=2000), st.text(max_size=200).map(str.encode)))
    def garbage_body(raw: bytes) -> None:
        post(raw)
        tally["whole_body"] += 1

    garbage_body()

    # The named hostile bodies: each gets its specific answer.
    assert post(b'[{"event_id": "\xff\xfe", "ts": 0, "type": "t"}]').status_code == 400
    assert post(b"[" * 200_000 + b"]" * 200_000).status_code == 400
    deep = orjson.dumps([{"event_id": "d", "ts": NOW_MS, "type": "t", "x": _nested(250)}])
    response = post(deep)
    assert response.status_code == 422 and "x" in response.text
    huge = orjson.dumps(
        [{"event_id": f"{PREFIX}-huge", "ts": NOW_MS, "type": "t", "blob": "z" * 10_000_000}]
    )
    response = post(huge)
    assert response.status_code == 422, response.text[:500]
    assert "blob: is 10000000 characters long" in response.text
    assert post(b" " * (stack.settings.api.max_body_bytes + 1)).status_code == 413
    many = [
        {
            "event_id": f"{PREFIX}-bulk-{i}",
            "ts": NOW_MS - i,
            "type": "bulk",
            "page": "/" + "p" * 200,
        }
        for i in range(40_000)
    ]
    bulk = b"\n".join(orjson.dumps(e) for e in many)
    assert len(bulk) > 10_000_000
    response = post(bulk)
    assert response.status_code == 202 and response.json()["accepted"] == len(many)
    accepted.update(e["event_id"] for e in many)
    tally["whole_body"] += 6

    assert stack.client.get("/v1/health").json()["status"] == "ok"
    wait_until(
        lambda: _archived_ids(stack) >= accepted,
        60,
        f"the archive to hold all {len(accepted)} accepted events",
    )
    assert _archived_ids(stack) == accepted
    figures(
        "hostile input",
        f"fuzz bodies={tally['bodies']} events={tally['events']} "
        f"(valid {tally['valid']}, invalid {tally['invalid']}) + whole-body cases="
        f"{tally['whole_body']}: 5xx=0, accepted={len(accepted)} all archived, "
        f"every invalid one rejected with its reason",
    )
    assert tally["valid"] > 100 and tally["invalid"] > 100


GARBAGE: list[tuple[bytes, int | None, str]] = [
    # (record value, index the dead letter names, a fragment of its reason)
    (b"\xff\xfe\x00 not json at all", 0, "not valid JSON"),
    (b'{"event_id": 5, "ts": "soon", "type": "t"}', 0, "event_id"),
    (b'[1, {"event_id": "dl-fine", "ts": 1000, "type": "dl"}]', 0, "JSON object"),
    # One broken line: only that line is dead-lettered; its neighbour is counted.
    (b'{"event_id": "dl-a", "ts": 1000, "type": "dl"}\n{broken', 1, "line 2"),
]


async def _produce_garbage(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value, partition=0) for value, _, _ in GARBAGE]
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in sent]


async def _dead_letters(bootstrap: str, topic: str, timeout_s: float) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found.extend(orjson.loads(r.value) for rs in batches.values() for r in rs)
    finally:
        await consumer.stop()
    return found


def test_garbage_on_the_topic_goes_to_the_dead_letter_topic_with_its_reason(
    broker_stack: Callable[..., BrokerStack], figures: Any
) -> None:
    running = broker_stack("deadletter")
    kafka = running.stack.settings.kafka
    bootstrap = running.broker.bootstrap
    written = asyncio.run(_produce_garbage(bootstrap, kafka.topic))

    def all_dead_lettered() -> list[dict[str, Any]] | None:
        letters = asyncio.run(_dead_letters(bootstrap, kafka.dead_letter_topic, 3))
        mine = [d for d in letters if (d["partition"], d["offset"]) in written]
        return mine if {(d["partition"], d["offset"]) for d in mine} >= set(written) else None

    letters = wait_until(all_dead_lettered, 40, "the garbage records on the dead-letter topic")

    for (value, index, reason), where in zip(GARBAGE, written, strict=True):
        record = next(
            d for d in letters if (d["partition"], d["offset"]) == where and d["index"] == index
        )
        assert record["topic"] == kafka.topic
        assert reason in record["reason"], record
        assert record["value"] == value.decode("utf-8", errors="replace")
    figures(
        "dead letters",
        f"garbage records={len(GARBAGE)} dead-lettered="
        f"{len({(d['partition'], d['offset']) for d in letters})} with reasons: "
        + "; ".join(sorted({d["reason"][:40] for d in letters})),
    )
