"""The master dataset: raw events as immutable Parquet files.

Layout under ``<data_dir>/archive``::

    events/date=2026-11-21/hour=10/events-<epoch>-p<partition>-<first>-<last>.parquet

One file holds the events of one log partition's offset range ``first..last`` whose event
time falls in that hour. The name is the identity: writing the same range again writes
the same file (temp file + rename, so readers never see half a file). ``epoch`` tells
log incarnations apart (the embedded broker starts empty each time, so its offsets
restart at 0).

Columns: ``event_id`` (str), ``ts`` (Datetime ms, UTC), ``type`` (str), ``offset`` (i64),
``payload`` (the event exactly as logged, JSON), then one column per other field:
Float64 when every value in the file is a number, String otherwise. Readers select the
fields they need with :func:`scan_fields`; the batch layer deduplicates by ``event_id``.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from stratum.events import RESERVED, Event

HOUR_MS = 3_600_000


def archive_root(data_dir: Path) -> Path:
    return data_dir / "archive" / "events"


def file_name(epoch: str, partition: int, first: int, last: int) -> str:
    return f"events-{epoch}-p{partition}-{first}-{last}.parquet"


def hour_dir(root: Path, hour_start_ms: int) -> Path:
    hour = datetime.fromtimestamp(hour_start_ms / 1000, tz=UTC)
    return root / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"


def _frame(events: Sequence[tuple[int, Event]]) -> pl.DataFrame:
    fields: dict[str, list[Any]] = defaultdict(lambda: [None] * len(events))
    numeric: dict[str, bool] = {}
    for row, (_, event) in enumerate(events):
        for key, value in event.items():
            if key in RESERVED:
                continue
            fields[key][row] = value
            if isinstance(value, str):
                numeric[key] = False
            else:
                numeric.setdefault(key, True)
    columns: dict[str, pl.Series] = {
        "event_id": pl.Series([e["event_id"] for _, e in events], dtype=pl.String),
        "ts": pl.Series([e["ts"] for _, e in events], dtype=pl.Int64).cast(
            pl.Datetime("ms", "UTC")
        ),
        "type": pl.Series([e["type"] for _, e in events], dtype=pl.String),
        "offset": pl.Series([o for o, _ in events], dtype=pl.Int64),
        "payload": pl.Series([orjson.dumps(e).decode() for _, e in events], dtype=pl.String),
    }
    for key in sorted(fields):
        values = fields[key]
        if numeric[key]:
            columns[key] = pl.Series(values, dtype=pl.Float64, strict=False)
        else:
            columns[key] = pl.Series(
                [None if v is None else str(v) for v in values], dtype=pl.String
            )
    return pl.DataFrame(columns)


def write_partition_range(
    root: Path, epoch: str, partition: int, events: Sequence[tuple[int, Event]]
) -> list[Path]:
    """Write ``(offset, event)`` pairs of one log partition, one file per event hour."""
    if not events:
        return []
    first = min(o for o, _ in events)
    last = max(o for o, _ in events)
    by_hour: dict[int, list[tuple[int, Event]]] = defaultdict(list)
    for offset, event in events:
        by_hour[event["ts"] - event["ts"] % HOUR_MS].append((offset, event))
    written = []
    for hour_start, hour_events in sorted(by_hour.items()):
        directory = hour_dir(root, hour_start)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / file_name(epoch, partition, first, last)
        tmp = directory / f".{target.name}.{uuid.uuid4().hex}.tmp"
        _frame(hour_events).write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, target)
        written.append(target)
    return written


def list_files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.glob("date=*/hour=*/*.parquet"))


def scan_fields(files: Iterable[Path], numeric: Sequence[str], strings: Sequence[str]
                ) -> pl.LazyFrame:
    """A lazy frame over archive files with the base columns plus the named fields,
    typed as asked (a field missing from a file is null there)."""
    base = ["event_id", "ts", "type", "offset"]
    frames = []
    for path in files:
        schema = pl.read_parquet_schema(path)
        exprs: list[pl.Expr] = [pl.col(c) for c in base]
        for name in numeric:
            exprs.append(
                pl.col(name).cast(pl.Float64, strict=False) if name in schema
                else pl.lit(None, dtype=pl.Float64).alias(name)
            )
        for name in strings:
            if name in base:
                continue
            exprs.append(
                pl.col(name).cast(pl.String) if name in schema
                else pl.lit(None, dtype=pl.String).alias(name)
            )
        frames.append(pl.scan_parquet(path).select(exprs))
    if not frames:
        empty = dict.fromkeys(("event_id", "type"), pl.String)
        schema_: dict[str, Any] = {**empty, "ts": pl.Datetime("ms", "UTC"), "offset": pl.Int64}
        schema_.update(dict.fromkeys(numeric, pl.Float64))
        schema_.update({n: pl.String for n in strings if n not in schema_})
        return pl.LazyFrame(schema=schema_)
    return pl.concat(frames, how="vertical_relaxed")
