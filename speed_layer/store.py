"""Speed-layer reads and writes of ClickHouse: window upserts, checkpoints, recovery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from speed_layer.aggregator import NO_WATERMARK, WindowKey, WindowRow
from stratum.aggregation import WindowState
from stratum.metrics import Aggregation, MetricDefinition
from stratum.storage import Storage

WINDOW_COLUMNS = [
    "generation", "metric", "window_ms", "window_start", "dims", "group_key", "source_id",
    "count", "sum", "min", "max", "q_values", "q_weights", "d_hashes", "d_theta",
    "through_offset", "final",
    "updated_at",
]
CHECKPOINT_COLUMNS = [
    "generation", "source_id", "through_offset", "watermark_ms", "max_event_ms", "updated_at",
]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class SpeedStore:
    def __init__(self, storage: Storage, generation: int) -> None:
        self.storage = storage
        self.generation = generation

    def write(self, source_id: str, rows: Sequence[WindowRow], checkpoint: dict[str, Any]
              ) -> None:
        """Window rows first, then the checkpoint: a crash between the two leaves rows
        that say which offsets they hold, so nothing is counted twice on resume."""
        now = datetime.now(tz=UTC)
        through = checkpoint["through_offset"]
        values = []
        for row in rows:
            metric, start_ms, group = row.key
            columns = row.state.to_columns()
            values.append([
                self.generation, metric, row.window_ms, _utc(start_ms),
                dict(zip(row.dimensions, group, strict=True)), row.group_key, source_id,
                columns["count"], columns["sum"], columns["min"], columns["max"],
                columns["q_values"], columns["q_weights"], columns["d_hashes"],
                columns["d_theta"], through, int(row.final), now,
            ])
        if values:
            self.storage.insert("speed_windows", values, WINDOW_COLUMNS)
        self.storage.insert("speed_checkpoints", [[
            self.generation, source_id, through, checkpoint["watermark_ms"],
            checkpoint["max_event_ms"], now,
        ]], CHECKPOINT_COLUMNS)

    def load_checkpoint(self, source_id: str) -> tuple[int, int] | None:
        """``(through_offset, max_event_ms)`` of the last flush for a source partition."""
        rows = self.storage.query(
            f"SELECT through_offset, max_event_ms FROM {self.storage.database}"
            ".speed_checkpoints FINAL WHERE generation = {g:UInt32} AND source_id = {s:String}",
            {"g": self.generation, "s": source_id},
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def load_open_windows(self, source_id: str, watermark_ms: int,
                          metrics: dict[str, MetricDefinition]
                          ) -> list[tuple[WindowKey, WindowState, int]]:
        """Windows of a source partition that the watermark has not passed, with the
        offset each is complete through (the newest row of each, by ReplacingMergeTree)."""
        if watermark_ms == NO_WATERMARK:
            watermark_ms = 0
        rows = self.storage.query_dicts(
            "SELECT metric, toUnixTimestamp64Milli(window_start) AS start_ms, window_ms, "
            "mapValues(dims) AS _v, mapKeys(dims) AS _k, count, sum, min, max, q_values, "
            "q_weights, d_hashes, d_theta, through_offset "
            f"FROM {self.storage.database}.speed_windows FINAL "
            "WHERE generation = {g:UInt32} AND source_id = {s:String} "
            "AND toUnixTimestamp64Milli(window_start) + window_ms > {w:Int64}",
            {"g": self.generation, "s": source_id, "w": watermark_ms},
        )
        recovered = []
        for row in rows:
            metric = metrics.get(row["metric"])
            by_dim = dict(zip(row["_k"], row["_v"], strict=True))
            if metric is None or set(by_dim) != set(metric.dimensions):
                continue  # the definition changed since: a replay rebuilds it
            state = WindowState.from_columns(
                row, with_sketch=metric.aggregation == Aggregation.QUANTILE,
                with_distinct=metric.aggregation == Aggregation.DISTINCT)
            key = (metric.name, int(row["start_ms"]), tuple(by_dim[d] for d in metric.dimensions))
            recovered.append((key, state, int(row["through_offset"])))
        return recovered
