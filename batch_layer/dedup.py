"""Which copy of an ``event_id`` counts: the first in log order, across the whole archive.

Log order: the source (epoch, then partition: :func:`batch_layer.planning.log_order`),
then the offset, then the file (copies in one log message whose event times fall in
different hours: the earlier hour), then the position in the file. Ingest routes an id
to one partition, so in one epoch this is the order the log holds the copies in, and the
speed layer (first seen per partition wins) agrees. The counting copy brings its own
``ts``: a later copy with another event time counts nowhere.

An incremental run reads only some hours, yet must know for every event it reads whether
another copy exists in any hour. Two small tables make that cheap:

- ``batch_id_index``: per archive file, the hashes of its ids (Polars' hash; ``scheme``
  names the Polars version, a new one indexes every file again). Each file a run reads
  for the first time is looked up there, in one ClickHouse scan of the hash arrays,
  which finds every id that also lives in another file; the files then say which ids
  really are the same (a hash is only a hint).
- ``batch_duplicates``: per id found in several files, its copies (file, offset, hour).

A run reading the hours ``R`` drops every event whose id counts in a copy outside ``R``
and keeps the first copy among those inside. A new copy that comes *before* the one that
counted (an earlier source archived late) also changes the hour of the displaced copy:
:func:`displaced_hours`. A run that reads every file needs no lookup: it sees every copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow as pa

from batch_layer.planning import HourPlan, log_order
from stratum.metrics import MetricDefinition
from stratum.storage import Storage

log = logging.getLogger(__name__)

SEED = 20261121
SCHEME = f"polars-{pl.__version__}-{SEED}"
FILE, ROW, SOURCE, HASH = "__file", "__row", "__source", "__id_hash"
LOOKUP_CHUNK = 100_000  # hashes per lookup statement


@dataclass(frozen=True)
class Snapshot:
    """The files a run counts (``paths``, sorted; a file is its position here) with
    their hours, and which of them earlier runs processed."""

    paths: list[str]
    hours: list[int]
    processed: frozenset[str]

    @cached_property
    def number(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.paths)}

    @cached_property
    def sources(self) -> pl.DataFrame:
        """FILE -> SOURCE: the rank of each file's source in log order."""
        orders = [log_order(Path(p)) for p in self.paths]
        rank = {order: i for i, order in enumerate(sorted(set(orders)))}
        return pl.DataFrame(
            {FILE: list(range(len(self.paths))), SOURCE: [rank[o] for o in orders]},
            schema={FILE: pl.UInt32, SOURCE: pl.UInt32},
        )

    def hour_of(self, files: pl.Series) -> pl.Series:
        return pl.Series(self.hours, dtype=pl.Int64).gather(files)


def _no_copies() -> pl.DataFrame:
    return pl.DataFrame(schema={"event_id": pl.String, FILE: pl.UInt32, "offset": pl.Int64})


def id_hashes(ids: pl.Expr) -> pl.Expr:
    return ids.hash(seed=SEED).alias(HASH)


def first_in_log_order(copies: pl.DataFrame, snapshot: Snapshot) -> pl.DataFrame:
    """The first row per ``event_id`` of rows with FILE and ``offset`` (and ROW: the
    position, for rows of one file)."""
    order = [SOURCE, "offset", FILE, *([ROW] if ROW in copies.columns else [])]
    return (
        copies.join(snapshot.sources, on=FILE, how="left")
        .sort(order)
        .unique("event_id", keep="first", maintain_order=False)
        .drop(SOURCE)
    )


def repeated_rows(events: pl.DataFrame) -> pl.Series:
    """Which rows share their ``event_id`` with another row: by hash first (half the
    time of hashing strings into a set), then exactly among the few candidates."""
    maybe = events.select(id_hashes(pl.col("event_id")).is_duplicated()).to_series()
    if not maybe.any():
        return maybe
    exact = events.filter(maybe)["event_id"].is_duplicated()
    return maybe.scatter(maybe.arg_true(), exact)


