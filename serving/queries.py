"""The merged read: batch where it is authoritative, speed everywhere else.

A window comes from batch when it ends at or before the batch horizon *and* its event
hour has batch coverage (the version a finished batch run wrote); otherwise from the
live speed generation. Both tables hold the same mergeable state, so one SQL statement
takes the union and rolls windows up to the requested step and groups: no window is
missing or counted twice at the boundary, and every point says where it came from
(``batch``, ``speed``, or ``mixed`` when a step spans the horizon).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from serving.final_buckets import FinalBucketCache, Freeze, Group, ShapeKey, bucket_of
from serving.tail_buckets import (
    BucketToken,
    TailBucketCache,
    TailStarts,
    WindowTokens,
    bucket_ranges,
    bucket_tokens,
    window_tokens_sql,
)
from stratum import telemetry
from stratum.errors import StratumError
from stratum.metrics import MetricDefinition
from stratum.storage import Storage, epochs, generations
from stratum.storage.jobs import JobStore

if TYPE_CHECKING:
    from serving.live_definitions import LiveDefinitions

MAX_POINTS = 20_000


class AsOfError(StratumError):
    """An as-of read that cannot be answered (422)."""


class DefinitionChangedError(StratumError):
    """The metric was redefined between choosing it and reading it: ask again (409)."""


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    metric: MetricDefinition
    start_ms: int
    end_ms: int
    step_ms: int
    group_by: tuple[str, ...] = ()
    filters: dict[str, list[str]] = field(default_factory=dict)
    as_of_ms: int | None = None  # answer with the batch coverage served at that moment


@dataclass(frozen=True, slots=True)
class Point:
    """Frozen: the final-bucket cache hands the same points to every reader."""

    t_ms: int
    value: float | None
    source: str
    count: int
    sessions: int | None = None  # session metrics: sessions that started in the bucket
    overflow: bool = False  # the value is past float64 (a sum over 1.8e308): value is None


@dataclass(slots=True)
class Series:
    group: dict[str, str]
    points: list[Point]


def value_sql(metric: MetricDefinition) -> str:
    """How stored state rolls up into the metric's value; never an average of averages."""
    return metric.kind.value_sql(metric.quantile)


def default_step_ms(metric: MetricDefinition) -> int:
    return metric.hop_ms


def step_problem(metric: MetricDefinition, step_ms: int) -> str | None:
    """Why a step cannot be answered from stored windows, or None. Hopping windows
    overlap, so adding them up would count events several times: their step is the hop."""
    if metric.hop is not None:
        if step_ms != metric.hop_ms:
            return (
                f"{metric.name} has hopping windows ({metric.windows[0]} every "
                f"{metric.hop}): the step must be {metric.hop}"
            )
        return None
    if step_ms % metric.window_ms:
        return f"step must be a multiple of {metric.windows[0]}"
    return None


def source_of(all_batch: int, any_batch: int) -> str:
    if all_batch:
        return "batch"
    return "mixed" if any_batch else "speed"


