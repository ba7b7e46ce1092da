from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.parsing import BodyError, parse_events
from stratum.events import EventError, decode_message, encode_events, validate_event
from stratum.settings import Settings

NOW = 1_795_309_466_487


def _event(**extra: Any) -> dict[str, Any]:
    return {"event_id": "e1", "ts": "2026-11-21T10:00:00Z", "type": "purchase", **extra}


def test_a_valid_event_is_normalised_to_epoch_ms() -> None:
    event = validate_event(_event(country="DE", amount=12.5, latency_ms=130, note=None), now_ms=NOW)
    assert event == {
        "event_id": "e1",
        "ts": 1_795_255_200_000,
        "type": "purchase",
        "country": "DE",
        "amount": 12.5,
        "latency_ms": 130,
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ts": 1, "type": "t"}, "event_id: is required"),
        ({"event_id": "e", "ts": 1}, "type: is required"),
        ({"event_id": "e", "type": "t"}, "ts: is required"),
        ({"event_id": 7, "ts": 1, "type": "t"}, "event_id: must be a string, got int"),
        ({"event_id": "", "ts": 1, "type": "t"}, "event_id: must not be empty"),
        (_event(ts="2026-11-21T10:00:00"), "ts: '2026-11-21T10:00:00' has no time zone"),
        (_event(ts="yesterday"), "ts: 'yesterday' is not ISO-8601"),
        (_event(ts=True), "ts: must be an ISO-8601 string or epoch milliseconds, not a boolean"),
        (_event(ts=-5), "ts: is before 1970"),
        (_event(ts=NOW + 2 * 86_400_000), "ts: is more than 24 hours in the future"),
        (
            _event(country={"a": 1}),
            "country: must be a string (dimension) or a number (measure), got object",
        ),
        (
            _event(flag=True),
            "flag: must be a string (dimension) or a number (measure), got boolean",
        ),
        (_event(tags=["a"]), "tags: must be a string (dimension) or a number (measure), got array"),
        (_event(page="x" * 2000), "page: is 2000 characters long; the limit is 1024"),
        ({f"f{i}": 1 for i in range(70)}, "has 70 fields; the limit is 64"),
        ("just a string", "an event must be a JSON object, got string"),
    ],
)
def test_each_schema_violation_names_its_field(raw: Any, message: str) -> None:
    with pytest.raises(EventError) as info:
        validate_event(raw, now_ms=NOW)
    assert str(info.value).startswith(message)


def test_messages_round_trip_and_foreign_single_events_are_validated() -> None:
    events = [validate_event(_event(event_id=f"e{i}"), now_ms=NOW) for i in range(3)]
    decoded, bad = decode_message(encode_events(events))
    assert decoded == events and bad == []
    decoded, bad = decode_message(b'{"event_id":"x","ts":"2026-11-21T10:00:00Z","type":"a"}')
    assert decoded[0]["ts"] == 1_795_255_200_000 and bad == []
    decoded, bad = decode_message(b'[{"event_id":"x","ts":1,"type":"a"},{"event_id":"y"}]')
    assert len(decoded) == 1 and bad == [
        (1, "ts: is required: ISO-8601 string or epoch milliseconds; type: is required")
    ]


def test_a_bad_line_does_not_sink_its_neighbours() -> None:
    body = b'{"event_id":"a","ts":1,"type":"t"}\n{not json\n{"event_id":"b","ts":2,"type":"t"}\n'
    batch = parse_events(body, now_ms=NOW)
    assert [e["event_id"] for e in batch.events] == ["a", "b"]
    assert [(r.index, r.error.split(" is ")[0]) for r in batch.rejected] == [(1, "line 2")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b"   \n ", "the body is empty"),
        (b"\xff\xfe", "the body is not UTF-8"),
        (b"[1, 2", "the body starts like a JSON array but is not valid JSON"),
        (b"garbage", "the body is neither a JSON array nor NDJSON"),
    ],
)
def test_unreadable_bodies_are_400s(body: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        parse_events(body, now_ms=NOW)


def test_a_broken_line_in_a_log_message_spares_the_rest() -> None:
    decoded, bad = decode_message(
        b'{"event_id":"a","ts":1,"type":"t"}\n{oops\n{"event_id":"b","ts":2,"type":"t"}'
    )
    assert [e["event_id"] for e in decoded] == ["a", "b"]
    assert bad[0][0] == 1 and bad[0][1].startswith("line 2 is not valid JSON")


def test_the_whole_64_bit_range_is_a_valid_measure() -> None:
    assert validate_event(_event(x=-(2**63)), now_ms=NOW)["x"] == -(2**63)
    with pytest.raises(EventError, match="64-bit"):
        validate_event(_event(x=2**63), now_ms=NOW)


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "-Infinity", "+INF", "1e999"])
def test_text_that_reads_as_a_non_finite_number_is_rejected_naming_its_field(text: str) -> None:
    with pytest.raises(EventError, match=r"^amount: .* reads as a number that is not finite"):
        validate_event(_event(amount=text), now_ms=NOW)
    batch = parse_events(orjson.dumps([_event(amount=12.5), _event(amount=text)]), now_ms=NOW)
    assert len(batch.events) == 1
    assert [r.index for r in batch.rejected] == [1]
    assert batch.rejected[0].error.startswith("amount: ")


