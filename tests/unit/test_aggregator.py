"""The speed layer's per-partition window state: event time, lateness, re-delivery."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from speed_layer.aggregator import PartitionAggregator
from stratum.metrics import MetricDefinition, parse_catalog
from tests.reference import state_sample

MINUTE = 60_000
T0 = 1_795_309_200_000  # a minute boundary
FAR_FUTURE = 2**50


def _metrics() -> tuple[MetricDefinition, ...]:
    return parse_catalog(
        {
            "metric": [
                {"name": "events", "aggregation": "count", "dimensions": ["country"]},
                {
                    "name": "revenue",
                    "aggregation": "sum",
                    "field": "amount",
                    "where": {"type": "purchase"},
                },
                {"name": "p95", "aggregation": "quantile", "quantile": 0.95, "field": "latency_ms"},
            ]
        }
    ).metrics


def _ev(i: int, ts: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "ts": ts, "type": "view", "country": "DE", **extra}


def _counts(agg: PartitionAggregator) -> dict[tuple[str, int, tuple[str, ...]], int]:
    return {k: s.count for k, s in agg.windows.items()}


def test_events_land_in_their_event_time_window_whatever_the_arrival_order() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(0, [_ev(1, T0 + MINUTE + 5), _ev(2, T0 + 10)], now_ms=FAR_FUTURE)
    agg.add(1, [_ev(3, T0 + 20, country="FR")], now_ms=FAR_FUTURE)
    assert _counts(agg) == {
        ("events", T0, ("DE",)): 1,
        ("events", T0 + MINUTE, ("DE",)): 1,
        ("events", T0, ("FR",)): 1,
    }


def test_sum_and_quantile_take_only_matching_events_with_the_field() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(
        0,
        [
            _ev(1, T0, type="purchase", amount=10.5, latency_ms=100),
            _ev(2, T0, type="purchase"),
            _ev(3, T0, amount=99.0, latency_ms=300),
        ],
        now_ms=FAR_FUTURE,
    )
    revenue = agg.windows[("revenue", T0, ())]
    assert (revenue.count, revenue.sum) == (1, 10.5)
    p95 = agg.windows[("p95", T0, ())]
    values, weights = state_sample(p95)
    assert p95.count == 2 and sorted(values) == [100.0, 300.0] and weights == [1, 1]


@pytest.mark.parametrize(
    ("late_ts", "is_late"),
    [
        (T0 + 2 * MINUTE, False),  # window [2m, 3m) ends after the watermark (2m)
        (T0 + MINUTE + 59_999, True),  # window [1m, 2m) ends at the watermark: final
        (T0 + 5, True),  # window [0, 1m): long final
    ],
)
def test_events_for_windows_the_watermark_passed_are_late(late_ts: int, is_late: bool) -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(0, [_ev(1, T0 + 3 * MINUTE)], now_ms=FAR_FUTURE)  # watermark = T0 + 2m
    result = agg.add(1, [_ev(2, late_ts)], now_ms=FAR_FUTURE)
    assert (len(result.late) == 1) is is_late
    assert (("events", late_ts - late_ts % MINUTE, ("DE",)) in agg.windows) is not is_late


def test_the_watermark_never_runs_ahead_of_the_wall_clock() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(0, [_ev(1, T0 + 10 * 3_600_000)], now_ms=T0)  # a clock 10 h fast
    assert agg.watermark_ms == T0 - MINUTE
    assert agg.add(1, [_ev(2, T0)], now_ms=T0).late == []


def test_a_redelivered_message_is_not_counted_twice() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(5, [_ev(1, T0)], now_ms=FAR_FUTURE)
    agg.add(5, [_ev(1, T0)], now_ms=FAR_FUTURE)
    agg.add(3, [_ev(0, T0)], now_ms=FAR_FUTURE)
    assert _counts(agg)[("events", T0, ("DE",))] == 1


def test_recovery_skips_per_window_what_the_stored_state_already_holds() -> None:
    """Crash after window A (through offset 7) was stored but before the checkpoint
    (offset 4) was: offsets 5..7 come again; A must not count them twice, B must."""
    first = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    for offset in range(8):
        first.add(offset, [_ev(offset, T0)], now_ms=FAR_FUTURE)
    stored_a = first.windows[("events", T0, ("DE",))]
    assert stored_a.count == 8

    resumed = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    resumed.recover(
        through_offset=4, max_event_ms=T0, rows=[(("events", T0, ("DE",)), stored_a, 7)]
    )
    for offset in range(5, 10):
        resumed.add(
            offset, [_ev(offset, T0), _ev(100 + offset, T0, country="FR")], now_ms=FAR_FUTURE
        )
    assert resumed.windows[("events", T0, ("DE",))].count == 10
    assert resumed.windows[("events", T0, ("FR",))].count == 5


def test_drain_restore_and_evict() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=0)
    agg.add(0, [_ev(1, T0)], now_ms=FAR_FUTURE)
    rows = agg.drain()
    assert {r.key[0] for r in rows} == {"events"} and not any(r.final for r in rows)
    agg.restore(rows)  # a failed write: the same windows stay dirty
    assert agg.drain()
    agg.add(1, [_ev(2, T0 + MINUTE)], now_ms=FAR_FUTURE)  # watermark = T0 + 1m: T0 final
    rows = agg.drain()
    assert {(r.key[1], r.final) for r in rows} == {(T0, True), (T0 + MINUTE, False)}
    assert agg.evict_final() == 1
    assert set(agg.windows) == {("events", T0 + MINUTE, ("DE",))}


def test_an_idle_partition_closes_its_last_window_and_reports_it_final() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    agg.add(0, [_ev(1, T0 + 30_000)], now_ms=T0 + 31_000)
    agg.drain()
    assert not agg.advance_idle(now_ms=T0 + 35_000, idle_timeout_ms=10_000)  # not idle yet
    # Quiet until the wall clock is past the window's end + lateness + idle timeout.
    assert agg.advance_idle(now_ms=T0 + 2 * MINUTE + 11_000, idle_timeout_ms=10_000)
    rows = agg.drain()
    assert [(r.key, r.final) for r in rows] == [(("events", T0, ("DE",)), True)]
    assert agg.evict_final() == 1 and agg.windows == {}


def test_recent_duplicates_are_dropped_and_counted() -> None:
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE, dedup_capacity=2)
    result = agg.add(0, [_ev(1, T0), _ev(1, T0), _ev(2, T0)], now_ms=FAR_FUTURE)
    assert (result.aggregated, result.duplicates) == (2, 1)
    agg.add(1, [_ev(3, T0), _ev(4, T0)], now_ms=FAR_FUTURE)  # e1 falls out of memory
    assert agg.add(2, [_ev(1, T0)], now_ms=FAR_FUTURE).duplicates == 0
    assert _counts(agg)[("events", T0, ("DE",))] == 5


def test_colliding_id_hashes_never_drop_a_distinct_event(monkeypatch) -> None:
    """Recent ids are probed by hash; every id hashing alike must still only drop true
    duplicates."""
    import speed_layer.aggregator as aggregator

    monkeypatch.setattr(
        aggregator, "_id_hashes", lambda ids: pl.Series([7] * ids.len(), dtype=pl.UInt64)
    )
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE, dedup_capacity=3)
    assert agg.add(0, [_ev(1, T0), _ev(2, T0)], now_ms=FAR_FUTURE).duplicates == 0
    assert agg.add(1, [_ev(3, T0), _ev(2, T0)], now_ms=FAR_FUTURE).duplicates == 1
    result = agg.add(2, [_ev(4, T0), _ev(1, T0), _ev(5, T0)], now_ms=FAR_FUTURE)
    assert (result.aggregated, result.duplicates) == (2, 1)
    assert _counts(agg)[("events", T0, ("DE",))] == 5


def test_a_frame_out_of_offset_order_is_taken_in_offset_order() -> None:
    """Watermarks follow offsets even if a frame's rows do not; late events are the
    frame's own rows."""
    from stratum.event_frames import events_frame

    frame = events_frame([(1, _ev(1, T0)), (0, _ev(2, T0 + 10 * MINUTE))])
    agg = PartitionAggregator(_metrics(), lateness_ms=MINUTE)
    result = agg.add_frame(frame, 1, FAR_FUTURE)
    assert [e["event_id"] for e in result.late] == ["e1"] and result.late_offsets == [1]
    assert _counts(agg) == {("events", T0 + 10 * MINUTE, ("DE",)): 1}


