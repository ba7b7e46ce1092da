"""A ``json`` source's messages as a frame in one call of Arrow's JSON reader, mapped
column by column: the fast path of :meth:`stratum.sources.SourceMapper.decode`.

Per message, the exact path (``orjson`` + :meth:`SourceMapper.event` +
:func:`stratum.events.validate_event`) cost ~10 us of the event loop: 52 % of
``stratum up``'s samples at 90 % of its one-event maximum, and what held that maximum
at ~80 K events/s. Here the dotted paths become struct-field expressions over the
columns Arrow infers, and the schema's checks run once per column.

As in :mod:`stratum.event_frames`, this path only answers when it can vouch for every
message of the batch: a parse error, a row count other than one per message, a type
the mapping does not take as is (a Boolean id, ``ts`` as text or ISO-8601, a float
``ts`` in us or ns, an object where a field is read, a column Arrow read as a
timestamp), a missing id or time, or a value out of bounds gives ``None``, and the
exact path decodes the batch with a reason per bad message. Both give the same frame
for the same messages (tests/unit/test_source_frames.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from stratum.event_frames import field_checks, read_json_lines
from stratum.events import MAX_FIELDS, MAX_FUTURE_MS, MAX_ID_CHARS

if TYPE_CHECKING:
    from stratum.sources import SourceDefinition, SourceMessage


def json_frame(
    source: SourceDefinition,
    partition: int,
    messages: Sequence[SourceMessage],
    now_ms: int,
) -> pl.DataFrame | None:
    """The events of one partition's messages of a ``format = "json"`` source, or None
    when the exact path must decide (see the module docstring)."""
    if source.format != "json" or not messages or 3 + len(source.fields) > MAX_FIELDS:
        return None
    if source.ts != "kafka" and source.ts_unit == "iso":
        return None
    values = [value for _, value, _ in messages]
    if None in values:
        return None
    buffer = b"\n".join(values)  # type: ignore[arg-type]  # no None, checked above
    if buffer.count(b"\n") != len(values) - 1 or b"\r" in buffer:
        # JSON has no raw line breaks outside whitespace: one message, one line.
        buffer = b"\n".join(v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values)  # type: ignore[union-attr]
    table = read_json_lines(buffer)
    if table is None or table.num_rows != len(messages):  # a blank message, or two objects in one
        return None
    if "" in table.schema.names:
        return None  # Polars would rename that key "column_0", and a path could read it
    try:
        frame = pl.from_arrow(table)
    except pl.exceptions.PolarsError:  # names Arrow takes and Polars does not
        return None
    assert isinstance(frame, pl.DataFrame)
    schema = frame.schema
    paths = [p for p in (source.event_id, source.ts, *source.fields.values()) if p]
    if any("." in path and path in schema for path in paths):
        return None  # a key holding dots: lookup() reads it whole, a struct walk would not
    offsets = pl.Series(
        "offset",
        np.fromiter((offset for offset, _, _ in messages), dtype=np.int64, count=len(messages)),
    )
    event_id = _event_id(source, partition, schema, offsets)
    ts = _ts(source, schema, messages)
    if event_id is None or ts is None:
        return None
    columns: dict[str, pl.Expr] = {}
    strings, floats = [], []
    for name in sorted(source.fields):
        resolved = _resolve(schema, source.fields[name])
        if resolved is None:
            return None
        expr, dtype = resolved
        if dtype == pl.Null:
            continue
        if dtype == pl.String:
            strings.append(name)
        elif dtype == pl.Boolean:
            expr = expr.cast(pl.String)  # "true" / "false", as the exact path's _scalar
            strings.append(name)
        elif dtype in (pl.Int64, pl.Float64):
            floats.append(name)
        else:
            return None  # an object, an array, a timestamp: the exact path says which
        columns[name] = expr.alias(name)
    mapped = frame.select(
        offsets,
        event_id.alias("event_id"),
        ts.alias("ts"),
        pl.lit(source.type or source.name, dtype=pl.String).alias("type"),
        *columns.values(),
    )
    checks = [
        pl.col("event_id").null_count() == 0,
        pl.col("event_id").str.len_chars().is_between(1, MAX_ID_CHARS).all(),
        pl.col("ts").null_count() == 0,
        pl.col("ts").is_between(0, now_ms + MAX_FUTURE_MS).all(),
        *field_checks(strings, floats),
    ]
    if not all(mapped.select(check.alias(f"c{i}") for i, check in enumerate(checks)).row(0)):
        return None
    present = [name for name in columns if mapped.get_column(name).null_count() < mapped.height]
    return mapped.select(
        "offset",
        "event_id",
        "ts",
        "type",
        *[pl.col(n) if n in strings else pl.col(n).cast(pl.Float64) for n in present],
    )


def _resolve(schema: pl.Schema, path: str) -> tuple[pl.Expr, pl.DataType] | None:
    """The column at a dotted path and its type (Null: absent from every message), or
    None when something other than an object is in the way."""
    first, *rest = path.split(".")
    dtype = schema.get(first)
    if dtype is None:
        return pl.lit(None), pl.Null()
    expr = pl.col(first)
    for part in rest:
        if dtype == pl.Null:
            return pl.lit(None), pl.Null()
        if not isinstance(dtype, pl.Struct):
            return None
        fields = {f.name: f.dtype for f in dtype.fields}
        if part not in fields:
            return pl.lit(None), pl.Null()
        expr, inner = expr.struct.field(part), fields[part]
        dtype = inner() if isinstance(inner, type) else inner
    return expr, dtype


def _event_id(
    source: SourceDefinition, partition: int, schema: pl.Schema, offsets: pl.Series
) -> pl.Expr | None:
    if source.event_id is None:
        return pl.lit(f"{source.topic}/{partition}/") + pl.lit(offsets).cast(pl.String)
    resolved = _resolve(schema, source.event_id)
    if resolved is None:
        return None
    expr, dtype = resolved
    if dtype == pl.String:
        return expr
    if dtype == pl.Int64:
        return expr.cast(pl.String)
    return None


def _ts(
    source: SourceDefinition, schema: pl.Schema, messages: Sequence[SourceMessage]
) -> pl.Expr | None:
    if source.ts == "kafka":
        stamps = np.fromiter((stamp or 0 for _, _, stamp in messages), np.int64, len(messages))
        return pl.lit(pl.Series(stamps, dtype=pl.Int64))
    assert source.ts is not None
    resolved = _resolve(schema, source.ts)
    if resolved is None:
        return None
    expr, dtype = resolved
    unit = source.ts_unit
    if dtype == pl.Int64:
        # Before 1970 or past 1e13 of any unit is out of range however scaled: null, so
        # that neither an Int64 overflow nor floor division can make it look valid.
        valid = pl.when(expr.is_between(0, 10**13 if unit == "s" else 2**62))
        in_ms = {"s": expr * 1000, "ms": expr, "us": expr // 1000, "ns": expr // 1_000_000}
        return valid.then(in_ms[unit])
    if dtype == pl.Float64 and unit in ("ms", "s"):
        scaled = expr * 1000.0 if unit == "s" else expr
        # int() of a finite float; NaN, inf and out-of-range become null: not vouched for
        return scaled.cast(pl.Int64, strict=False)
    return None
