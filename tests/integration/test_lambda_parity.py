"""The Lambda check: one metric definition, two layers, the same numbers.

Random in-order streams and random definitions go through the speed layer's code
(``PartitionAggregator`` → ``SpeedStore`` → chDB) and the batch layer's code (Parquet
archive → Polars ``recompute`` → chDB); both are read back with serving's roll-up SQL.
Exact aggregations must agree exactly; sketches (KLL quantiles, KMV distinct) are exact
below their capacity, which these streams stay under, and within their documented error
above it (see ``test_sketch_error_stays_within_the_documented_bound``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from batch_layer.jobs.recompute import recompute
from serving.queries import MetricReader, SeriesRequest, value_sql
from speed_layer.aggregator import PartitionAggregator
from speed_layer.store import SpeedStore
from stratum.archive import archive_root, write_partition_range
from stratum.metrics import Aggregation, MetricCatalog, MetricDefinition, parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from stratum.storage.jobs import JobStore, utc_now
from tests.integration.batch_support import VIEW_TABLES, own_database, reset_batch_state
from tests.reference import matches, measure, weighted_quantile

pytestmark = pytest.mark.integration
MINUTE = 60_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z, an hour boundary
COUNTRIES = ["DE", "FR", "US"]
DEVICES = ["ios", "web"]
TYPES = ["view", "buy"]


@pytest.fixture(scope="module")
def parity(session_dir: Path, clickhouse_url: str) -> Iterator[tuple[Settings, Storage]]:
    with own_database(session_dir, clickhouse_url, "parity") as pair:
        yield pair


def _reset(settings: Settings, storage: Storage) -> None:
    reset_batch_state(settings, storage, VIEW_TABLES)


metric_strategy = st.builds(
    lambda agg, dims, where, q, window: {
        "name": "m",
        "aggregation": agg,
        "dimensions": dims,
        "windows": [window],
        **({"where": {"type": where}} if where else {}),
        **(
            {"field": "user"}
            if agg == "distinct"
            else {}
            if agg == "count"
            else {"field": "amount"}
        ),
        **({"quantile": q} if agg == "quantile" else {}),
    },
    st.sampled_from([a.value for a in Aggregation]),
    st.lists(st.sampled_from(["country", "device"]), unique=True, max_size=2),
    st.sampled_from([None, "view", "buy"]),
    st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    st.sampled_from(["1m", "5m"]),
)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """In-order events over ~20 minutes; some lack the measured field or a dimension."""
    n = draw(st.integers(1, 120))
    gaps = draw(st.lists(st.integers(0, 20_000), min_size=n, max_size=n))
    events, ts = [], T0
    for i, gap in enumerate(gaps):
        ts += gap
        event: dict[str, Any] = {
            "event_id": f"p{i}",
            "ts": ts,
            "type": draw(st.sampled_from(TYPES)),
            "user": f"u{draw(st.integers(0, 30))}",
        }
        if draw(st.booleans()) or i == 0:
            event["country"] = draw(st.sampled_from(COUNTRIES))
        event["device"] = draw(st.sampled_from(DEVICES))
        if draw(st.integers(0, 9)):
            event["amount"] = draw(st.sampled_from([1, 2.5, 3, 7.25, 10, 99.5, 1000]))
        events.append(event)
    return events


def _run_speed(
    storage: Storage,
    metric: MetricDefinition,
    events: list[dict[str, Any]],
    rng: random.Random,
    flush_p: float = 0.3,
) -> None:
    """The speed layer's code path, message by message, flushing now and then."""
    agg = PartitionAggregator([metric], lateness_ms=0)
    store = SpeedStore(storage, generation=0)
    offset = 0
    index = 0
    while index < len(events):
        size = rng.randint(1, 25)
        agg.add(offset, events[index : index + size], now_ms=2**50)
        index += size
        offset += 1
        if rng.random() < flush_p:
            store.write("t:0", agg.drain(), agg.checkpoint())
            agg.evict_final()
    store.write("t:0", agg.drain(), agg.checkpoint())


