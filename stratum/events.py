"""The event schema, declared once.

An event is a flat JSON object::

    {"event_id": "e1", "ts": "2026-11-21T10:00:00Z", "type": "purchase",
     "country": "DE", "amount": 12.5}

``event_id`` (string) is the idempotency key, ``ts`` the event time (ISO-8601 with a
zone, or epoch milliseconds; a number that looks like seconds, microseconds or
nanoseconds is rejected with a hint naming the unit), ``type`` a string; every other
field is a dimension (string) or a measure (number). ``null`` fields are treated as
absent; numbers must be finite, and so must text that reads as a number (``"NaN"``,
``"inf"``, ``"1e999"`` are rejected: :mod:`stratum.numbers`).

Ingest validates with :func:`validate_event`, which returns the *normalised* event
(``ts`` as integer epoch milliseconds) that goes into the log. The speed layer decodes
log messages with :func:`decode_message`, which trusts normalised events and validates
anything else, so single events from foreign producers work too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from stratum.errors import StratumError
from stratum.numbers import reads_as_non_finite

Event = dict[str, Any]

MAX_FIELDS = 64
MAX_KEY_CHARS = 64
MAX_STRING_CHARS = 1024
MAX_ID_CHARS = 128
MAX_EVENT_BYTES = 16 * 1024
MAX_FUTURE_MS = 24 * 3600 * 1000
RESERVED = ("event_id", "ts", "type")


class EventError(StratumError):
    """An event broke the schema; ``field`` names the culprit when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unit_hint(value: float, oldest_ms: int, newest_ms: int) -> str | None:
    """Why a numeric ``ts`` out of range is probably in another unit, or None. Only with
    a minimum (ingest's setting): from 1970 on, any number is some time in some unit."""
    if oldest_ms <= 0:
        return None
    for unit, to_ms, how in (
        ("seconds", 1000.0, "x1000"),
        ("microseconds", 1e-3, "/1000"),
        ("nanoseconds", 1e-6, "/1000000"),
    ):
        as_ms = value * to_ms
        if oldest_ms <= as_ms <= newest_ms:
            text = str(value) if isinstance(value, int) else f"{value:.0f}"
            return (
                f"{text} looks like epoch {unit} ({_iso(int(as_ms))}); send "
                f"epoch milliseconds ({how}) or ISO-8601"
            )
    return None


