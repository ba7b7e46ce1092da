"""Drift: where the speed layer's provisional numbers differed from batch, and why.

For every window both layers hold (batch: the version its hour's coverage makes final;
speed: the live generation), the two values, their counts, and the reason for the gap:
late events (batch counted more), duplicates (speed counted more), sketch error (same
events, approximate state), or rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.queries import value_sql
from stratum.metrics import MetricDefinition
from stratum.storage import Storage


@dataclass(slots=True)
class DriftPoint:
    t_ms: int
    speed: float | None
    batch: float | None
    speed_count: int
    batch_count: int
    reason: str

    @property
    def difference(self) -> float | None:
        if self.speed is None or self.batch is None:
            return None
        return self.speed - self.batch

    @property
    def relative(self) -> float | None:
        diff = self.difference
        if diff is None or not self.batch:
            return None
        return diff / abs(self.batch)


def explain(
    metric: MetricDefinition,
    speed: float | None,
    batch: float | None,
    speed_count: int,
    batch_count: int,
) -> str:
    if batch_count > speed_count:
        return f"late events: {batch_count - speed_count} arrived after the watermark"
    if speed_count > batch_count:
        return f"duplicates: {speed_count - batch_count} counted twice by speed"
    if speed == batch or speed is None or batch is None:
        return "none"
    if metric.kind.approximate:
        return "sketch error"
    return (
        "rounding"
        if abs((speed or 0) - (batch or 0)) < 1e-6 * max(1.0, abs(batch))
        else "unexplained"
    )


def _utc_param(ms: int) -> float:
    return ms / 1000


class DriftReader:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def drift(
        self, metric: MetricDefinition, start_ms: int, end_ms: int, generation: int
    ) -> list[DriftPoint]:
        db = self.storage.database
        params: dict[str, Any] = {
            "m": metric.name,
            "w": metric.window_ms,
            "g": generation,
            "start": _utc_param(start_ms),
            "end": _utc_param(end_ms),
        }
        value = value_sql(metric)
        batch = self.storage.query(
            f"""
            SELECT toUnixTimestamp64Milli(t.window_start) AS t, {value}, sum(count)
            FROM {db}.batch_windows AS t
            INNER JOIN (SELECT hour_start, version,
                               horizon - toIntervalMillisecond({{w:UInt32}}) AS until
                        FROM {db}.batch_coverage FINAL WHERE metric = {{m:String}}) AS c
                ON c.hour_start = toStartOfHour(t.window_start) AND c.version = t.version
            WHERE t.metric = {{m:String}} AND t.window_ms = {{w:UInt32}}
              AND t.window_start >= {{start:DateTime64(3)}}
              AND t.window_start < {{end:DateTime64(3)}} AND t.window_start <= c.until
            GROUP BY t ORDER BY t""",
            params,
        )
        speed = self.storage.query(
            f"""
            SELECT toUnixTimestamp64Milli(window_start) AS t, {value}, sum(count)
            FROM {db}.speed_windows FINAL
            WHERE generation = {{g:UInt32}} AND metric = {{m:String}}
              AND window_ms = {{w:UInt32}} AND window_start >= {{start:DateTime64(3)}}
              AND window_start < {{end:DateTime64(3)}}
            GROUP BY t ORDER BY t
            SETTINGS do_not_merge_across_partitions_select_final = 1""",
            params,
        )
        speed_by_t = {int(t): (_num(v), int(n)) for t, v, n in speed}
        points = []
        for t, v, n in batch:
            s_value, s_count = speed_by_t.get(int(t), (None, 0))
            b_value, b_count = _num(v), int(n)
            points.append(
                DriftPoint(
                    int(t),
                    s_value,
                    b_value,
                    s_count,
                    b_count,
                    explain(metric, s_value, b_value, s_count, b_count),
                )
            )
        return points


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number
