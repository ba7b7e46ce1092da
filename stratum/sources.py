"""Sources: Kafka topics Stratum reads but did not create, declared as ``[[source]]``.

A source maps each message of its topic to events of :mod:`stratum.events`' schema:
``event_id`` and ``ts`` from dotted paths into the message (or the message's place in
the log and its Kafka timestamp), ``type`` a constant, and named fields from dotted
paths. Formats:

- ``stratum``: Stratum's own log messages (NDJSON of events), as the built-in topic;
- ``json``: one JSON object per message; ``ndjson``: one per line;
- ``debezium``: a change event (``{"schema", "payload"}`` or the bare payload); the
  row image is ``after`` for ``c``/``u``/``r``, and for ``d`` the ``before`` image when
  ``deletes = "event"`` (skipped with ``"skip"``). Paths are read in the row image, or
  in the envelope with a leading ``@`` (``ts = "@ts_ms"``); every event gets the
  dimension ``op``. Schema-change messages, truncates and tombstones hold no row: they
  are skipped, not dead-lettered.

A message that does not map (not JSON, no id, no time, a wrong type, a number that is
not finite) is a :class:`~stratum.event_frames.BadItem`: the worker dead-letters it with
source, partition, offset and reason, and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stratum.event_frames import BadItem, DecodedBatch, decode_messages, events_frame
from stratum.events import MAX_KEY_CHARS, RESERVED, Event, EventError, validate_event
from stratum.source_frames import json_frame

BUILTIN = "events"
SOURCE_LOG = "src."  # source ids of a [[source]]: src.<name>:<partition>
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
TS_UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
DEBEZIUM_ROWS = {"c": "after", "u": "after", "r": "after", "d": "before"}
SourceMessage = tuple[int, bytes | None, int]  # offset, value, Kafka timestamp (ms)

log = logging.getLogger(__name__)


class SourceDefinition(BaseModel):
    """One ``[[source]]`` table of the definitions file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    topic: str = Field(min_length=1, max_length=249)
    format: Literal["stratum", "json", "ndjson", "debezium"] = "json"
    event_id: str | None = None
    ts: str | None = None
    ts_unit: Literal["s", "ms", "us", "ns", "iso"] = "ms"
    type: str | None = Field(None, min_length=1, max_length=MAX_KEY_CHARS)
    fields: dict[str, str] = Field(default_factory=dict)
    deletes: Literal["skip", "event"] = "skip"

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value == BUILTIN:
            raise ValueError(f"{BUILTIN!r} is the built-in source; choose another name")
        return value

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if name in RESERVED:
                raise ValueError(f"field {name!r} is reserved; set it with {name} = ...")
            if not 0 < len(name) <= MAX_KEY_CHARS:
                raise ValueError(f"field name {name!r} must be 1..{MAX_KEY_CHARS} characters")
            _check_path(path, f"field {name!r}")
        return value

    @model_validator(mode="after")
    def _mapping_rules(self) -> SourceDefinition:
        if self.format == "stratum":
            if self.event_id or self.ts or self.type or self.fields:
                raise ValueError(
                    'format "stratum" reads Stratum\'s own events: it takes no '
                    "event_id, ts, type or fields"
                )
            return self
        if self.ts is None:
            raise ValueError(
                'needs ts = "<field path>" (event time) or ts = "kafka" (the message timestamp)'
            )
        if self.ts != "kafka":
            _check_path(self.ts, "ts")
        if self.event_id is not None:
            _check_path(self.event_id, "event_id")
        if self.format != "debezium":
            if self.deletes != "skip":
                raise ValueError('deletes applies to format "debezium" only')
            for name, path in [("ts", self.ts), ("event_id", self.event_id), *self.fields.items()]:
                if path and path.startswith("@"):
                    raise ValueError(
                        f'{name}: envelope paths (@...) are for format "debezium" only'
                    )
        elif "op" in self.fields:
            raise ValueError("field 'op' is set by format \"debezium\" (c, u, r or d)")
        return self

    def log_id(self, embedded_epoch: str | None = None) -> str:
        """What stands for the log epoch in this source's ids (``src.orders:3``; archive
        files drop the ``src.``): the source name, as its topic outlives Stratum (never an
        epoch to retire). On the embedded broker (the demo) the topic dies with it and its
        offsets restart: then ``src.<name>.<epoch>``."""
        log = f"{SOURCE_LOG}{self.name}"
        return f"{log}.{embedded_epoch}" if embedded_epoch else log


