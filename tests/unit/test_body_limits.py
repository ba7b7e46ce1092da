"""Bounded work per ingest body (issue 17, finding 5): a body is refused on a cheap count
before it is parsed into millions of objects, and on its item count before any event is
validated."""

from __future__ import annotations

import time

import orjson
import pytest

from ingest.parsing import BodyError, BodyLimits, TooManyItemsError, parse_events, values_bound


@pytest.mark.parametrize(
    ("body", "ndjson", "at_least"),
    [
        (b"[0,0,0]", False, 3),
        (b"[{},{}]", False, 3),
        (b'[{"a":1,"b":[2,3]}]', False, 5),
        (b'{"a":1}\n{"a":2}\n', True, 2),
    ],
)
def test_the_values_bound_is_never_below_the_values(
    body: bytes, ndjson: bool, at_least: int
) -> None:
    assert values_bound(body, ndjson=ndjson) >= at_least


def test_a_body_of_tiny_items_is_refused_before_it_is_parsed() -> None:
    body = b"[" + b",".join([b"0"] * 4_000_000) + b"]"  # the 8 MB body
    started = time.perf_counter()
    with pytest.raises(TooManyItemsError, match="JSON values"):
        parse_events(body)
    assert time.perf_counter() - started < 0.5  # a parse took 40 s; the count takes ms


@pytest.mark.parametrize("ndjson", [False, True])
def test_more_items_than_the_cap_is_refused_whole(ndjson: bool) -> None:
    events = [{"event_id": f"e{i}", "ts": 0, "type": "t"} for i in range(11)]
    body = b"\n".join(orjson.dumps(e) for e in events) if ndjson else orjson.dumps(events)
    with pytest.raises(TooManyItemsError, match="11 items; the limit is 10"):
        parse_events(body, limits=BodyLimits(max_items=10))
    assert len(parse_events(body, limits=BodyLimits(max_items=11)).events) == 11
    assert issubclass(TooManyItemsError, BodyError)
