"""Log messages as columnar frames: decoded once per batch, for the speed layer and the
archive alike.

A frame has ``offset`` (the log message's), ``event_id``, ``ts`` (epoch ms, Int64) and
``type``, then one column per other field in name order: Float64 when every value in
the frame is a number, String otherwise (numbers in their canonical text,
:func:`stratum.numbers.number_text`: ``1.0`` as "1"). A
missing or ``null`` field is null. That is the archive's column layout, so the speed
layer, the archive and the batch layer all read events with the same types.

Fast path: a batch of NDJSON messages goes through Arrow's JSON reader in one call and is
checked column by column against the schema of :mod:`stratum.events`. Whatever that
check cannot vouch for (a parse error, a type the schema forbids, a value out of bounds,
text that reads as a non-finite number, an ISO-8601 ``ts``, blank lines, a JSON array
message) sends the batch down the exact
path instead: :func:`stratum.events.decode_message` per message, with a reason for each
bad item, so a broken event is dead-lettered alone and its neighbours still count.
Both paths give the same frame for the same valid events (tests/unit/test_event_frames.py).
Arrow's reader is not faster than orjson per event, but it yields columns directly:
building columns from per-event dicts cost as much again as decoding.
"""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from stratum.events import (
    MAX_FIELDS,
    MAX_FUTURE_MS,
    MAX_ID_CHARS,
    MAX_KEY_CHARS,
    MAX_STRING_CHARS,
    RESERVED,
    Event,
    MessageDecodeError,
    decode_message,
)
from stratum.numbers import dimension_text, number_text_expr

log = logging.getLogger(__name__)
BASE_SCHEMA: dict[str, Any] = {
    "offset": pl.Int64,
    "event_id": pl.String,
    "ts": pl.Int64,
    "type": pl.String,
}
_FIELD_TYPES = (pl.String, pl.Int64, pl.Float64, pl.Null)
_BIG_INT = float(2**63)  # Arrow reads an integer beyond Int64 as a double: not ours to pass