def _check_path(path: str, what: str) -> None:
    parts = path.removeprefix("@").split(".")
    if not path or any(not part for part in parts):
        raise ValueError(f'{what}: {path!r} is not a dotted path like "customer.country"')


def is_source_log(epoch: str) -> bool:
    """Whether the epoch part of a source id is a ``[[source]]``'s log (``src.<name>``),
    not an epoch of Stratum's own topic."""
    return epoch.startswith(SOURCE_LOG)


def source_of_id(source_id: str) -> str:
    """The source (``[[source]]`` name, or the built-in one) of a source id
    ``<epoch or name>:<partition>``."""
    epoch = source_id.split(":", 1)[0]
    return epoch.removeprefix(SOURCE_LOG).split(".", 1)[0] if is_source_log(epoch) else BUILTIN


class MappingError(Exception):
    """Why one message (or one line of it) does not map to an event."""


_MISSING = object()


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (``customer.country``), or ``_MISSING``. A key holding
    dots itself (``{"a.b": 1}``) is found too."""
    if isinstance(document, Mapping) and path in document:
        return document[path]
    value = document
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def ts_ms(value: Any, unit: str) -> int:
    """Epoch milliseconds of a time value in ``unit`` (s|ms|us|ns of numbers or numeric
    text, or iso for ISO-8601 text with a zone)."""
    if value is _MISSING or value is None:
        raise MappingError("no time: the ts path is missing or null")
    if unit == "iso":
        if not isinstance(value, str):
            raise MappingError(f"ts: expected ISO-8601 text, got {type(value).__name__}")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00", 1))
        except ValueError:
            raise MappingError(f"ts: {value[:40]!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            raise MappingError(f"ts: {value[:40]!r} has no time zone")
        return int(parsed.timestamp() * 1000)
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise MappingError(f"ts: {value[:40]!r} is not a number of {unit}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"ts: expected a number of {unit}, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise MappingError("ts: not a finite number")
    if unit == "ms":
        return int(value)
    if unit == "s" and isinstance(value, int):
        return value * 1000
    if unit in ("us", "ns") and isinstance(value, int):
        return value // (1000 if unit == "us" else 1_000_000)
    return int(value * TS_UNITS_MS[unit])


def _scalar(name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise MappingError(
            f"field {name!r}: expected a string or a number, got "
            f"{'an object' if isinstance(value, dict) else 'an array'}"
        )
    return value


class SourceMapper:
    """Maps one source's messages to events (see the module docstring)."""

    def __init__(self, source: SourceDefinition) -> None:
        self.source = source
        self.type = source.type or source.name

    def _get(self, row: Any, envelope: Any, path: str) -> Any:
        if path.startswith("@"):
            return lookup(envelope, path[1:])
        return lookup(row, path)

    def event(
        self,
        row: Any,
        envelope: Any,
        partition: int,
        offset: int,
        kafka_ms: int,
        extra: Mapping[str, Any] | None = None,
        now_ms: int | None = None,
        index: int = 0,
    ) -> Event:
        """The event of one row (a JSON object), or :class:`MappingError`."""
        source = self.source
        if not isinstance(row, dict):
            raise MappingError(f"expected a JSON object, got {type(row).__name__}")
        if source.event_id is None:
            event_id: Any = f"{source.topic}/{partition}/{offset}"
            if index:  # the second and later lines of an NDJSON message
                event_id = f"{event_id}/{index}"
        else:
            event_id = self._get(row, envelope, source.event_id)
            if event_id is _MISSING or event_id is None or event_id == "":
                raise MappingError(f"no id: {source.event_id!r} is missing")
            if isinstance(event_id, int) and not isinstance(event_id, bool):
                event_id = str(event_id)
            elif not isinstance(event_id, str):
                raise MappingError(
                    f"event_id: expected text or an integer, got {type(event_id).__name__}"
                )
        if source.ts == "kafka":
            ts = kafka_ms
        else:
            assert source.ts is not None
            ts = ts_ms(self._get(row, envelope, source.ts), source.ts_unit)
        event: Event = {"event_id": event_id, "ts": ts, "type": self.type}
        for name, path in source.fields.items():
            value = self._get(row, envelope, path)
            if value is not _MISSING and value is not None:
                event[name] = _scalar(name, value)
        if extra:
            event.update(extra)
        try:
            return validate_event(event, now_ms=now_ms)
        except EventError as exc:
            raise MappingError(str(exc)) from None

    def rows(self, value: bytes | None) -> list[tuple[Any, Any, dict[str, Any] | None]]:
        """``(row, envelope, extra fields)`` of one message; an NDJSON line that is not
        JSON is a :class:`MappingError` in place of its row."""
        if value is None or not value.strip():
            if self.source.format == "debezium":
                return []  # a tombstone after a delete: nothing to count
            raise MappingError("empty message")
        if self.source.format == "ndjson":
            found: list[Any] = []
            for lineno, line in enumerate(value.split(b"\n"), 1):
                if line.strip():
                    try:
                        found.append((orjson.loads(line), None, None))
                    except orjson.JSONDecodeError as exc:
                        found.append(
                            (MappingError(f"line {lineno} is not JSON: {exc}"), None, None)
                        )
            return found
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise MappingError(f"not JSON: {exc}") from None
        if self.source.format == "json":
            return [(document, None, None)]
        return self._debezium(document)

    def _debezium(self, document: Any) -> list[tuple[Any, Any, dict[str, Any] | None]]:
        if not isinstance(document, dict):
            raise MappingError("not a Debezium change event: not a JSON object")
        payload = document["payload"] if "payload" in document else document
        if not isinstance(payload, dict):
            return []  # a schema-only message
        op = payload.get("op")
        if op is None:
            if "ddl" in payload or "databaseName" in payload or "tableChanges" in payload:
                return []  # a schema change: no row
            raise MappingError("not a Debezium change event: no op")
        if op == "t" or op == "m":
            return []  # truncate, message: no row
        image = DEBEZIUM_ROWS.get(op) if isinstance(op, str) else None
        if image is None:
            raise MappingError(f"unknown Debezium op {op!r}")
        if op == "d" and self.source.deletes == "skip":
            return []
        row = payload.get(image)
        if not isinstance(row, dict):
            raise MappingError(f"op {op!r} without its {image!r} row image")
        return [(row, payload, {"op": op})]

    def decode(
        self, partition: int, messages: Sequence[SourceMessage], now_ms: int | None = None
    ) -> DecodedBatch:
        """The events of one partition's messages as a frame, plus every one that does
        not map (:class:`BadItem`, ``message`` its position here)."""
        if self.source.format == "stratum":
            return decode_messages([(o, v or b"") for o, v, _ in messages], now_ms=now_ms)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            frame = json_frame(self.source, partition, messages, now_ms)
        except Exception:  # a bug here must not cost events: the exact path still maps
            log.exception("columnar mapping of %s failed; mapping one by one", self.source.name)
            frame = None
        if frame is not None:
            return DecodedBatch(frame)
        return self.decode_exact(partition, messages, now_ms)

    def decode_exact(
        self, partition: int, messages: Sequence[SourceMessage], now_ms: int | None = None
    ) -> DecodedBatch:
        """:meth:`decode` message by message: a reason for every one that does not map."""
        pairs: list[tuple[int, Event]] = []
        bad: list[BadItem] = []
        for position, (offset, value, kafka_ms) in enumerate(messages):
            try:
                rows = self.rows(value)
            except MappingError as exc:
                bad.append(BadItem(position, None, str(exc)))
                continue
            many = len(rows) > 1
            for index, (row, envelope, extra) in enumerate(rows):
                try:
                    if isinstance(row, MappingError):
                        raise row
                    pairs.append(
                        (
                            offset,
                            self.event(
                                row, envelope, partition, offset, kafka_ms, extra, now_ms, index
                            ),
                        )
                    )
                except MappingError as exc:
                    bad.append(BadItem(position, index if many else None, str(exc)))
        return DecodedBatch(events_frame(pairs), bad, fast=False)
