"""The tail-bucket cache's bookkeeping: a bucket is answered from the cache only while
its token and the freeze token are what they were when it was read."""

from __future__ import annotations

from typing import NamedTuple

from serving.tail_buckets import TailBucketCache, TailStarts, bucket_ranges, bucket_tokens

STEP = 60_000
KEY = ("events", 60_000, STEP, ("country",), ())
FREEZE = (0, 1, 4)


class Row(NamedTuple):
    t_ms: int
    value: float


def _read(buckets: list[int], value: float = 1.0) -> dict[tuple[str, ...], list[Row]]:
    return {("DE",): [Row(b, value) for b in buckets], ("FR",): [Row(b, -value) for b in buckets]}


def test_only_buckets_with_an_unchanged_token_are_reused() -> None:
    cache = TailBucketCache()
    tail = [0, STEP, 2 * STEP]
    tokens = {0: (4, 11), STEP: (4, 12), 2 * STEP: (2, 13)}
    assert cache.unchanged(KEY, FREEZE, tokens, tail) == {}
    cache.store(KEY, FREEZE, tokens, tail, {}, _read(tail))

    moved = {**tokens, 2 * STEP: (3, 99)}  # the speed layer upserted into the last bucket
    reused = cache.unchanged(KEY, FREEZE, moved, tail)
    assert sorted(reused) == [0, STEP]
    assert reused[STEP] == {("DE",): Row(STEP, 1.0), ("FR",): Row(STEP, -1.0)}
    assert (cache.reused, cache.reread) == (2, 4)


def test_a_new_freeze_token_or_shape_reuses_nothing() -> None:
    cache = TailBucketCache()
    tail = [0, STEP]
    tokens = {0: (1, 1), STEP: (1, 2)}
    cache.store(KEY, FREEZE, tokens, tail, {}, _read(tail))
    assert cache.unchanged(KEY, (0, 2, 4), tokens, tail) == {}  # a new batch version
    assert cache.unchanged(KEY, (1, 1, 4), tokens, tail) == {}  # a replay's generation
    assert cache.unchanged(("other", *KEY[1:]), FREEZE, tokens, tail) == {}


def test_a_bucket_read_empty_is_kept_empty_and_left_buckets_drop() -> None:
    cache = TailBucketCache()
    cache.store(KEY, FREEZE, {STEP: (1, 5)}, [0, STEP], {}, _read([STEP]))
    assert cache.unchanged(KEY, FREEZE, {STEP: (1, 5)}, [0, STEP]) == {
        0: {},
        STEP: {("DE",): Row(STEP, 1.0), ("FR",): Row(STEP, -1.0)},
    }
    # A row arrives in the empty bucket: its token is no longer the empty one.
    assert 0 not in cache.unchanged(KEY, FREEZE, {0: (1, 7), STEP: (1, 5)}, [0, STEP])

    # The tail moves on (bucket 0 became final); a reused bucket keeps its rows.
    reused = cache.unchanged(KEY, FREEZE, {STEP: (1, 5)}, [STEP, 2 * STEP])
    cache.store(
        KEY,
        FREEZE,
        {STEP: (1, 5), 2 * STEP: (1, 6)},
        [STEP, 2 * STEP],
        reused,
        _read([2 * STEP], 2.0),
    )
    assert cache.unchanged(
        KEY, FREEZE, {0: (0, 0), STEP: (1, 5), 2 * STEP: (1, 6)}, [0, STEP, 2 * STEP]
    ) == {
        STEP: {("DE",): Row(STEP, 1.0), ("FR",): Row(STEP, -1.0)},
        2 * STEP: {("DE",): Row(2 * STEP, 2.0), ("FR",): Row(2 * STEP, -2.0)},
    }


def test_least_recently_used_shapes_leave_first_and_capacity_zero_keeps_nothing() -> None:
    cache = TailBucketCache(capacity=2)
    tokens = {0: (1, 1)}
    for name in ("a", "b", "c"):
        cache.store((name,), FREEZE, tokens, [0], {}, _read([0]))
    assert cache.unchanged(("a",), FREEZE, tokens, [0]) == {}
    assert cache.unchanged(("c",), FREEZE, tokens, [0]) != {}
    off = TailBucketCache(capacity=0)
    off.store(KEY, FREEZE, tokens, [0], {}, _read([0]))
    assert off.unchanged(KEY, FREEZE, tokens, [0]) == {}


def test_bucket_ranges_join_adjacent_buckets_and_stop_at_the_end() -> None:
    assert bucket_ranges([], STEP, 10 * STEP) == []
    assert bucket_ranges([0, STEP, 3 * STEP], STEP, 10 * STEP) == [
        (0, 2 * STEP),
        (3 * STEP, 4 * STEP),
    ]
    assert bucket_ranges([3 * STEP, 4 * STEP], STEP, 4 * STEP + 5) == [(3 * STEP, 4 * STEP + 5)]


def test_bucket_tokens_combine_the_windows_of_each_bucket_in_range() -> None:
    windows = {0: (2, 5), STEP: (1, 2**64 - 1), 2 * STEP: (3, 7), 5 * STEP: (1, 1)}
    assert bucket_tokens(windows, 0, 5 * STEP, STEP) == {
        0: (2, 5),
        STEP: (1, 2**64 - 1),
        2 * STEP: (3, 7),
    }
    # 2-minute buckets from minute 0; the sum wraps as ClickHouse's does.
    assert bucket_tokens(windows, 0, 6 * STEP, 2 * STEP) == {
        0: (3, 4),
        2 * STEP: (3, 7),
        4 * STEP: (1, 1),
    }
    assert bucket_tokens(windows, STEP, 2 * STEP, STEP) == {STEP: (1, 2**64 - 1)}


def test_tail_starts_cover_every_shape_read_lately() -> None:
    starts = TailStarts(keep_s=60.0)
    assert starts.earliest("events") is None
    starts.note("events", KEY, 10 * STEP)
    starts.note("events", ("events", 60_000, 5 * STEP, (), ()), 5 * STEP)
    starts.note("revenue", KEY, 2 * STEP)
    assert starts.earliest("events") == 5 * STEP
    starts.note("events", KEY, 11 * STEP)  # the watermark moved on
    assert starts.earliest("events") == 5 * STEP
    starts.keep_s = -1.0  # every shape was read too long ago
    assert starts.earliest("events") is None
