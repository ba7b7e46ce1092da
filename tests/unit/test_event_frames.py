"""Log messages to frames: the columnar fast path and the exact per-event path agree, and
anything the fast path cannot vouch for is decoded (or rejected) by the exact one."""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from stratum.event_frames import concat_frames, decode_messages, events_frame
from stratum.events import decode_message
from stratum.numbers import reads_as_non_finite

NOW = 1_795_309_200_000


def _exact(messages: list[tuple[int, bytes]]) -> pl.DataFrame:
    pairs = [(offset, event) for offset, value in messages for event in decode_message(value)[0]]
    return events_frame(pairs)


def _message(events: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events)


# Valid text only: text that reads as NaN or an infinity ("INF") is rejected by design.
_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
).filter(lambda text: not reads_as_non_finite(text))
_event = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=20),
        "ts": st.integers(0, NOW),
        "type": st.sampled_from(["view", "purchase", "click"]),
    },
    optional={
        "country": st.sampled_from(["DE", "FR", ""]),
        "note": _text,
        "amount": st.floats(-1e6, 1e6, allow_nan=False),
        "n": st.integers(-(10**6), 10**6),
        "gone": st.none(),
    },
)


@given(st.lists(st.lists(_event, min_size=1, max_size=6), min_size=1, max_size=5))
@settings(max_examples=150, deadline=None)
def test_the_fast_path_gives_the_exact_paths_frame(batches: list[list[dict[str, Any]]]) -> None:
    messages = [(10 + i, _message(events)) for i, events in enumerate(batches)]
    decoded = decode_messages(messages, now_ms=NOW)
    assert decoded.bad == []
    assert_frame_equal(decoded.frame, _exact(messages), check_column_order=True)


def test_a_typical_batch_takes_the_fast_path() -> None:
    events = [
        {
            "event_id": f"e{i}",
            "ts": NOW - i,
            "type": "view",
            "country": "DE",
            "latency_ms": 120 + i,
            "amount": 1.5,
        }
        for i in range(50)
    ]
    decoded = decode_messages([(0, _message(events[:20])), (1, _message(events[20:]))], now_ms=NOW)
    assert decoded.fast and decoded.bad == []
    frame = decoded.frame
    assert frame.columns == ["offset", "event_id", "ts", "type", "amount", "country", "latency_ms"]
    assert frame["offset"].to_list() == [0] * 20 + [1] * 30
    assert frame.schema["latency_ms"] == pl.Float64


@pytest.mark.parametrize(
    "odd",
    [
        b'{"event_id":"x","ts":1,"type":"v","big":123456789012345678901234}',  # beyond Int64
        b'{"event_id":"x","ts":"2026-11-21T10:00:00Z","type":"v"}',  # ISO time: normalised
        b'{"event_id":"x","ts":1,"type":"v","flag":true}',  # a boolean field: rejected
        b'{"event_id":"x","ts":1,"type":"v","nested":{"a":1}}',
        b'{"event_id":"x","ts":1,"type":"v","s":"' + b"y" * 2000 + b'"}',
        b'{"event_id":"","ts":1,"type":"v"}',
        b'{"event_id":"x","ts":1,"type":"v","a":1,"a":2}',  # a key twice
        b'{"event_id":"x","ts":1,"type":"v"}\n\n',  # blank lines
        b'[{"event_id":"x","ts":1,"type":"v"}]',  # a JSON array message
        b'{"event_id":"x","ts":1,"type":"v","m":1}\n{"event_id":"y","ts":2,"type":"v","m":"t"}',
        b'{"event_id":"x","ts":1,"type":"v","f":1e400}',  # not finite
        b'{"event_id":"x","ts":' + str(NOW + 2 * 86_400_000).encode() + b',"type":"v"}',
    ],
)
def test_what_the_fast_path_cannot_vouch_for_goes_the_exact_way(odd: bytes) -> None:
    messages = [(0, _message([{"event_id": "ok", "ts": 5, "type": "v", "m": 2}])), (1, odd)]
    decoded = decode_messages(messages, now_ms=NOW)
    assert not decoded.fast
    assert_frame_equal(decoded.frame, _exact(messages))
    assert "ok" in decoded.frame["event_id"].to_list()  # the neighbour message still counts


def test_each_bad_item_is_reported_alone_with_its_message_and_index() -> None:
    good = {"event_id": "g", "ts": 5, "type": "v"}
    messages = [
        (7, _message([good, {"event_id": 3, "ts": 5, "type": "v"}])),  # id not a string
        (8, b"not json at all"),
        (9, _message([{**good, "event_id": "h"}]) + b"\n{broken"),
    ]
    decoded = decode_messages(messages, now_ms=NOW)
    assert [(b.message, b.index) for b in decoded.bad] == [(0, 1), (1, 0), (2, 1)]
    assert "event_id" in decoded.bad[0].reason and "not valid JSON" in decoded.bad[2].reason
    assert decoded.frame.select("offset", "event_id").rows() == [(7, "g"), (9, "h")]


@pytest.mark.parametrize("text", ["NaN", "-inf", "Infinity", "1e999"])
def test_text_that_reads_as_a_non_finite_number_is_dead_lettered(text: str) -> None:
    good = {"event_id": "g", "ts": 5, "type": "v", "amount": "12.5"}
    messages = [
        (0, _message([good])),
        (1, _message([{"event_id": "n", "ts": 6, "type": "v", "amount": text}])),
    ]
    decoded = decode_messages(messages, now_ms=NOW)
    assert decoded.frame["event_id"].to_list() == ["g"]
    assert [(b.message, b.index) for b in decoded.bad] == [(1, 0)]
    assert decoded.bad[0].reason.startswith("amount: ")


def test_frames_of_several_batches_keep_numbers_canonical_as_text() -> None:
    """An archive flush joins the frames of several batches: a field that is Float64 in
    one and text in another must read "1" for 1.0, as one decode of both gives."""
    numbers = decode_messages(
        [(0, orjson.dumps({"event_id": "a", "ts": 1_000, "type": "t", "tier": 5588045.0}))],
        now_ms=2**50,
    ).frame
    text = decode_messages(
        [(1, orjson.dumps({"event_id": "b", "ts": 1_000, "type": "t", "tier": "x"}))], now_ms=2**50
    ).frame
    assert numbers.schema["tier"] == pl.Float64 and text.schema["tier"] == pl.String
    joined = concat_frames([numbers, text])
    together = decode_messages(
        [
            (0, orjson.dumps({"event_id": "a", "ts": 1_000, "type": "t", "tier": 5588045.0})),
            (1, orjson.dumps({"event_id": "b", "ts": 1_000, "type": "t", "tier": "x"})),
        ],
        now_ms=2**50,
    ).frame
    assert joined["tier"].to_list() == together["tier"].to_list() == ["5588045", "x"]