def keep_first(
    events: pl.DataFrame,
    snapshot: Snapshot,
    counted_elsewhere: pl.Series,
    repeated: pl.Series | None = None,
) -> pl.DataFrame:
    """``events`` without the ids whose counting copy is not among them and without
    every copy but the first of the others (``repeated``: :func:`repeated_rows` of
    ``events``, if known). Duplicates are rare: only their rows are sorted."""
    if counted_elsewhere.len():
        events = events.filter(~pl.col("event_id").is_in(counted_elsewhere.implode()))
        repeated = None
    if repeated is None:
        repeated = repeated_rows(events)
    if not repeated.any():
        return events
    rows = events.with_row_index(ROW)
    firsts = first_in_log_order(
        rows.filter(repeated).select(ROW, "event_id", "offset", FILE), snapshot
    )[ROW]
    return rows.filter(~repeated | pl.col(ROW).is_in(firsts.implode())).drop(ROW)


def prefetch(
    storage: Storage, snapshot: Snapshot, hours: set[int]
) -> tuple[set[str], pl.DataFrame]:
    """What :func:`resolve` needs from ClickHouse before it knows anything new: the
    indexed files and the stored copies of ids with a copy in ``hours`` (none needed
    when those are all of the snapshot's hours). Runs while the files are read."""
    if set(snapshot.hours) <= hours:
        return indexed_paths(storage), _no_copies()
    return indexed_paths(storage), stored_copies(storage, hours, snapshot)


def resolve(
    storage: Storage,
    metrics: Sequence[MetricDefinition],
    snapshot: Snapshot,
    plan: HourPlan,
    events: pl.DataFrame,
    version: int,
    index: ThreadPoolExecutor,
    known: tuple[set[str], pl.DataFrame],
    read_more: Callable[[set[int]], pl.DataFrame],
) -> tuple[pl.DataFrame, HourPlan, Future[None]]:
    """``events`` (the snapshot's files in the hours ``plan`` reads) reduced to the
    copies that count, without event_id, ts, offset and FILE; the plan grown by the
    hours whose counting copy moved (their events are read with ``read_more``); and the
    indexing of the snapshot's files not indexed yet, running in ``index``. ``known``:
    :func:`prefetch` for the hours the plan reads."""
    read = plan.read(metrics)
    indexed, stored = known
    unindexed = [i for i, p in enumerate(snapshot.paths) if p not in indexed]
    fresh = sorted(
        {i for i, p in enumerate(snapshot.paths) if p not in snapshot.processed} | set(unindexed)
    )
    everything = set(snapshot.hours) <= read
    repeated = None
    if everything:  # every copy is here: no lookup
        repeated = repeated_rows(events)
        copies = (
            events.filter(repeated)
            .select("event_id", FILE, "offset")
            .unique()
            .filter(pl.col(FILE).n_unique().over("event_id") > 1)
        )
        hashes = file_hashes(events, unindexed, snapshot)
    else:
        hashes = file_hashes(events, fresh, snapshot)
        copies = copies_of(events, files_sharing(storage, hashes, snapshot), snapshot)
        hashes = hashes.filter(pl.col(FILE).is_in(unindexed))
    indexing = index.submit(add_to_index, storage, hashes, snapshot)
    store(storage, copies, snapshot, version)
    moved = displaced_hours(copies, snapshot) - plan.changed
    if moved:
        log.info("new copies displaced the counting ones in %d more hour(s)", len(moved))
        plan = plan.with_changed(moved)
        more = plan.read(metrics) - read
        if more:
            events = pl.concat([events, read_more(more)], how="diagonal_relaxed")
            read |= more
            repeated = None
            stored = stored_copies(storage, read, snapshot)
    # This run's copies of an id are all of them: they replace what was stored.
    stored = pl.concat([stored.join(copies, on="event_id", how="anti"), copies])
    outside = pl.Series(dtype=pl.String) if everything else counted_outside(stored, read, snapshot)
    events = keep_first(events, snapshot, outside, repeated)
    return events.drop("event_id", "ts", "offset", FILE), plan, indexing