def with_window_starts(ranges: Sequence[tuple[int, int]], hop_ms: int) -> list[tuple[int, int]]:
    """The ranges ``[lo, hi)`` that hold a window start (windows start at multiples of
    the hop): a dashboard's 24 h reaches back to a moment inside a bucket, and the sliver
    before the first whole bucket holds none, yet would cost a statement with the batch
    joins to find that out."""
    return [(lo, hi) for lo, hi in ranges if -(-lo // hop_ms) * hop_ms < hi]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


DAY_MS = 86_400_000


def build_sql(
    req: SeriesRequest,
    database: str,
    generation: int,
    ranges: Sequence[tuple[int, int]] | None = None,
    *,
    speed_only: bool = False,
    floor: int = 0,
) -> tuple[str, dict[str, Any]]:
    """One statement: batch windows where their hour's coverage makes them final, live
    speed windows everywhere else, rolled up to the step and the groups. Session metrics
    first chain each group's windows into sessions (:func:`_sessions_sql`) and roll up by
    session start. ``ranges`` (default: the request's) limit the window starts read.
    ``speed_only``: the caller knows no batch coverage reaches the ranges (they start
    after every coverage horizon), so the speed rows are read without the joins.
    ``floor``: batch coverage by older versions was computed with an earlier definition
    of the metric (:mod:`stratum.storage.definitions`) and is not used."""
    metric = req.metric
    session = metric.session_gap_ms is not None
    ranges = list(ranges or [(req.start_ms, req.end_ms)])
    if session:
        # Sessions that start in the range may begin a chain earlier that day and run
        # until its end: read whole days.
        ranges = [(req.start_ms // DAY_MS * DAY_MS, -(-req.end_ms // DAY_MS) * DAY_MS)]
    params: dict[str, Any] = {
        "m": metric.name,
        "w": metric.window_ms,
        "g": generation,
        "step": req.step_ms,
        "floor": floor,
        "start": _utc(min(lo for lo, _ in ranges)),
        "end": _utc(max(hi for _, hi in ranges)),
    }
    spans = []
    for i, (lo, hi) in enumerate(ranges):
        params[f"s{i}"], params[f"e{i}"] = _utc(lo), _utc(hi)
        spans.append(
            f"(t.window_start >= {{s{i}:DateTime64(3)}} "
            f"AND t.window_start < {{e{i}:DateTime64(3)}})"
        )
    filters = []
    for i, (dim, values) in enumerate(sorted(req.filters.items())):
        params[f"fk{i}"], params[f"fv{i}"] = dim, list(values)
        filters.append(f" AND t.dims[{{fk{i}:String}}] IN {{fv{i}:Array(String)}}")
    where_filters = "".join(filters)
    groups = []
    for i, dim in enumerate(req.group_by):
        params[f"gk{i}"] = dim
        groups.append(f"dims[{{gk{i}:String}}] AS g{i}")
    group_select = "".join(f", {g}" for g in groups)
    group_names = "".join(f", g{i}" for i in range(len(req.group_by)))
    state = ", ".join(
        f"t.{c} AS {c}"
        for c in (
            "window_start",
            "dims",
            "count",
            "sum",
            "min",
            "max",
            "q_values",
            "q_weights",
            "d_hashes",
            "d_theta",
            *(("group_key", "first_ms", "last_ms") if session else ()),
        )
    )
    range_where = (
        "t.metric = {m:String} AND t.window_ms = {w:UInt32} "
        "AND t.window_start >= {start:DateTime64(3)} "
        "AND t.window_start < {end:DateTime64(3)}"
    )
    if len(spans) > 1:
        range_where += f" AND ({' OR '.join(spans)})"
    rows = (
        f"""
    SELECT {state}, 0 AS is_batch
    FROM {database}.speed_windows AS t FINAL
    WHERE t.generation = {{g:UInt32}} AND {range_where}{where_filters}"""
        if speed_only
        else f"""
    SELECT {state}, 1 AS is_batch
    FROM {database}.batch_windows AS t
    INNER JOIN covered AS c
        ON c.hour_start = toStartOfHour(t.window_start) AND c.version = t.version
    WHERE {range_where}{where_filters} AND t.window_start <= c.until
    UNION ALL
    SELECT {state}, 0 AS is_batch
    FROM {database}.speed_windows AS t FINAL
    LEFT JOIN covered AS c ON c.hour_start = toStartOfHour(t.window_start)
    WHERE t.generation = {{g:UInt32}} AND {range_where}{where_filters}
      AND NOT (c.version != 0 AND t.window_start <= c.until)"""
    )
    if session:
        params.update(gap=metric.session_gap_ms, lo=req.start_ms, hi=req.end_ms)
        rows = _sessions_sql(rows)
        bucket = "intDiv(session_start, {step:Int64}) * {step:Int64}"
        sessions = ",\n       uniqExact(group_key, session_start) AS sessions"
    else:
        bucket = "intDiv(toUnixTimestamp64Milli(window_start), {step:Int64}) * {step:Int64}"
        sessions = ""
    covered = (
        ""
        if speed_only
        else f"""
WITH covered AS (
    SELECT hour_start, version,
           horizon - toIntervalMillisecond({{w:UInt32}}) AS until
    FROM {database}.batch_coverage FINAL
    WHERE metric = {{m:String}} AND hour_start >= toStartOfHour({{start:DateTime64(3)}})
      AND hour_start < {{end:DateTime64(3)}} AND version >= {{floor:UInt64}}
)"""
    )
    if req.as_of_ms is not None and not speed_only:  # the coverage served at that moment
        params["as_of"] = _utc(req.as_of_ms)
        covered = f"""
WITH covered AS (
    SELECT hour_start, argMax(version, recorded_at) AS version,
           argMax(horizon, recorded_at) - toIntervalMillisecond({{w:UInt32}}) AS until
    FROM {database}.batch_coverage_log
    WHERE metric = {{m:String}} AND hour_start >= toStartOfHour({{start:DateTime64(3)}})
      AND hour_start < {{end:DateTime64(3)}} AND recorded_at <= {{as_of:DateTime64(3)}}
    GROUP BY hour_start
    HAVING version >= {{floor:UInt64}}
)"""
    sql = f"""{covered}
SELECT {bucket} AS bucket
       {group_select},
       {value_sql(metric)} AS value,
       min(is_batch) AS all_batch, max(is_batch) AS any_batch, sum(count) AS n{sessions}
FROM ({rows}
)
GROUP BY bucket{group_names}
ORDER BY {(group_names[2:] + ", ") if group_names else ""}bucket
SETTINGS do_not_merge_across_partitions_select_final = 1, join_use_nulls = 0"""
    return sql, params


def _sessions_sql(rows: str) -> str:
    """Chain each group's windows into sessions; keep those starting in [lo, hi).

    A session is a run of a group's events with gaps shorter than the metric's
    ``session_gap``, cut at midnight UTC. Every stored window is no longer than the gap,
    so each falls inside one session, and rows of several source partitions or of both
    layers interleave correctly: ordered by their first event time, a row starts a new
    session when its first event comes a gap or more after the last event of every
    earlier row of the group that day (a running max over the rows before it; over no
    rows it is 0). Each row then takes its session's start, the first event time, and
    the usual roll-up merges the states of whole sessions."""
    day = "toStartOfDay(window_start)"
    return f"""
    SELECT * FROM (
        SELECT *, min(first_ms) OVER (PARTITION BY group_key, {day}, session_no)
                  AS session_start
        FROM (
            SELECT *, sum(opens) OVER (PARTITION BY group_key, {day}
                                       ORDER BY first_ms, last_ms
                                       ROWS UNBOUNDED PRECEDING) AS session_no
            FROM (
                SELECT *, first_ms - max(last_ms) OVER (
                              PARTITION BY group_key, {day} ORDER BY first_ms, last_ms
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                          >= {{gap:Int64}} AS opens
                FROM ({rows}
                ) WHERE count > 0
            )
        )
    ) WHERE session_start >= {{lo:Int64}} AND session_start < {{hi:Int64}}"""


@dataclass(frozen=True, slots=True)
class ReadSnapshot:
    horizon_ms: int | None  # the newest succeeded batch job's horizon
    generation: int  # the live speed generation
    freeze: Freeze  # what the metric's final buckets depend on
    windows: WindowTokens | None = None  # live speed windows' tokens from the tail_from asked


def grouped_points(rows: Sequence[Sequence[Any]], width: int) -> dict[Group, list[Point]]:
    """Rows ``(bucket_ms, *group values, value, all_batch, any_batch, n[, sessions])`` ->
    each group's points in time order (the form the final-bucket cache keeps)."""
    out: dict[Group, list[Point]] = {}
    for row in rows:
        value, all_batch, any_batch, n = row[1 + width : 5 + width]
        sessions = int(row[5 + width]) if len(row) > 5 + width else None
        bucket = int(row[0])
        group = tuple(str(v) for v in row[1 : 1 + width])
        points = out.get(group)
        if points is None:
            points = out[group] = []
        number = None if value is None else float(value)
        overflow = number is not None and not math.isfinite(number)
        points.append(
            Point(
                bucket,
                None if overflow else number,
                source_of(int(all_batch), int(any_batch)),
                int(n),
                sessions,
                overflow,
            )
        )
    for points in out.values():
        points.sort(key=bucket_of)
    return out


def merge_series(
    cached: Mapping[Group, list[Point]], fresh: Mapping[Group, list[Point]], group_by: Sequence[str]
) -> list[Series]:
    """Cached and freshly read points (each group's in time order) -> series by group."""
    out = []
    for group in sorted(cached.keys() | fresh.keys()):
        old, new = cached.get(group, []), fresh.get(group, [])
        points = old + new
        if old and new and new[0].t_ms < old[-1].t_ms:  # read ranges on both sides
            points.sort(key=bucket_of)
        out.append(Series(dict(zip(group_by, group, strict=True)), points))
    return out


def assemble(rows: Sequence[Sequence[Any]], group_by: Sequence[str]) -> list[Series]:
    """Rows ``(bucket_ms, *group values, value, all_batch, any_batch, n)`` -> series."""
    return merge_series({}, grouped_points(rows, len(group_by)), group_by)


@dataclass(frozen=True, slots=True)
class _Tail:
    """A read's open buckets (after the final ones), their tokens, and those reused."""

    buckets: list[int]
    tokens: dict[int, BucketToken]
    reused: dict[int, dict[Group, Point]]


class MetricReader:
    """Serving's access to the views; one per process, with its own ClickHouse client.
    Final buckets of repeated queries come from :class:`FinalBucketCache`, tail buckets
    the speed layer left alone since the last read from :class:`TailBucketCache`."""

    def __init__(
        self,
        storage: Storage,
        *,
        cache: FinalBucketCache | None = None,
        tail_cache: TailBucketCache | None = None,
        definitions: LiveDefinitions | None = None,
    ) -> None:
        self.storage = storage
        self.definitions = definitions
        self.jobs = JobStore(storage)
        self.cache = cache if cache is not None else FinalBucketCache()
        self.tail_cache = tail_cache if tail_cache is not None else TailBucketCache()
        self.tail_starts = TailStarts()

    def live_generation(self) -> int:
        return generations.live_generation(self.storage)

    def horizon_as_of(self, as_of_ms: int) -> int | None:
        """The batch horizon served at ``as_of_ms``: the newest coverage written by then."""
        rows = self.storage.query(
            f"SELECT toUnixTimestamp64Milli(max(horizon)), count() FROM "
            f"{self.storage.database}.batch_coverage_log "
            "WHERE recorded_at <= {t:DateTime64(3)}",
            {"t": _utc(as_of_ms)},
        )
        return int(rows[0][0]) if rows and int(rows[0][1]) else None

    def horizon_ms(self) -> int | None:
        horizon = self.jobs.latest_horizon()
        return int(horizon.timestamp() * 1000) if horizon else None

    def snapshot(self, metric: MetricDefinition, tail_from_ms: int | None = None) -> ReadSnapshot:
        """The state a read of ``metric`` depends on, in one statement: its small reads
        run side by side instead of one round trip each (a cached read is mostly these).
        With ``tail_from_ms``, also the tokens of the metric's speed windows from then on
        (:mod:`serving.tail_buckets`). Read before the rows it guards, so the rows are at
        least as new."""
        db = self.storage.database
        params: dict[str, Any] = {"m": metric.name, "live": generations.LIVE}
        windows = ""
        if tail_from_ms is not None:
            params.update(w=metric.window_ms, tail_from=_utc(tail_from_ms))
            windows = f"""
            UNION ALL
            SELECT 'window', * FROM ({window_tokens_sql(db)})"""
        rows = self.storage.query(
            f"""
            SELECT 'horizon' AS part, 0 AS generation,
                   toUnixTimestamp64Milli(assumeNotNull(horizon)) AS a, 0 AS b, 0 AS c
            FROM ({self.jobs.latest_horizon_sql()})
            UNION ALL
            SELECT 'live', 0, toInt64OrZero(value), 0, 0 FROM {db}.kv FINAL
            WHERE key = {{live:String}}
            UNION ALL
            SELECT 'coverage', 0, toInt64(max(version)), max(toUnixTimestamp64Milli(horizon)),
                   0
            FROM {db}.batch_coverage FINAL WHERE metric = {{m:String}}
            UNION ALL
            -- Every generation's (a few rows): filtering by the live one would need it
            -- first, as a subquery that runs before the rest instead of beside it.
            -- Retired epochs' watermarks stand still: they bound nothing.
            SELECT 'sources', generation, toInt64(count()), min(watermark_ms), 0
            FROM {db}.speed_checkpoints FINAL WHERE {epochs.live_sources_sql(db)}
            GROUP BY generation{windows}""",
            params,
        )
        found: dict[tuple[str, int], tuple[int, int]] = {}
        tokens: dict[int, WindowTokens] = {}
        for part, generation, a, b, c in rows:
            if part == "window":
                tokens.setdefault(int(generation), {})[int(a)] = (int(b), int(c))
            else:
                found[(part, generation)] = (a, b)
        horizon = found.get(("horizon", 0))
        live = int(found.get(("live", 0), (0, 0))[0])
        version, batch_horizon = found.get(("coverage", 0), (0, 0))
        sources, watermark = found.get(("sources", live), (0, 0))
        freeze = Freeze(
            (live, int(version or 0), int(sources)),
            int(watermark) if sources else None,
            int(batch_horizon or 0),
        )
        return ReadSnapshot(
            int(horizon[0]) if horizon else None,
            live,
            freeze,
            tokens.get(live, {}) if tail_from_ms is not None else None,
        )

    def series(self, req: SeriesRequest) -> tuple[list[Series], int | None]:
        with telemetry.SERVING_READ.time():
            return self._series(req)

    def _series(self, req: SeriesRequest) -> tuple[list[Series], int | None]:
        metric = req.metric
        session = metric.session_gap_ms is not None
        tail_from = None if session else self.tail_starts.earliest(metric.name)
        snapshot = self.snapshot(metric, tail_from)
        horizon, generation, freeze = snapshot.horizon_ms, snapshot.generation, snapshot.freeze
        floor = 0
        if self.definitions is not None:  # the definition that built this generation
            built, floor = self.definitions.resolve(generation, metric)
            if built is None:
                raise DefinitionChangedError(
                    f"metric {metric.name} is not defined in the generation being served; ask again"
                )
            if built != metric:
                problem = step_problem(built, req.step_ms) or next(
                    (
                        f"{d} is not a dimension of {metric.name} any more"
                        for d in (*req.group_by, *req.filters)
                        if d not in built.dimensions
                    ),
                    None,
                )
                if problem is not None or built.session_gap_ms != metric.session_gap_ms:
                    raise DefinitionChangedError(
                        f"metric {metric.name} was redefined during this read: {problem}; ask again"
                    )
                req = replace(req, metric=built)
                metric = built
        if req.as_of_ms is not None:  # a question about the past: no caches
            if floor > req.as_of_ms:
                raise AsOfError(
                    f"metric {metric.name} was redefined after as_of; as-of "
                    "reads reach back to its current definition"
                )
            horizon = self.horizon_as_of(req.as_of_ms)
            sql, params = build_sql(req, self.storage.database, generation, floor=floor)
            return assemble(self.storage.query(sql, params), req.group_by), horizon
        if session:  # a session in a final bucket may grow
            sql, params = build_sql(req, self.storage.database, generation, floor=floor)
            return assemble(self.storage.query(sql, params), req.group_by), horizon
        key = (
            metric.name,
            metric.window_ms,
            req.step_ms,
            req.group_by,
            tuple(sorted((dim, tuple(values)) for dim, values in req.filters.items())),
        )
        plan = self.cache.plan(key, freeze, req.start_ms, req.end_ms, req.step_ms)
        ranges = plan.ranges
        tail = _Tail([], {}, {})
        if ranges and plan.store_to and self.tail_cache.capacity > 0:
            tail = self._open_buckets(req, key, snapshot, tail_from, plan.store_to)
            ranges = [(lo, min(hi, plan.store_to)) for lo, hi in ranges if lo < plan.store_to]
            ranges += bucket_ranges(
                [b for b in tail.buckets if b not in tail.reused], req.step_ms, req.end_ms
            )
        fresh: dict[Group, list[Point]] = {}
        ranges = with_window_starts(ranges, metric.hop_ms)
        if ranges:
            # The usual tail (after every coverage horizon) holds speed rows only.
            speed_only = all(lo >= freeze.batch_horizon_ms for lo, _ in ranges)
            sql, params = build_sql(
                req, self.storage.database, generation, ranges, speed_only=speed_only, floor=floor
            )
            fresh = grouped_points(self.storage.query(sql, params), len(req.group_by))
            self.cache.store(key, freeze, plan, fresh, req.start_ms, req.step_ms)
        if tail.buckets:
            self.tail_cache.store(key, freeze.token, tail.tokens, tail.buckets, tail.reused, fresh)
            for by_group in tail.reused.values():
                for group, point in by_group.items():
                    fresh.setdefault(group, []).append(point)
            for points in fresh.values():
                points.sort(key=bucket_of)
        return merge_series(plan.cached, fresh, req.group_by), horizon

    def _open_buckets(
        self,
        req: SeriesRequest,
        key: ShapeKey,
        snapshot: ReadSnapshot,
        tail_from: int | None,
        lo_ms: int,
    ) -> _Tail:
        """The buckets from ``lo_ms`` (after the final ones) to the request's end, their
        tokens, and those the tail cache holds unchanged (serving.tail_buckets)."""
        metric = req.metric
        buckets = list(range(lo_ms, req.end_ms, req.step_ms))
        windows = snapshot.windows
        if windows is None or tail_from is None or tail_from > lo_ms:  # not covered
            windows = self.window_tokens(metric, snapshot.generation, lo_ms)
        tokens = bucket_tokens(windows, lo_ms, req.end_ms, req.step_ms)
        self.tail_starts.note(metric.name, key, lo_ms)
        reused = self.tail_cache.unchanged(key, snapshot.freeze.token, tokens, buckets)
        return _Tail(buckets, tokens, reused)

    def window_tokens(
        self, metric: MetricDefinition, generation: int, tail_from_ms: int
    ) -> WindowTokens:
        """The tokens of the live generation's speed windows from ``tail_from_ms`` on,
        for a read whose tail the snapshot's did not cover (the first of a metric)."""
        rows = self.storage.query(
            window_tokens_sql(self.storage.database),
            {"m": metric.name, "w": metric.window_ms, "tail_from": _utc(tail_from_ms)},
        )
        return {
            int(start): (int(n), int(digest)) for gen, start, n, digest in rows if gen == generation
        }