def test_a_foreign_normalised_event_with_nan_text_is_rejected_in_decoding() -> None:
    decoded, bad = decode_message(
        b'{"event_id":"a","ts":1,"type":"t","amount":"NaN"}\n'
        b'{"event_id":"b","ts":2,"type":"t","amount":"12.5"}'
    )
    assert [e["event_id"] for e in decoded] == ["b"]
    assert len(bad) == 1 and bad[0][0] == 0 and bad[0][1].startswith("amount: ")


YEAR_MS = 365 * 86_400_000


@pytest.mark.parametrize(
    ("ts", "message"),
    [
        (
            1_795_309_466,
            "ts: 1795309466 looks like epoch seconds (2026-11-22T01:04:26Z); send "
            "epoch milliseconds (x1000) or ISO-8601",
        ),
        (1_795_309_466.5, "ts: 1795309466 looks like epoch seconds"),
        (
            1_795_309_466_487_000,
            "ts: 1795309466487000 looks like epoch microseconds "
            "(2026-11-22T01:04:26Z); send epoch milliseconds (/1000)",
        ),
        (
            1_795_309_466_487_000_000,
            "ts: 1795309466487000000 looks like epoch nanoseconds "
            "(2026-11-22T01:04:26Z); send epoch milliseconds (/1000000)",
        ),
        (
            NOW - YEAR_MS - 1,
            "ts: 2025-11-22T01:04:26Z is older than the oldest event time "
            "accepted (2025-11-22T01:04:26Z)",
        ),
        ("2020-01-01T00:00:00Z", "ts: 2020-01-01T00:00:00Z is older than the oldest event time"),
        (5, "ts: 1970-01-01T00:00:00Z is older than the oldest event time accepted"),
        (-5, "ts: is before 1970"),
    ],
)
def test_an_event_time_in_the_wrong_unit_or_too_old_is_rejected_with_a_hint(
    ts: Any, message: str
) -> None:
    with pytest.raises(EventError) as info:
        validate_event(_event(ts=ts), now_ms=NOW, oldest_ms=NOW - YEAR_MS)
    assert str(info.value).startswith(message)


def test_ingest_takes_the_oldest_event_time_from_its_setting() -> None:
    seconds = orjson.dumps([_event(ts=NOW // 1000), _event(ts=NOW - 2 * 86_400_000)])
    batch = parse_events(seconds, now_ms=NOW, max_age_ms=YEAR_MS)
    assert [r.index for r in batch.rejected] == [0] and len(batch.events) == 1
    assert "looks like epoch seconds" in batch.rejected[0].error
    assert (
        parse_events(seconds, now_ms=NOW, max_age_ms=86_400_000)
        .rejected[1]
        .error.startswith("ts: ")
    )
    assert Settings().api.max_event_age_days == 365
    assert Settings(api={"max_event_age_days": 3650}).api.max_event_age_days == 3650


def test_an_event_with_several_problems_reports_all_of_them() -> None:
    raw = {"event_id": "", "ts": "yesterday", "country": {"a": 1}, "amount": float("nan")}
    with pytest.raises(EventError) as info:
        validate_event(raw, now_ms=NOW)
    assert str(info.value).split("; ") == [
        "event_id: must not be empty",
        "ts: 'yesterday' is not ISO-8601 (e.g. 2026-11-21T10:00:00Z)",
        "type: is required",
        "country: must be a string (dimension) or a number (measure), got object",
        "amount: must be a finite number",
    ]


def test_an_empty_array_is_no_events_and_no_rejections() -> None:
    batch = parse_events(b"[]", now_ms=NOW)
    assert batch.events == [] and batch.rejected == []