def concat_frames(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Frames of several batches as one: a field that is Float64 in one and String in
    another becomes String with its numbers in canonical text, as one decode of all of
    them would give (Polars' own cast would write ``1.0`` as "1.0", a second group)."""
    if len(frames) == 1:
        return frames[0]
    texts = {name for frame in frames for name, dtype in frame.schema.items() if dtype == pl.String}
    aligned = [
        frame.with_columns(
            number_text_expr(pl.col(name)).alias(name)
            for name, dtype in frame.schema.items()
            if name in texts and dtype.is_numeric() and name not in BASE_SCHEMA
        )
        for frame in frames
    ]
    return pl.concat(aligned, how="diagonal_relaxed")


@dataclass(slots=True)
class BadItem:
    """An item of a message (``index``; None: the whole message) that is not a valid
    event, and why."""

    message: int  # position of the message in the decoded batch
    index: int | None
    reason: str


@dataclass(slots=True)
class DecodedBatch:
    frame: pl.DataFrame
    bad: list[BadItem] = field(default_factory=list)
    fast: bool = True  # whether the columnar path vouched for the whole batch


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=BASE_SCHEMA)


def events_frame(events: Sequence[tuple[int, Event]]) -> pl.DataFrame:
    """A frame from validated ``(offset, event)`` pairs (the exact path, and callers that
    hold events rather than log messages)."""
    if not events:
        return empty_frame()
    fields: dict[str, list[Any]] = defaultdict(lambda: [None] * len(events))
    numeric: dict[str, bool] = {}
    for row, (_, event) in enumerate(events):
        for key, value in event.items():
            if key in RESERVED or value is None:
                continue
            fields[key][row] = value
            if isinstance(value, str):
                numeric[key] = False
            else:
                numeric.setdefault(key, True)
    columns: dict[str, pl.Series] = {
        "offset": pl.Series([o for o, _ in events], dtype=pl.Int64),
        "event_id": pl.Series([e["event_id"] for _, e in events], dtype=pl.String),
        "ts": pl.Series([e["ts"] for _, e in events], dtype=pl.Int64),
        "type": pl.Series([e["type"] for _, e in events], dtype=pl.String),
    }
    for key in sorted(fields):
        values = fields[key]
        if numeric[key]:
            columns[key] = pl.Series(values, dtype=pl.Float64, strict=False)
        else:
            columns[key] = pl.Series(
                [None if v is None else dimension_text(v) for v in values], dtype=pl.String
            )
    return pl.DataFrame(columns)


def decode_messages(
    messages: Sequence[tuple[int, bytes]], *, now_ms: int | None = None
) -> DecodedBatch:
    """The events of ``(offset, value)`` log messages (of one partition, in offset
    order) as one frame, plus every item that is not a valid event."""
    if not messages:
        return DecodedBatch(empty_frame())
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        frame = _fast(messages, now_ms)
    except Exception:  # a bug here must not cost events: the exact path still decodes
        log.exception("columnar decoding failed; decoding %d message(s) one by one", len(messages))
        frame = None
    if frame is not None:
        return DecodedBatch(frame)
    return _exact(messages)


def read_json_lines(buffer: bytes) -> pa.Table | None:
    """JSON lines as one Arrow table, in one block on this thread; None when Arrow
    cannot read them (a fast path then leaves them to its exact path)."""
    try:
        return pa_json.read_json(
            io.BytesIO(buffer),
            read_options=pa_json.ReadOptions(
                use_threads=False, block_size=max(len(buffer) + 1, 1 << 20)
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None


def _fast(messages: Sequence[tuple[int, bytes]], now_ms: int) -> pl.DataFrame | None:
    values = [value for _, value in messages]
    table = read_json_lines(b"\n".join(values))
    if table is None:
        return None  # the exact path names the bad message
    counts = [value.count(b"\n") + 1 for value in values]
    if sum(counts) != table.num_rows:  # blank lines, or a message that is not NDJSON
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    schema = frame.schema
    if (
        schema.get("event_id") != pl.String
        or schema.get("type") != pl.String
        or schema.get("ts") != pl.Int64
        or "offset" in schema
        or len(schema) > MAX_FIELDS
    ):
        return None
    fields = [name for name in schema if name not in RESERVED]
    if any(
        schema[name] not in _FIELD_TYPES or not 0 < len(name) <= MAX_KEY_CHARS for name in fields
    ):
        return None
    strings = [name for name in fields if schema[name] == pl.String]
    floats = [name for name in fields if schema[name] == pl.Float64]
    checks = [
        pl.col("event_id").null_count() == 0,
        pl.col("event_id").str.len_chars().is_between(1, MAX_ID_CHARS).all(),
        pl.col("type").null_count() == 0,
        pl.col("type").str.len_chars().is_between(1, MAX_KEY_CHARS).all(),
        pl.col("ts").null_count() == 0,
        pl.col("ts").is_between(0, now_ms + MAX_FUTURE_MS).all(),
        *field_checks(strings, floats),
    ]
    if not all(frame.select(check.alias(f"c{i}") for i, check in enumerate(checks)).row(0)):
        return None
    offsets = np.repeat(
        np.fromiter((offset for offset, _ in messages), dtype=np.int64, count=len(messages)), counts
    )
    ordered = sorted(name for name in fields if schema[name] != pl.Null)
    return frame.select(
        pl.Series("offset", offsets),
        "event_id",
        "ts",
        "type",
        *[
            pl.col(name) if schema[name] == pl.String else pl.col(name).cast(pl.Float64)
            for name in ordered
        ],
    )


def field_checks(strings: Sequence[str], floats: Sequence[str]) -> list[pl.Expr]:
    """Whether every value of these text and number columns passes
    :func:`stratum.events.validate_event`'s field checks (nulls aside)."""
    return [
        *[(pl.col(name).str.len_chars() <= MAX_STRING_CHARS).all() for name in strings],
        # text a metric would read as NaN or an infinity ("NaN", "1e999"): not an event
        *[pl.col(name).cast(pl.Float64, strict=False).is_finite().all() for name in strings],
        *[(pl.col(name).abs() < _BIG_INT).all() for name in floats],  # also not inf/NaN
    ]


def _exact(messages: Sequence[tuple[int, bytes]]) -> DecodedBatch:
    pairs: list[tuple[int, Event]] = []
    bad: list[BadItem] = []
    for position, (offset, value) in enumerate(messages):
        try:
            events, invalid = decode_message(value)
        except MessageDecodeError as exc:
            bad.append(BadItem(position, None, str(exc)))
            continue
        pairs.extend((offset, event) for event in events)
        bad.extend(BadItem(position, index, reason) for index, reason in invalid)
    return DecodedBatch(events_frame(pairs), bad, fast=False)
