"""A cache of the buckets after the final ones (the tail), each kept with a token of the
speed rows it was read from, so a read asks ClickHouse again only for the tail buckets
the speed layer changed since.

Final buckets (:mod:`serving.final_buckets`) never change. Tail buckets do, but between
two reads a live speed layer usually touches one or two of them (the current minute, and
the one before for events a few seconds out of order), not all six a five-minute allowed
lateness keeps open; re-reading those six is most of a cached read (for a distinct or a
quantile metric, merging thousands of sketch values per bucket).

A bucket's token is the number of its raw speed rows and a hash of their keys and
versions, summed, as stored before FINAL collapses them (:func:`window_tokens_sql`, read
in the statement that reads the rest of a read's state): every upsert adds a row and
changes it; a background merge removes rows and changes it too, which costs a re-read,
never a stale answer. Tokens are read before the rows they guard, so cached rows are at
least as new as their token. Batch rows change what is served only
with a new coverage version, and the generation only with a replay's swap; both are in
the :class:`~serving.final_buckets.Freeze` token, and any change drops the shape's entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from serving.final_buckets import Group, Row, ShapeKey
from stratum import telemetry

BucketToken = tuple[int, int]  # (raw rows, sum of their key-and-version hashes)
EMPTY: BucketToken = (0, 0)  # a bucket with no speed rows


WindowTokens = dict[int, BucketToken]  # window start (ms) -> its token
HASH_MASK = 2**64 - 1  # ClickHouse's sum of UInt64 wraps


def window_tokens_sql(database: str) -> str:
    """``generation, window start (ms), rows, hash sum`` per speed window of one metric
    from ``tail_from`` on (parameters: m, w, tail_from), every generation's: a reader
    that fetches it with the live generation cannot filter by it."""
    return f"""
SELECT generation, toUnixTimestamp64Milli(window_start), toInt64(count()),
       sum(cityHash64(group_key, source_id, through_offset))
FROM {database}.speed_windows
WHERE metric = {{m:String}} AND window_ms = {{w:UInt32}}
  AND window_start >= {{tail_from:DateTime64(3)}}
GROUP BY generation, window_start"""


def bucket_tokens(
    windows: WindowTokens, lo_ms: int, hi_ms: int, step_ms: int
) -> dict[int, BucketToken]:
    """The tokens of the buckets in ``[lo_ms, hi_ms)``: their windows' (starting before
    ``hi_ms``) combined."""
    out: dict[int, BucketToken] = {}
    for start, (rows, digest) in windows.items():
        if lo_ms <= start < hi_ms:
            bucket = start - start % step_ms
            have = out.get(bucket, EMPTY)
            out[bucket] = (have[0] + rows, (have[1] + digest) & HASH_MASK)
    return out


@dataclass(slots=True)
class _Entry:
    freeze_token: tuple[int, int, int]
    buckets: dict[int, tuple[BucketToken, dict[Group, Row]]]  # bucket -> token, rows


class TailBucketCache:
    """Per query shape, the last read rows of each tail bucket with their tokens; least
    recently used shapes leave first once there are more than ``capacity``."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[ShapeKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.reused = self.reread = 0  # tail buckets answered from the cache / read again

    def unchanged(
        self,
        key: ShapeKey,
        freeze_token: tuple[int, int, int],
        tokens: Mapping[int, BucketToken],
        buckets: Sequence[int],
    ) -> dict[int, dict[Group, Row]]:
        """Of ``buckets``, those cached with the token they have now -> rows by group."""
        found: dict[int, dict[Group, Row]] = {}
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.freeze_token == freeze_token:
                self._entries.move_to_end(key)
                for bucket in buckets:
                    kept = entry.buckets.get(bucket)
                    if kept is not None and kept[0] == tokens.get(bucket, EMPTY):
                        found[bucket] = kept[1]
            self.reused += len(found)
            self.reread += len(buckets) - len(found)
        telemetry.SERVING_TAIL_BUCKETS.labels("reused").inc(len(found))
        telemetry.SERVING_TAIL_BUCKETS.labels("read").inc(len(buckets) - len(found))
        return found

    def store(
        self,
        key: ShapeKey,
        freeze_token: tuple[int, int, int],
        tokens: Mapping[int, BucketToken],
        buckets: Sequence[int],
        reused: Mapping[int, dict[Group, Row]],
        read: Mapping[Group, list[Row]],
    ) -> None:
        """The tail as it is now: ``buckets``, each either reused or among the rows just
        ``read`` (per group, any order); buckets that left the tail are dropped."""
        if self.capacity <= 0:
            return
        wanted = set(buckets)
        fresh: dict[int, dict[Group, Row]] = {b: {} for b in wanted if b not in reused}
        for group, rows in read.items():
            for row in rows:
                if (by_group := fresh.get(row.t_ms)) is not None:
                    by_group[group] = row
        kept = {b: (tokens.get(b, EMPTY), rows) for b, rows in (*reused.items(), *fresh.items())}
        with self._lock:
            self._entries[key] = _Entry(freeze_token, kept)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class TailStarts:
    """Per metric, where the tails of the shapes read in the last ``keep_s`` began. A
    read's snapshot fetches window tokens from the earliest of its metric's, so every
    shape being read finds its next tail covered (the watermark only moves on), and no
    more windows are hashed than those tails hold."""

    def __init__(self, keep_s: float = 60.0) -> None:
        self.keep_s = keep_s
        self._starts: dict[str, dict[ShapeKey, tuple[int, float]]] = {}
        self._lock = threading.Lock()

    def earliest(self, metric: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            shapes = self._starts.get(metric, {})
            for shape in [s for s, (_, seen) in shapes.items() if now - seen > self.keep_s]:
                del shapes[shape]
            return min((start for start, _ in shapes.values()), default=None)

    def note(self, metric: str, shape: ShapeKey, start_ms: int) -> None:
        with self._lock:
            self._starts.setdefault(metric, {})[shape] = (start_ms, time.monotonic())


def bucket_ranges(buckets: Sequence[int], step_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Sorted bucket starts -> the fewest ``[lo, hi)`` ranges of window starts covering
    them (adjacent buckets join), none reaching past ``end_ms``."""
    ranges: list[tuple[int, int]] = []
    for bucket in buckets:
        hi = min(bucket + step_ms, end_ms)
        if ranges and ranges[-1][1] == bucket:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((bucket, hi))
    return ranges