def indexed_paths(storage: Storage) -> set[str]:
    rows = storage.query(
        f"SELECT DISTINCT path FROM {storage.database}.batch_id_index WHERE scheme = {{s:String}}",
        {"s": SCHEME},
    )
    return {str(row[0]) for row in rows}


def file_hashes(events: pl.DataFrame, files: Sequence[int], snapshot: Snapshot) -> pl.DataFrame:
    """(FILE, HASH) of the given files: from ``events`` when it holds them (it must
    hold all their rows), else read from the files (their ids alone)."""
    wanted = set(files)
    held = set(events[FILE].unique().to_list()) & wanted
    frames = [
        events.lazy()
        .filter(pl.col(FILE).is_in(sorted(held)))
        .select(pl.col(FILE), id_hashes(pl.col("event_id")))
    ]
    for number in sorted(wanted - held):
        frames.append(
            pl.scan_parquet(snapshot.paths[number]).select(
                pl.lit(number, dtype=pl.UInt32).alias(FILE), id_hashes(pl.col("event_id"))
            )
        )
    return pl.concat(frames).collect()


def add_to_index(storage: Storage, hashes: pl.DataFrame, snapshot: Snapshot) -> None:
    """One ``batch_id_index`` row per file of ``hashes`` (FILE, HASH)."""
    per_file = hashes.group_by(FILE).agg(pl.col(HASH).unique())
    if per_file.is_empty():
        return
    files = per_file[FILE].to_list()
    table = pa.table(
        {
            "path": pa.array([snapshot.paths[f] for f in files], pa.string()),
            "hour_start": pa.array([snapshot.hours[f] // 1000 for f in files], pa.int64()).cast(
                pa.timestamp("s", tz="UTC")
            ),
            "scheme": pa.array([SCHEME] * len(files), pa.string()),
            "id_hashes": per_file[HASH].to_arrow().cast(pa.list_(pa.uint64())),
        }
    )
    storage.insert_arrow("batch_id_index", table)


def files_sharing(storage: Storage, probe: pl.DataFrame, snapshot: Snapshot) -> pl.DataFrame:
    """(FILE, HASH) for every file of the snapshot holding a hash of ``probe`` (FILE,
    HASH: files not necessarily indexed yet) that is in more than one file."""
    found: list[tuple[str, list[int]]] = []
    unique = probe[HASH].unique().sort()
    for start in range(0, unique.len(), LOOKUP_CHUNK):
        chunk = unique.slice(start, LOOKUP_CHUNK).to_list()
        found += storage.query(
            f"SELECT path, arrayFilter(h -> has({{q:Array(UInt64)}}, h), id_hashes) AS hits "
            f"FROM {storage.database}.batch_id_index "
            "WHERE scheme = {s:String} AND notEmpty(hits)",
            {"q": chunk, "s": SCHEME},
        )
    numbers = snapshot.number
    indexed = pl.DataFrame(
        {
            FILE: [numbers[p] for p, _ in found if p in numbers],
            HASH: [list(h) for p, h in found if p in numbers],
        },
        schema={FILE: pl.UInt32, HASH: pl.List(pl.UInt64)},
    ).explode(HASH)
    pairs = pl.concat([indexed, probe.select(FILE, HASH)]).unique()
    return pairs.filter(pl.col(FILE).n_unique().over(HASH) > 1)


def copies_of(events: pl.DataFrame, sharing: pl.DataFrame, snapshot: Snapshot) -> pl.DataFrame:
    """(event_id, FILE, offset) of every copy of the ids behind ``sharing`` (FILE, HASH),
    for ids that really are in several files, read from ``events`` or the files."""
    if sharing.is_empty():
        return _no_copies()
    held = set(events[FILE].unique().to_list())
    frames = []
    for (number,), part in sharing.partition_by(FILE, as_dict=True).items():
        wanted = part[HASH].implode()
        source = (
            events.lazy().filter(pl.col(FILE) == number)
            if number in held
            else pl.scan_parquet(snapshot.paths[number]).with_columns(
                pl.lit(number, dtype=pl.UInt32).alias(FILE)
            )
        )
        frames.append(
            source.select("event_id", FILE, "offset").filter(
                id_hashes(pl.col("event_id")).is_in(wanted)
            )
        )
    copies = pl.concat(frames).collect().unique()
    return copies.filter(pl.col(FILE).n_unique().over("event_id") > 1)


def store(storage: Storage, copies: pl.DataFrame, snapshot: Snapshot, version: int) -> None:
    """Remember the copies of each id in ``copies`` (all its copies the snapshot has)."""
    if copies.is_empty():
        return
    grouped = (
        copies.sort("event_id", FILE, "offset")
        .group_by("event_id")
        .agg(pl.col(FILE), pl.col("offset"))
    )
    rows = [
        [
            event_id,
            [snapshot.paths[f] for f in files],
            offsets,
            [datetime.fromtimestamp(snapshot.hours[f] / 1000, tz=UTC) for f in files],
            version,
        ]
        for event_id, files, offsets in grouped.iter_rows()
    ]
    storage.insert("batch_duplicates", rows, ("event_id", "paths", "offsets", "hours", "version"))


def stored_copies(storage: Storage, hours: Iterable[int], snapshot: Snapshot) -> pl.DataFrame:
    """(event_id, FILE, offset): the snapshot's copies of every stored id with a copy in
    one of ``hours``."""
    wanted = [datetime.fromtimestamp(h / 1000, tz=UTC) for h in sorted(hours)]
    rows = (
        storage.query(
            f"SELECT event_id, paths, offsets FROM {storage.database}.batch_duplicates FINAL "
            "WHERE hasAny(hours, {h:Array(DateTime('UTC'))})",
            {"h": wanted},
        )
        if wanted
        else []
    )
    numbers = snapshot.number
    flat = [
        (event_id, numbers[p], o)
        for event_id, paths, offsets in rows
        for p, o in zip(paths, offsets, strict=True)
        if p in numbers
    ]
    return pl.DataFrame(
        flat, schema={"event_id": pl.String, FILE: pl.UInt32, "offset": pl.Int64}, orient="row"
    )


def counted_outside(copies: pl.DataFrame, hours: set[int], snapshot: Snapshot) -> pl.Series:
    """Ids of ``copies`` whose counting copy is in none of ``hours``."""
    if copies.is_empty():
        return pl.Series("event_id", [], dtype=pl.String)
    firsts = first_in_log_order(copies, snapshot)
    outside = ~snapshot.hour_of(firsts[FILE]).is_in(sorted(hours))
    return firsts.filter(outside)["event_id"]


def displaced_hours(copies: pl.DataFrame, snapshot: Snapshot) -> set[int]:
    """Hours of copies that counted before this run and no longer do: a new copy (in a
    file not processed yet) comes before them in log order."""
    if copies.is_empty():
        return set()
    processed = pl.Series([p in snapshot.processed for p in snapshot.paths], dtype=pl.Boolean)
    old = copies.filter(processed.gather(copies[FILE]))
    before = first_in_log_order(old, snapshot)
    now = first_in_log_order(copies, snapshot)
    moved = before.join(now, on="event_id", suffix="_now").filter(
        (pl.col(FILE) != pl.col(f"{FILE}_now")) | (pl.col("offset") != pl.col("offset_now"))
    )
    return set(snapshot.hour_of(moved[FILE]).to_list())
