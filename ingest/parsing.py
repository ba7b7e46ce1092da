"""Request bodies to events: a JSON array (or one object) or NDJSON.

A body that cannot be read at all is a :class:`BodyError` (HTTP 400). Anything readable
is split into items, and each item stands alone: a bad line or a bad event is rejected
with its index and reason, and never takes its valid neighbours down with it.
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


@dataclass(slots=True)
class Rejection:
    index: int
    error: str


@dataclass(slots=True)
class ParsedBatch:
    events: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def split_body(body: bytes) -> list[Any | Rejection]:
    """Decoded items in order; an NDJSON line that is not JSON becomes a Rejection."""
    if not body.strip():
        raise BodyError("the body is empty: send a JSON array of events or NDJSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start}): send UTF-8 JSON") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise BodyError(f"the body starts like a JSON array but is not valid JSON: {exc}"
                            ) from None
        if not isinstance(items, list):
            raise BodyError("the body must be a JSON array of events or NDJSON")
        return list(items)
    lines = [line for line in text.split("\n") if line.strip()]
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


def parse_events(body: bytes, *, now_ms: int | None = None, max_age_ms: int | None = None
                 ) -> ParsedBatch:
    """Each item validated alone; ``max_age_ms``: how far before ``now_ms`` the oldest
    accepted event time is (None: back to 1970)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    oldest_ms = 0 if max_age_ms is None else max(0, now_ms - max_age_ms)
    batch = ParsedBatch()
    for index, item in enumerate(split_body(body)):
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
