"""Request bodies to events: a JSON array (or one object) or NDJSON.

A body that cannot be read at all is a :class:`BodyError` (HTTP 400). Anything readable
is split into items, and each item stands alone: a bad line or a bad event is rejected
with its index and reason, and never takes its valid neighbours down with it.

Work per body is bounded by :class:`BodyLimits` before anything is built: a body with
more JSON values than ``max_values`` (an upper bound counted at C speed, see
:func:`values_bound`) or more items than ``max_items`` is a :class:`TooManyItemsError`
(HTTP 413). Why the value bound: parsing builds one Python object per value while
holding the GIL, so 16 MiB of ``[{},{},...]`` (5.6 M objects) held every thread of the
process for 1.5 s and 530 MB before an item could be counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from stratum.errors import StratumError
from stratum.events import MAX_EVENT_BYTES, Event, EventError, validate_event


class BodyError(StratumError):
    """The request body is not a JSON array, a JSON object or NDJSON."""


class TooManyItemsError(BodyError):
    """The body holds more events (or JSON values) than one request may carry."""


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_items: int = 100_000
    max_values: int = 2_000_000


def values_bound(body: bytes, *, ndjson: bool) -> int:
    """At least the number of JSON values in ``body`` (and of NDJSON lines): each value
    is the first of its container or of its line, or follows a comma. Commas and
    brackets inside strings only make the bound looser."""
    bound = body.count(b",") + body.count(b"{") + body.count(b"[") + 1
    return bound + body.count(b"\n") if ndjson else bound


def _check_count(count: int, limits: BodyLimits) -> None:
    if count > limits.max_items:
        raise TooManyItemsError(
            f"the body holds {count} items; the limit is "
            f"{limits.max_items} events per request: split it"
        )


@dataclass(slots=True)
class Rejection:
    index: int
    error: str


@dataclass(slots=True)
class ParsedBatch:
    events: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def split_body(body: bytes, limits: BodyLimits | None = None) -> list[Any | Rejection]:
    """Decoded items in order; an NDJSON line that is not JSON becomes a Rejection."""
    limits = limits or BodyLimits()
    if not body.strip():
        raise BodyError("the body is empty: send a JSON array of events or NDJSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start}): send UTF-8 JSON") from None
    stripped = text.lstrip()
    array = stripped.startswith("[")
    bound = values_bound(body, ndjson=not array)
    if bound > limits.max_values:
        raise TooManyItemsError(
            f"the body holds up to {bound} JSON values; the limit is "
            f"{limits.max_values} per request: split it"
        )
    if array:
        try:
            array_items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise BodyError(
                f"the body starts like a JSON array but is not valid JSON: {exc}"
            ) from None
        if not isinstance(array_items, list):
            raise BodyError("the body must be a JSON array of events or NDJSON")
        _check_count(len(array_items), limits)
        return list(array_items)
    lines = list(filter(str.strip, text.split("\n")))  # a C loop, not a Python one
    _check_count(len(lines), limits)
    if len(lines) == 1:
        try:
            return [orjson.loads(lines[0])]
        except orjson.JSONDecodeError as exc:
            raise BodyError(f"the body is neither a JSON array nor NDJSON: {exc}") from None
    items: list[Any | Rejection] = []
    for index, line in enumerate(lines):
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(Rejection(index, f"line {index + 1} is not valid JSON: {exc}"))
    return items


def parse_events(
    body: bytes,
    *,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
    limits: BodyLimits | None = None,
) -> ParsedBatch:
    """Each item validated alone; ``max_age_ms``: how far before ``now_ms`` the oldest
    accepted event time is (None: back to 1970)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    oldest_ms = 0 if max_age_ms is None else max(0, now_ms - max_age_ms)
    batch = ParsedBatch()
    for index, item in enumerate(split_body(body, limits)):
        if isinstance(item, Rejection):
            batch.rejected.append(item)
            continue
        try:
            event = validate_event(item, now_ms=now_ms, oldest_ms=oldest_ms)
        except EventError as exc:
            batch.rejected.append(Rejection(index, str(exc)))
            continue
        except RecursionError:
            batch.rejected.append(Rejection(index, "nested too deeply; events are flat"))
            continue
        size = len(orjson.dumps(event))
        if size > MAX_EVENT_BYTES:
            batch.rejected.append(
                Rejection(index, f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
            )
            continue
        batch.events.append(event)
    return batch