def test_hopping_windows_take_every_window_holding_the_event() -> None:
    metric = parse_catalog(
        {"metric": [{"name": "h", "aggregation": "count", "windows": ["3m"], "hop": "1m"}]}
    ).metrics
    agg = PartitionAggregator(metric, lateness_ms=0)
    agg.add(0, [_ev(1, T0 + 30_000)], now_ms=FAR_FUTURE)
    assert sorted(k[1] for k in agg.windows) == [T0 - 2 * MINUTE, T0 - MINUTE, T0]


def test_a_batch_of_many_messages_folds_like_event_by_event() -> None:
    """One frame of many messages (the worker's batches) against a plain reference:
    every event counted once in its window, late ones by their message's watermark."""
    import orjson

    from stratum.event_frames import decode_messages

    metrics = _metrics()
    events = [
        _ev(
            i,
            T0 + (i * 7_919) % (6 * MINUTE),
            country=("DE", "FR", "IT")[i % 3],
            type=("view", "purchase")[i % 2],
            amount=float(i % 13),
            latency_ms=float(i % 101),
        )
        for i in range(20_000)
    ]
    messages = [
        (offset, b"\n".join(orjson.dumps(e) for e in events[s : s + 500]))
        for offset, s in enumerate(range(0, len(events), 500))
    ]
    agg = PartitionAggregator(metrics, lateness_ms=2 * MINUTE, dedup_capacity=10_000)
    result = agg.add_frame(decode_messages(messages, now_ms=FAR_FUTURE).frame, 41, FAR_FUTURE)

    expected: dict[tuple[str, int, tuple[str, ...]], list[float]] = {}
    late = 0
    newest = None
    for s in range(0, len(events), 500):
        mark = None if newest is None else newest - 2 * MINUTE
        batch = events[s : s + 500]
        for e in batch:
            start = e["ts"] - e["ts"] % MINUTE
            if mark is not None and start + MINUTE <= mark:
                late += 1
                continue
            for name, group, value in (
                ("events", (e["country"],), None),
                ("revenue", (), e["amount"] if e["type"] == "purchase" else "skip"),
                ("p95", (), e["latency_ms"]),
            ):
                if value == "skip":
                    continue
                slot = expected.setdefault((name, start, group), [0, 0.0])
                slot[0] += 1
                slot[1] += value or 0.0
        newest = max([newest or 0, *[e["ts"] for e in batch]])
    assert late == len(result.late) > 0 and result.aggregated == len(events) - late
    message_of = {e["event_id"]: i // 500 for i, e in enumerate(events)}
    assert result.late_offsets == [message_of[e["event_id"]] for e in result.late]
    assert len(set(result.late_offsets)) > 1  # late events of several messages
    assert {k: [s.count, s.sum] for k, s in agg.windows.items()} == expected
    assert agg.through_offset == 41