def _values(
    storage: Storage, metric: MetricDefinition, table: str
) -> dict[tuple[int, str], tuple[float | None, int]]:
    final = "FINAL" if table == "speed_windows" else ""
    rows = storage.query(
        f"SELECT toUnixTimestamp64Milli(window_start), group_key, {value_sql(metric)}, "
        f"sum(count) FROM {storage.database}.{table} {final} "
        "WHERE metric = {m:String} GROUP BY window_start, group_key",
        {"m": metric.name},
    )
    return {
        (int(t), g): (
            None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v),
            int(n),
        )
        for t, g, v, n in rows
    }


@hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(definition=metric_strategy, events=streams(), seed=st.integers(0, 2**16))
def test_speed_and_batch_agree_on_in_order_streams(
    parity: tuple[Settings, Storage],
    definition: dict[str, Any],
    events: list[dict[str, Any]],
    seed: int,
) -> None:
    settings, storage = parity
    _reset(settings, storage)
    catalog = parse_catalog({"metric": [definition]})
    metric = catalog.metrics[0]
    _run_speed(storage, metric, events, random.Random(seed))
    write_partition_range(
        archive_root(settings.data_dir), "t", 0, [(i // 10, e) for i, e in enumerate(events)]
    )
    result = recompute(settings, catalog, storage)

    speed = _values(storage, metric, "speed_windows")
    batch = _values(storage, metric, "batch_windows")
    assert result.horizon is not None
    horizon_ms = int(result.horizon.timestamp() * 1000)
    speed = {k: v for k, v in speed.items() if k[0] + metric.window_ms <= horizon_ms}
    assert set(speed) == set(batch)
    for key, (value, count) in batch.items():
        assert speed[key][1] == count, key
        assert speed[key][0] == pytest.approx(value, rel=1e-9), key


def _rollup_reference(metric: MetricDefinition, events: list[dict[str, Any]]) -> float | None:
    picked = [e for e in events if matches(metric, e)]
    if not picked:
        return None
    if metric.aggregation == Aggregation.COUNT:
        return float(len(picked))
    if metric.aggregation == Aggregation.DISTINCT:
        return float(len({e[metric.field] for e in picked}))  # type: ignore[index]
    values = [measure(e[metric.field]) or 0.0 for e in picked]  # type: ignore[index]
    match metric.aggregation:
        case Aggregation.SUM:
            return sum(values)
        case Aggregation.MIN:
            return min(values)
        case Aggregation.MAX:
            return max(values)
        case Aggregation.AVG:
            return sum(values) / len(values)
    return weighted_quantile(values, [1] * len(values), metric.quantile or 0.5)


ALL_KINDS = parse_catalog(
    {
        "metric": [
            {"name": "c", "aggregation": "count", "dimensions": ["country"]},
            {"name": "s", "aggregation": "sum", "field": "amount", "dimensions": ["country"]},
            {"name": "mn", "aggregation": "min", "field": "amount", "dimensions": ["country"]},
            {"name": "mx", "aggregation": "max", "field": "amount", "dimensions": ["country"]},
            {"name": "a", "aggregation": "avg", "field": "amount", "dimensions": ["country"]},
            {
                "name": "q",
                "aggregation": "quantile",
                "field": "amount",
                "quantile": 0.9,
                "dimensions": ["country"],
            },
            {"name": "d", "aggregation": "distinct", "field": "user", "dimensions": ["country"]},
        ]
    }
)


@pytest.mark.parametrize("layer", ["speed", "batch"])
def test_rollups_to_an_hour_and_to_the_total_equal_the_direct_computation(
    parity: tuple[Settings, Storage], layer: str
) -> None:
    settings, storage = parity
    _reset(settings, storage)
    rng = random.Random(7)
    events = [
        {
            "event_id": f"r{i}",
            "ts": T0 + i * 1_500,
            "type": "view",
            "country": rng.choice(COUNTRIES),
            "user": f"u{rng.randrange(60)}",
            "amount": float(rng.randrange(1, 500)),
        }
        for i in range(2_400)
    ]  # one hour
    late_clock = {"event_id": "clock", "ts": T0 + 3_600_000, "type": "tick"}
    catalog = MetricCatalog(metrics=ALL_KINDS.metrics)
    if layer == "speed":
        for metric in catalog.metrics:
            _run_speed(storage, metric, events, rng, flush_p=0.02)
    else:
        write_partition_range(
            archive_root(settings.data_dir),
            "t",
            0,
            [(i, e) for i, e in enumerate([*events, late_clock])],
        )
        result = recompute(settings, catalog, storage)
        jobs = JobStore(storage)  # serving reads the horizon of the last succeeded run
        jobs.save(
            jobs.create("batch", "api").model_copy(
                update={"state": "succeeded", "horizon": result.horizon, "finished_at": utc_now()}
            )
        )
    reader = MetricReader(storage)
    for metric in catalog.metrics:
        by_country = reader.series(
            SeriesRequest(metric, T0, T0 + 3_600_000, 3_600_000, ("country",))
        )[0]
        total = reader.series(SeriesRequest(metric, T0, T0 + 3_600_000, 3_600_000))[0]
        assert {p.source for s in [*by_country, *total] for p in s.points} == {layer}
        assert total[0].points[0].value == pytest.approx(_rollup_reference(metric, events))
        for series in by_country:
            country = series.group["country"]
            expected = _rollup_reference(metric, [e for e in events if e["country"] == country])
            assert series.points[0].value == pytest.approx(expected), (metric.name, country)
    storage.command(f"TRUNCATE TABLE {storage.database}.jobs")


def test_sketch_error_stays_within_the_documented_bound(parity: tuple[Settings, Storage]) -> None:
    """Beyond sketch capacity: KLL k=200 rank error and KMV k=4096 relative error."""
    settings, storage = parity
    _reset(settings, storage)
    rng = random.Random(11)
    events = [
        {
            "event_id": f"s{i}",
            "ts": T0 + i % MINUTE,
            "type": "view",
            "user": f"u{rng.randrange(40_000)}",
            "amount": rng.lognormvariate(3, 1),
        }
        for i in range(60_000)
    ]
    catalog = parse_catalog(
        {
            "metric": [
                {"name": "q", "aggregation": "quantile", "field": "amount", "quantile": 0.95},
                {"name": "d", "aggregation": "distinct", "field": "user"},
            ]
        }
    )
    for metric in catalog.metrics:
        _run_speed(storage, metric, events, rng, flush_p=0.001)
    q_metric, d_metric = catalog.metrics
    p95 = _values(storage, q_metric, "speed_windows")[(T0, "")][0]
    amounts = sorted(e["amount"] for e in events)
    rank = sum(1 for a in amounts if a <= (p95 or 0)) / len(amounts)
    assert abs(rank - 0.95) < 0.02  # KLL k=200: ~1.3 % normalised rank error (99 %)
    distinct = _values(storage, d_metric, "speed_windows")[(T0, "")][0]
    exact = len({e["user"] for e in events})
    assert abs((distinct or 0) - exact) / exact < 3 / math.sqrt(4096)  # 3 sigma
    print(f"sketch error: p95 rank {rank:.4f} (want 0.95), distinct {distinct:.0f} vs {exact}")


def test_a_metric_added_to_the_definitions_gets_its_history_from_the_next_batch_run(
    parity: tuple[Settings, Storage],
) -> None:
    settings, storage = parity
    _reset(settings, storage)
    events = [
        {
            "event_id": f"h{i}",
            "ts": T0 + i * 30_000,
            "type": "buy",
            "country": "DE",
            "amount": float(i),
        }
        for i in range(240)
    ]  # two hours of history
    write_partition_range(archive_root(settings.data_dir), "t", 0, list(enumerate(events)))
    before = parse_catalog({"metric": [{"name": "c", "aggregation": "count"}]})
    recompute(settings, before, storage)
    after = parse_catalog(
        {
            "metric": [
                {"name": "c", "aggregation": "count"},
                {"name": "top", "aggregation": "max", "field": "amount", "windows": ["1h"]},
            ]
        }
    )
    result = recompute(settings, after, storage)
    new = after.get("top")
    assert new is not None and result.horizon is not None
    rows = _values(storage, new, "batch_windows")
    # The first hour is backfilled; the second ends after the horizon, so batch leaves it
    # to the speed layer.
    assert rows == {(T0, ""): (119.0, 120)}
