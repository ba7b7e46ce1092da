"""The master dataset: raw events as immutable Parquet files.

Layout under ``<data_dir>/archive``::

    events/date=2026-11-21/hour=10/events-<epoch>-p<partition>-<first>-<last>.parquet
    orders/date=2026-11-21/hour=10/orders-p<partition>-<first>-<last>.parquet

One file holds the events of one log partition's offset range ``first..last`` whose event
time falls in that hour. The name is the identity: writing the same range again writes
the same file (temp file + rename, so readers never see half a file). ``epoch`` tells
log incarnations apart (the embedded broker starts empty each time, so its offsets
restart at 0). A ``[[source]]`` (:mod:`stratum.sources`) has its own directory, named
after it, and its name stands where the epoch would (its source ids are
``src.<name>:<partition>``): its topic is not Stratum's, its log outlives Stratum, so its
offsets never restart.

Columns: ``event_id`` (str), ``ts`` (Datetime ms, UTC), ``type`` (str), ``offset`` (i64),
then one column per other field: Float64 when every value in the file's batch is a
number, String otherwise (see :mod:`stratum.event_frames`). Readers select the fields
they need with :func:`scan_fields`; the batch layer deduplicates by ``event_id``
(the first copy in log order counts: :mod:`batch_layer.dedup`).
Files of older versions also hold ``payload`` (each event's JSON again); nothing reads it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from stratum.event_frames import events_frame
from stratum.events import Event
from stratum.metric_frames import typed_fields
from stratum.sources import BUILTIN, SOURCE_LOG, is_source_log

HOUR_MS = 3_600_000


def archive_root(data_dir: Path, source: str = BUILTIN) -> Path:
    return data_dir / "archive" / source


def file_name(epoch: str, partition: int, first: int, last: int) -> str:
    """``epoch``: the built-in log's epoch, or a source's name (module docstring)."""
    if is_source_log(epoch):
        return f"{epoch.removeprefix(SOURCE_LOG)}-p{partition}-{first}-{last}.parquet"
    return f"events-{epoch}-p{partition}-{first}-{last}.parquet"


def parse_file_name(path: Path) -> tuple[str, int, int, int]:
    """``(epoch or source name, partition, first, last)`` from a name made by
    :func:`file_name`."""
    parts = path.stem.split("-")
    if len(parts) == 4:  # <source>-p<partition>-<first>-<last>
        name, partition, first, last = parts
        epoch = f"{SOURCE_LOG}{name}"
    else:
        _, epoch, partition, first, last = path.stem.rsplit("-", 4)
    return epoch, int(partition.removeprefix("p")), int(first), int(last)


def hour_of_file(path: Path) -> int:
    """Epoch ms of the event hour a file holds, from ``date=YYYY-MM-DD/hour=HH``."""
    date = path.parent.parent.name.removeprefix("date=")
    hour = path.parent.name.removeprefix("hour=")
    moment = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def hour_dir(root: Path, hour_start_ms: int) -> Path:
    hour = datetime.fromtimestamp(hour_start_ms / 1000, tz=UTC)
    return root / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"


def write_frame(
    root: Path, epoch: str, partition: int, frame: pl.DataFrame, first: int, last: int
) -> list[Path]:
    """Write the events of one log partition's offset range ``first..last`` (a frame in
    :mod:`stratum.event_frames`' layout), one file per event hour."""
    if frame.is_empty():
        return []
    hour = (pl.col("ts") - pl.col("ts") % HOUR_MS).alias("__hour")
    written = []
    for (hour_start,), part in (
        frame.with_columns(hour).partition_by("__hour", as_dict=True, maintain_order=True).items()
    ):
        directory = hour_dir(root, int(hour_start))
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / file_name(epoch, partition, first, last)
        tmp = directory / f".{target.name}.{uuid.uuid4().hex}.tmp"
        part.select(
            "event_id",
            pl.col("ts").cast(pl.Datetime("ms", "UTC")),
            "type",
            "offset",
            pl.exclude("event_id", "ts", "type", "offset", "__hour"),
        ).write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
        os.replace(tmp, target)
        written.append(target)
    return sorted(written)


def offset_range(frame: pl.DataFrame) -> tuple[int, int]:
    """The first and last log offset in a non-empty frame, its rows in any order."""
    offset = pl.col("offset")
    first, last = frame.select(offset.min().alias("first"), offset.max().alias("last")).row(0)
    return int(first), int(last)


def write_partition_range(
    root: Path, epoch: str, partition: int, events: Sequence[tuple[int, Event]]
) -> list[Path]:
    """Write ``(offset, event)`` pairs of one log partition, one file per event hour."""
    if not events:
        return []
    return write_frame(
        root,
        epoch,
        partition,
        events_frame(events),
        min(o for o, _ in events),
        max(o for o, _ in events),
    )


def list_files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.glob("date=*/hour=*/*.parquet"))


def scan_fields(
    files: Iterable[Path], numeric: Sequence[str], strings: Sequence[str]
) -> pl.LazyFrame:
    """A lazy frame over archive files with the base columns plus the named fields,
    typed as asked (a field missing from a file is null there)."""
    base = ["event_id", "ts", "type", "offset"]
    frames = []
    for path in files:
        schema = pl.read_parquet_schema(path)
        exprs = [pl.col(c) for c in base] + typed_fields(schema, list(numeric), list(strings))
        frames.append(pl.scan_parquet(path).select(exprs))
    if not frames:
        empty = dict.fromkeys(("event_id", "type"), pl.String)
        schema_: dict[str, Any] = {**empty, "ts": pl.Datetime("ms", "UTC"), "offset": pl.Int64}
        schema_.update(dict.fromkeys(numeric, pl.Float64))
        schema_.update({n: pl.String for n in strings if n not in schema_})
        return pl.LazyFrame(schema=schema_)
    return pl.concat(frames, how="vertical_relaxed")
