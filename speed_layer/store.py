"""Speed-layer reads and writes of ClickHouse: window upserts, checkpoints, recovery.

Every flush rewrites the full state of each changed window, so the write path is built
column by column: the rows of a flush become one Arrow table (numpy arrays, with each
window's KLL sample read from the sketch's serialised form and its distinct hashes
sorted in numpy) and go in with one ``insert_arrow``. Row-oriented inserts of the same
rows spent most of a flush turning Python lists into ClickHouse's format while holding
the GIL the consuming agents need (README, "Benchmarks").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from speed_layer.aggregator import NO_WATERMARK, WindowKey, WindowRow
from stratum.aggregation import MAX_HASH, NO_TIME, WindowState
from stratum.groups import group_key
from stratum.metrics import MetricDefinition
from stratum.storage import Storage

UTC_MS = pa.timestamp("ms", tz="UTC")
WINDOW_SCHEMA = pa.schema(
    [
        ("generation", pa.uint32()),
        ("metric", pa.string()),
        ("window_ms", pa.uint32()),
        ("window_start", UTC_MS),
        ("dims", pa.map_(pa.string(), pa.string())),
        ("group_key", pa.string()),
        ("source_id", pa.string()),
        ("count", pa.uint64()),
        ("sum", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("q_values", pa.list_(pa.float64())),
        ("q_weights", pa.list_(pa.uint64())),
        ("d_hashes", pa.list_(pa.uint64())),
        ("d_theta", pa.uint64()),
        ("first_ms", pa.int64()),
        ("last_ms", pa.int64()),
        ("through_offset", pa.int64()),
        ("final", pa.uint8()),
        ("updated_at", UTC_MS),
    ]
)
"""``speed_windows`` as Arrow, column for column (see stratum.storage.schema)."""

CHECKPOINT_COLUMNS = [
    "generation",
    "source_id",
    "through_offset",
    "watermark_ms",
    "max_event_ms",
    "updated_at",
]
_KLL_EMPTY, _KLL_SINGLE = 1, 4  # flag bits of a serialised DataSketches KLL sketch
_EMPTY_F64 = np.empty(0, dtype=np.float64)
_EMPTY_U64 = np.empty(0, dtype=np.uint64)
_GROUP_CACHE_LIMIT = 100_000


def kll_sample(sketch: Any) -> tuple[np.ndarray, np.ndarray]:
    """A KLL sketch's retained items and their weights (2**level), as numpy arrays.

    Read from ``serialize()`` (DataSketches' compact layout: an 8-byte preamble; unless
    the sketch is empty or holds one item, n, min_k, the level count, the start of each
    level in the item buffer, min, max, then the retained items level by level), which
    is several times faster than iterating the sketch in Python. Same multiset of
    ``(item, weight)`` as ``list(sketch)``; the weights sum to ``sketch.n``.
    """
    buf = sketch.serialize()
    flags = buf[3]
    if flags & _KLL_EMPTY:
        return _EMPTY_F64, _EMPTY_U64
    if flags & _KLL_SINGLE:
        return np.frombuffer(buf, np.float64, 1, 8), np.ones(1, dtype=np.uint64)
    levels_n = buf[18]
    starts = np.frombuffer(buf, np.uint32, levels_n, 20).astype(np.int64)
    items = np.frombuffer(buf, np.float64, offset=20 + 4 * levels_n + 16)
    sizes = np.diff(starts, append=starts[0] + len(items))
    weights = np.repeat(np.left_shift(np.uint64(1), np.arange(levels_n, dtype=np.uint64)), sizes)
    return items, weights


def _list_array(parts: list[np.ndarray], dtype: Any, value_type: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    values = np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=value_type))


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class PreparedFlush:
    """A flush snapshot: ``speed_windows`` rows as one Arrow table (None when no window
    changed) and ``speed_checkpoints`` rows."""

    windows: pa.Table | None
    checkpoints: list[list[Any]]


class SpeedStore:
    def __init__(self, storage: Storage, generation: int) -> None:
        self.storage = storage
        self.generation = generation
        # (dimensions, values) -> group key: the same groups come back every flush.
        self._group_keys: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}
        # pyarrow imports pandas on its first conversion (~1 CPU-second here): pay that
        # now rather than in the first flush, which holds the lock the agent waits on.
        pa.array(np.zeros(1, dtype=np.int64))

    def write(self, source_id: str, rows: Sequence[WindowRow], checkpoint: dict[str, Any]) -> None:
        """Window rows first, then the checkpoint: a crash between the two leaves rows
        that say which offsets they hold, so nothing is counted twice on resume."""
        self.write_many([(source_id, rows, checkpoint)])

    def write_many(
        self,
        flushes: Sequence[tuple[str, Sequence[WindowRow], dict[str, Any]]],
        resume_after: Mapping[str, int] | None = None,
    ) -> None:
        """One flush of several source partitions: every window row in one insert, then
        every checkpoint in one insert. Each insert makes a new part per day it touches,
        and chDB spends milliseconds per part whatever its size, so fewer, larger inserts
        cost less CPU and leave fewer parts for merges and FINAL. Same ordering guarantee
        as :meth:`write`: no checkpoint is stored before the rows it vouches for."""
        self.commit(self.prepare(flushes, resume_after))

    def prepare(
        self,
        flushes: Sequence[tuple[str, Sequence[WindowRow], dict[str, Any]]],
        resume_after: Mapping[str, int] | None = None,
    ) -> PreparedFlush:
        """Snapshot a flush (rows as Arrow, checkpoints as values) without touching
        ClickHouse. Call it where the aggregators cannot change underneath (on the event
        loop, or under the worker's lock); the snapshot then no longer refers to the live
        state, so :meth:`commit` can run in a thread while aggregation goes on, and the
        checkpoints still vouch exactly for the rows beside them.

        ``resume_after``: per source, a checkpoint offset below the rows' own (a replay's
        hand-off stores where the live worker paused): a worker taking the source over
        reads again from there, and each window's own offset skips what it already holds."""
        now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
        tables = [
            self.window_table(source_id, rows, checkpoint["through_offset"], now_ms)
            for source_id, rows, checkpoint in flushes
            if rows
        ]
        stamp = _utc(now_ms)
        resume = resume_after or {}
        checkpoints = [
            [
                self.generation,
                source_id,
                resume.get(source_id, checkpoint["through_offset"]),
                checkpoint["watermark_ms"],
                checkpoint["max_event_ms"],
                stamp,
            ]
            for source_id, _, checkpoint in flushes
        ]
        windows = (pa.concat_tables(tables) if len(tables) > 1 else tables[0]) if tables else None
        return PreparedFlush(windows, checkpoints)

    def commit(self, prepared: PreparedFlush) -> None:
        """Store a prepared flush: window rows, then checkpoints."""
        if prepared.windows is not None:
            self.storage.insert_arrow("speed_windows", prepared.windows)
        if prepared.checkpoints:
            self.storage.insert("speed_checkpoints", prepared.checkpoints, CHECKPOINT_COLUMNS)

    def window_table(
        self, source_id: str, rows: Sequence[WindowRow], through: int, now_ms: int
    ) -> pa.Table:
        """The rows of one flush as one Arrow table in :data:`WINDOW_SCHEMA`; state
        columns as :data:`stratum.aggregations.STATE_COLUMNS` names them."""
        n = len(rows)
        metrics: list[str] = []
        group_keys: list[str] = []
        dim_names: list[str] = []
        dim_values: list[str] = []
        dim_offsets = np.zeros(n + 1, dtype=np.int32)
        window_ms = np.empty(n, dtype=np.uint32)
        starts = np.empty(n, dtype=np.int64)
        counts = np.empty(n, dtype=np.uint64)
        sums = np.empty(n, dtype=np.float64)
        mins = np.zeros(n, dtype=np.float64)
        maxs = np.zeros(n, dtype=np.float64)
        thetas = np.full(n, MAX_HASH, dtype=np.uint64)
        firsts = np.zeros(n, dtype=np.int64)
        lasts = np.zeros(n, dtype=np.int64)
        finals = np.empty(n, dtype=np.uint8)
        q_values: list[np.ndarray] = []
        q_weights: list[np.ndarray] = []
        d_hashes: list[np.ndarray] = []
        cache = self._group_keys
        if len(cache) > _GROUP_CACHE_LIMIT:
            cache.clear()
        for i, row in enumerate(rows):
            metric, start_ms, group = row.key
            state = row.state
            metrics.append(metric)
            cache_key = (row.dimensions, group)
            key = cache.get(cache_key)
            if key is None:
                key = cache[cache_key] = group_key(row.dimensions, group)
            group_keys.append(key)
            dim_names.extend(row.dimensions)
            dim_values.extend(group)
            dim_offsets[i + 1] = len(dim_names)
            window_ms[i] = row.window_ms
            starts[i] = start_ms
            counts[i] = state.count
            sums[i] = state.sum
            if state.count:
                if state.min != np.inf:
                    mins[i] = state.min
                if state.max != -np.inf:
                    maxs[i] = state.max
            finals[i] = row.final
            if state.first_ms != NO_TIME:
                firsts[i] = state.first_ms
                lasts[i] = state.last_ms
            if state.sketch is not None:
                values, weights = kll_sample(state.sketch)
            else:
                values, weights = _EMPTY_F64, _EMPTY_U64
            q_values.append(values)
            q_weights.append(weights)
            if state.distinct is not None:
                hashes = state.distinct.hashes
                d_hashes.append(np.sort(np.array(list(hashes), dtype=np.uint64)))
                thetas[i] = state.distinct.theta
            else:
                d_hashes.append(_EMPTY_U64)
        dims = pa.MapArray.from_arrays(
            pa.array(dim_offsets),
            pa.array(dim_names, pa.string()),
            pa.array(dim_values, pa.string()),
        )
        # Typed at construction: cast() to a zoned timestamp costs ~2.5 ms a call.
        stamp = pa.array(np.full(n, now_ms, dtype=np.int64), type=UTC_MS)
        columns = [
            pa.array(np.full(n, self.generation, dtype=np.uint32)),
            pa.array(metrics, pa.string()),
            pa.array(window_ms),
            pa.array(starts, type=UTC_MS),
            dims,
            pa.array(group_keys, pa.string()),
            pa.array([source_id] * n, pa.string()),
            pa.array(counts),
            pa.array(sums),
            pa.array(mins),
            pa.array(maxs),
            _list_array(q_values, np.float64, pa.float64()),
            _list_array(q_weights, np.uint64, pa.uint64()),
            _list_array(d_hashes, np.uint64, pa.uint64()),
            pa.array(thetas),
            pa.array(firsts),
            pa.array(lasts),
            pa.array(np.full(n, through, dtype=np.int64)),
            pa.array(finals),
            stamp,
        ]
        return pa.Table.from_arrays(columns, schema=WINDOW_SCHEMA)

    def load_checkpoint(self, source_id: str) -> tuple[int, int] | None:
        """``(through_offset, max_event_ms)`` of the last flush for a source partition."""
        rows = self.storage.query(
            f"SELECT through_offset, max_event_ms FROM {self.storage.database}"
            ".speed_checkpoints FINAL WHERE generation = {g:UInt32} AND source_id = {s:String}",
            {"g": self.generation, "s": source_id},
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def load_open_windows(
        self, source_id: str, watermark_ms: int, metrics: dict[str, MetricDefinition]
    ) -> list[tuple[WindowKey, WindowState, int]]:
        """Windows of a source partition that the watermark has not passed, with the
        offset each is complete through (the newest row of each, by ReplacingMergeTree)."""
        if watermark_ms == NO_WATERMARK:
            watermark_ms = 0
        # An open window starts less than its length before the watermark: that bound on
        # window_start prunes day partitions and uses the sort key, so a restart reads the
        # open windows, not the whole history of the partition.
        longest_ms = max((m.window_ms for m in metrics.values()), default=0)
        rows = self.storage.query_dicts(
            "SELECT metric, toUnixTimestamp64Milli(window_start) AS start_ms, window_ms, "
            "mapValues(dims) AS _v, mapKeys(dims) AS _k, count, sum, min, max, q_values, "
            "q_weights, d_hashes, d_theta, first_ms, last_ms, through_offset "
            f"FROM {self.storage.database}.speed_windows FINAL "
            "WHERE generation = {g:UInt32} AND source_id = {s:String} "
            "AND window_start >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND toUnixTimestamp64Milli(window_start) + window_ms > {w:Int64}",
            {
                "g": self.generation,
                "s": source_id,
                "w": watermark_ms,
                "lo": max(0, watermark_ms - longest_ms),
            },
        )
        recovered = []
        for row in rows:
            metric = metrics.get(row["metric"])
            by_dim = dict(zip(row["_k"], row["_v"], strict=True))
            if metric is None or set(by_dim) != set(metric.dimensions):
                continue  # the definition changed since: a replay rebuilds it
            state = metric.kind.state_from_columns(row)
            key = (metric.name, int(row["start_ms"]), tuple(by_dim[d] for d in metric.dimensions))
            recovered.append((key, state, int(row["through_offset"])))
        return recovered