def parse_ts(value: Any, *, now_ms: int | None = None, oldest_ms: int = 0) -> int:
    """Event time as epoch milliseconds, from ISO-8601 with a zone or epoch ms; at
    least ``oldest_ms`` and at most a day ahead of ``now_ms``. A number out of that
    range that would fit it in seconds, microseconds or nanoseconds says so."""
    if isinstance(value, bool):
        raise EventError("must be an ISO-8601 string or epoch milliseconds, not a boolean", "ts")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise EventError("must be a finite number of epoch milliseconds", "ts")
        ts_ms = int(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00", 1))
        except ValueError:
            raise EventError(
                f"{value[:40]!r} is not ISO-8601 (e.g. 2026-11-21T10:00:00Z)", "ts"
            ) from None
        if parsed.tzinfo is None:
            raise EventError(f"{value[:40]!r} has no time zone; add Z or +HH:MM", "ts")
        ts_ms = int(parsed.timestamp() * 1000)
    else:
        raise EventError("is required: ISO-8601 string or epoch milliseconds", "ts")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    newest_ms = now_ms + MAX_FUTURE_MS
    if not oldest_ms <= ts_ms <= newest_ms and not isinstance(value, str):
        hint = _unit_hint(value, max(oldest_ms, 0), newest_ms)
        if hint:
            raise EventError(hint, "ts")
    if ts_ms < 0:
        raise EventError("is before 1970-01-01T00:00:00Z", "ts")
    if ts_ms < oldest_ms:
        raise EventError(
            f"{_iso(ts_ms)} is older than the oldest event time accepted ({_iso(oldest_ms)})", "ts"
        )
    if ts_ms > newest_ms:
        raise EventError("is more than 24 hours in the future; check the clock or the unit", "ts")
    return ts_ms


def _check_string(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise EventError(f"must be a string, got {type(value).__name__}", field)
    if not value:
        raise EventError("must not be empty", field)
    if len(value) > limit:
        raise EventError(f"is {len(value)} characters long; the limit is {limit}", field)
    return value


def validate_event(raw: Any, *, now_ms: int | None = None, oldest_ms: int = 0) -> Event:
    """Check one decoded JSON value against the schema and return it normalised;
    ``oldest_ms``: the oldest event time accepted (ingest's setting; the speed layer's
    decode of foreign messages takes anything from 1970 on). An event with several
    problems is rejected with all of them, joined by "; " (a producer fixes them in one
    round, not one per request)."""
    if not isinstance(raw, dict):
        raise EventError(f"an event must be a JSON object, got {_json_type(raw)}")
    problems: list[EventError] = []
    if len(raw) > MAX_FIELDS:
        problems.append(EventError(f"has {len(raw)} fields; the limit is {MAX_FIELDS}"))
    event: Event = {}
    for name, check in (
        ("event_id", lambda v: _check_string(v, "event_id", MAX_ID_CHARS)),
        ("ts", lambda v: parse_ts(v, now_ms=now_ms, oldest_ms=oldest_ms)),
        ("type", lambda v: _check_string(v, "type", MAX_KEY_CHARS)),
    ):
        try:
            if name != "ts" and name not in raw:
                raise EventError("is required", name)
            event[name] = check(raw.get(name))
        except EventError as exc:
            problems.append(exc)
    for key, value in raw.items():
        if key in RESERVED or value is None:
            continue
        try:
            event[key] = _check_field(key, value)
        except EventError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise EventError("; ".join(str(p) for p in problems))
    return event


def _check_field(key: Any, value: Any) -> Any:
    """One dimension or measure, or the EventError naming it."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise EventError(f"field names must be 1..{MAX_KEY_CHARS} characters", str(key)[:64])
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise EventError(
                f"is {len(value)} characters long; the limit is {MAX_STRING_CHARS}", key
            )
        if reads_as_non_finite(value):
            raise EventError(
                f"{value[:40]!r} reads as a number that is not finite; "
                "send a finite number, or leave the field out",
                key,
            )
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(
            f"must be a string (dimension) or a number (measure), got {_json_type(value)}",
            key,
        )
    elif value != value or value in (float("inf"), float("-inf")):
        raise EventError("must be a finite number", key)
    elif isinstance(value, int) and not -(2**63) <= value <= 2**63 - 1:
        raise EventError("is out of the 64-bit integer range", key)
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "unknown")


def encode_events(events: list[Event]) -> bytes:
    """A log message: normalised events as NDJSON (one event per line)."""
    return b"\n".join(orjson.dumps(e) for e in events)


class MessageDecodeError(StratumError):
    """A log message that is not NDJSON of valid events; goes to the dead-letter topic."""


def iter_message(value: bytes) -> Iterator[Any]:
    """Decode a log message: NDJSON, a single JSON object, or a JSON array of objects."""
    stripped = value.strip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise MessageDecodeError(f"not valid JSON: {exc}") from exc
        yield from items
        return
    for lineno, line in enumerate(stripped.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise MessageDecodeError(f"line {lineno} is not valid JSON: {exc}") from exc


class _BadLine:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _items(value: bytes) -> list[Any]:
    """Decoded items; an NDJSON line that is not JSON becomes a :class:`_BadLine`, so its
    neighbours are still counted (a whole-message array that is not JSON raises)."""
    stripped = value.strip()
    if stripped.startswith(b"["):
        return list(iter_message(stripped))
    items: list[Any] = []
    for lineno, line in enumerate(stripped.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(_BadLine(f"line {lineno} is not valid JSON: {exc}"))
    return items


def decode_message(value: bytes) -> tuple[list[Event], list[tuple[int, str]]]:
    """Events of one log message, plus ``(index, reason)`` for each invalid one.

    Normalised events (integer ``ts``, string id and type) take the fast path; anything
    else goes through :func:`validate_event`.
    """
    events: list[Event] = []
    bad: list[tuple[int, str]] = []
    for index, item in enumerate(_items(value)):
        if isinstance(item, _BadLine):
            bad.append((index, item.reason))
            continue
        if (
            type(item) is dict
            and type(item.get("ts")) is int
            and type(item.get("event_id")) is str
            and type(item.get("type")) is str
            and not any(type(v) is str and reads_as_non_finite(v) for v in item.values())
        ):
            events.append(item)
            continue
        try:
            events.append(validate_event(item))
        except EventError as exc:
            bad.append((index, str(exc)))
    return events, bad
