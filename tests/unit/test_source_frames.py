"""The columnar mapping of a ``json`` source (stratum/source_frames.py) against the
exact path: the same frame whenever it answers, and no answer for what it cannot vouch
for."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from stratum.source_frames import json_frame
from stratum.sources import SourceDefinition, SourceMapper

NOW = 1_800_000_000_000
SOURCE = {
    "name": "orders",
    "topic": "shop.orders",
    "event_id": "order_id",
    "ts": "created_at",
    "type": "order",
    "fields": {
        "country": "customer.country",
        "amount": "total.amount",
        "vip": "customer.vip",
        "note": "note",
        "tier": "customer.tier.name",
    },
}


def _source(**changes: Any) -> SourceDefinition:
    return SourceDefinition.model_validate({**SOURCE, **changes})


def _messages(rows: list[Any]) -> list[tuple[int, bytes | None, int]]:
    return [
        (100 + i, row if isinstance(row, bytes) else orjson.dumps(row), NOW - 7 * i)
        for i, row in enumerate(rows)
    ]


def _both(source: SourceDefinition, rows: list[Any]) -> tuple[Any, Any]:
    messages = _messages(rows)
    fast = json_frame(source, 3, messages, NOW)
    exact = SourceMapper(source).decode_exact(3, messages, NOW)
    return fast, exact


def _order(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": f"o-{i}",
        "created_at": NOW - 1000 * i,
        "customer": {"country": ["DE", "FR", "JP"][i % 3], "vip": i % 2 == 0},
        "total": {"amount": 10.5 * i},
        **extra,
    }


def test_a_typical_batch_takes_the_fast_path_and_matches() -> None:
    rows = [_order(i) for i in range(50)]
    fast, exact = _both(_source(), rows)
    assert fast is not None
    assert exact.bad == []
    assert_frame_equal(fast, exact.frame)
    assert fast.columns == ["offset", "event_id", "ts", "type", "amount", "country", "vip"]
    assert fast.row(1, named=True) == {
        "offset": 101,
        "event_id": "o-1",
        "ts": NOW - 1000,
        "type": "order",
        "amount": 10.5,
        "country": "FR",
        "vip": "false",
    }


def test_the_decoder_uses_the_fast_path() -> None:
    decoded = SourceMapper(_source()).decode(3, _messages([_order(i) for i in range(5)]), NOW)
    assert decoded.fast
    decoded = SourceMapper(_source()).decode(3, _messages([_order(1), b"nope"]), NOW)
    assert not decoded.fast
    assert [b.message for b in decoded.bad] == [1]
    assert decoded.frame["event_id"].to_list() == ["o-1"]


@pytest.mark.parametrize(
    ("unit", "scale"), [("ms", 1), ("s", 1e-3), ("us", 1000), ("ns", 1_000_000)]
)
def test_time_units_and_kafka_time_and_offset_ids(unit: str, scale: float) -> None:
    rows = [
        {"at": int(NOW * scale) if scale >= 1 else (NOW - 1500 * i) * scale, "n": i}
        for i in range(4)
    ]
    fast, exact = _both(_source(event_id=None, ts="at", ts_unit=unit, fields={"n": "n"}), rows)
    assert fast is not None
    assert_frame_equal(fast, exact.frame)
    assert fast["event_id"].to_list()[:2] == ["shop.orders/3/100", "shop.orders/3/101"]
    fast, exact = _both(_source(ts="kafka"), [_order(i) for i in range(3)])
    assert fast is not None
    assert fast["ts"].to_list() == [NOW, NOW - 7, NOW - 14]
    assert_frame_equal(fast, exact.frame)


@pytest.mark.parametrize(
    ("changes", "odd"),
    [
        ({}, b"not json"),
        ({}, b""),
        ({}, b'{"order_id": "a"} {"order_id": "b"}'),
        ({}, {"order_id": True, "created_at": NOW}),
        ({}, {"order_id": "", "created_at": NOW}),
        ({}, {"order_id": "x", "created_at": "soon"}),
        ({}, {"order_id": "x", "created_at": NOW + 2 * 86_400_000}),
        ({}, {"order_id": "x", "created_at": -5}),
        ({}, {"order_id": "x"}),
        ({}, {"order_id": "x", "created_at": NOW, "note": "NaN"}),
        ({}, {"order_id": "x", "created_at": NOW, "note": {"deep": 1}}),
        ({}, {"order_id": "x", "created_at": NOW, "note": [1]}),
        ({}, {"order_id": "x", "created_at": NOW, "customer": "flat"}),
        ({}, {"order_id": "x", "created_at": NOW, "customer.country": "dotted key"}),
        ({"fields": {"c": "column_0"}}, {"order_id": "x", "created_at": NOW, "": "empty"}),
        ({}, {"order_id": "x", "created_at": NOW, "note": "2026-01-01T00:00:00Z"}),
        ({"ts_unit": "s"}, {"order_id": "x", "created_at": 10**17}),
        ({"ts_unit": "us"}, {"order_id": "x", "created_at": NOW * 1000.0}),
        ({"ts_unit": "iso"}, {"order_id": "x", "created_at": "2027-01-15T08:00:00Z"}),
    ],
)
def test_what_it_cannot_vouch_for_goes_the_exact_way(changes: dict[str, Any], odd: Any) -> None:
    source = _source(**changes)
    good = {"s": NOW // 1000, "us": NOW * 1000, "iso": "2027-01-15T08:00:00Z"}
    rows = [_order(1, created_at=good.get(changes.get("ts_unit", "ms"), NOW)), odd]
    fast, exact = _both(source, rows)
    assert fast is None
    decoded = SourceMapper(source).decode(3, _messages(rows), NOW)
    assert_frame_equal(decoded.frame, exact.frame)


def test_a_message_with_line_breaks_is_one_message() -> None:
    pretty = orjson.dumps(_order(4), option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    fast, exact = _both(_source(), [_order(1), pretty])
    assert fast is not None
    assert_frame_equal(fast, exact.frame)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=6),
)
customers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "country": st.one_of(st.none(), st.sampled_from(["DE", "FR", "1.0", "x y"])),
            "vip": st.one_of(st.none(), st.booleans()),
            "tier": st.one_of(st.none(), st.fixed_dictionaries({"name": scalars})),
        },
    ),
)
orders = st.fixed_dictionaries(
    {
        "order_id": st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 10**12)),
        "created_at": st.one_of(
            st.integers(NOW - 10**9, NOW), st.floats(NOW - 10**9, NOW, allow_nan=False)
        ),
    },
    optional={
        "customer": customers,
        "total": st.fixed_dictionaries({"amount": scalars}),
        "note": scalars,
        "extra": st.dictionaries(st.text(max_size=3), scalars, max_size=3),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(orders, min_size=1, max_size=8), st.sampled_from(["ms", "s"]))
def test_whenever_it_answers_it_gives_the_exact_paths_frame(
    rows: list[dict[str, Any]], unit: str
) -> None:
    if unit == "s":
        for row in rows:
            row["created_at"] = row["created_at"] / 1000
    source = _source(ts_unit=unit)
    fast, exact = _both(source, rows)
    if fast is not None:
        assert exact.bad == []
        assert_frame_equal(fast, exact.frame)
