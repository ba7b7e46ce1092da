"""The final-bucket cache's bookkeeping: which buckets it may answer, which ranges are
left to read, and when an entry no longer counts."""

from __future__ import annotations

from typing import NamedTuple

from serving.final_buckets import FinalBucketCache, Freeze, Rows, final_span

STEP = 60_000
KEY = ("events", 60_000, STEP, ("country",), ())


class Row(NamedTuple):
    t_ms: int
    value: float


def _list(lo: int, hi: int, group: str = "DE") -> list[Row]:
    return [Row(b, float(b // STEP) + (0.5 if group == "FR" else 0)) for b in range(lo, hi, STEP)]


def _rows(lo: int, hi: int) -> Rows:
    """Two groups' rows, each in bucket order."""
    return {("DE",): _list(lo, hi), ("FR",): _list(lo, hi, "FR")}


def test_final_span_holds_whole_buckets_that_end_by_the_watermark() -> None:
    assert final_span(30_000, 600_000, STEP, 400_000) == (60_000, 360_000)
    assert final_span(0, 600_000, STEP, 1_000_000) == (0, 600_000)  # capped by the end
    assert final_span(0, 600_000, STEP, 50_000) is None  # no bucket has ended yet
    assert final_span(0, 600_000, STEP, None) is None  # no watermark: nothing is final


def test_a_miss_reads_everything_then_a_hit_reads_only_the_edges() -> None:
    cache = FinalBucketCache()
    freeze = Freeze((0, 1, 4), 400_000)
    first = cache.plan(KEY, freeze, 30_000, 600_000, STEP)
    assert first.cached == {} and first.ranges == [(30_000, 600_000)]
    read = _rows(60_000, 600_000)
    read[("DE",)].insert(0, Row(0, 9.0))  # a bucket that starts before the request
    cache.store(KEY, freeze, first, read, 30_000, STEP)

    again = cache.plan(KEY, freeze, 30_000, 600_000, STEP)
    assert again.cached == _rows(60_000, 360_000)
    assert again.ranges == [(30_000, 60_000), (360_000, 600_000)]
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_entry_slides_forward_with_the_watermark_and_the_range() -> None:
    cache = FinalBucketCache()
    freeze = Freeze((0, 1, 4), 400_000)
    plan = cache.plan(KEY, freeze, 0, 600_000, STEP)
    cache.store(KEY, freeze, plan, _rows(0, 600_000), 0, STEP)
    later = Freeze((0, 1, 4), 520_000)  # the watermark moved: two more buckets final
    plan = cache.plan(KEY, later, 120_000, 720_000, STEP)
    assert plan.cached == _rows(120_000, 360_000)
    assert plan.ranges == [(360_000, 720_000)]
    cache.store(KEY, later, plan, _rows(360_000, 720_000), 120_000, STEP)
    plan = cache.plan(KEY, later, 120_000, 720_000, STEP)
    assert plan.cached == _rows(120_000, 480_000) and plan.ranges == [(480_000, 720_000)]


def test_a_new_batch_version_a_new_generation_or_a_new_partition_drops_the_entry() -> None:
    freeze = Freeze((0, 1, 4), 400_000)
    for changed in [(0, 2, 4), (1, 1, 4), (0, 1, 5)]:
        cache = FinalBucketCache()
        plan = cache.plan(KEY, freeze, 0, 600_000, STEP)
        cache.store(KEY, freeze, plan, _rows(0, 600_000), 0, STEP)
        plan = cache.plan(KEY, Freeze(changed, 400_000), 0, 600_000, STEP)
        assert plan.cached == {} and plan.ranges == [(0, 600_000)]


def test_least_recently_used_shapes_leave_first() -> None:
    cache = FinalBucketCache(capacity=2)
    freeze = Freeze((0, 1, 4), 400_000)
    for name in ("a", "b", "a", "c"):
        key = (name, *KEY[1:])
        plan = cache.plan(key, freeze, 0, 600_000, STEP)
        cache.store(key, freeze, plan, _rows(0, 600_000), 0, STEP)
    assert cache.plan(("a", *KEY[1:]), freeze, 0, 600_000, STEP).cached
    assert not cache.plan(("b", *KEY[1:]), freeze, 0, 600_000, STEP).cached


def test_the_cache_keeps_at_most_max_rows_rows() -> None:
    cache = FinalBucketCache(max_rows=30)
    freeze = Freeze((0, 1, 4), 600_000)
    for name in ("a", "b"):
        key = (name, *KEY[1:])
        plan = cache.plan(key, freeze, 0, 600_000, STEP)
        cache.store(key, freeze, plan, _rows(0, 600_000), 0, STEP)  # 20 rows each
    assert not cache.plan(("a", *KEY[1:]), freeze, 0, 600_000, STEP).cached
    assert _rows(0, 600_000) == cache.plan(("b", *KEY[1:]), freeze, 0, 600_000, STEP).cached
