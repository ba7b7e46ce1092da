"""The batch recompute over real Parquet files into the real (chDB) batch tables, checked
against plain-Python reference values and against ClickHouse's own quantile."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from batch_layer.jobs.recompute import RecomputeProgress, recompute
from batch_layer.planning import RecomputeMode
from stratum.aggregation import MAX_HASH
from stratum.events import Event
from stratum.groups import group_key
from stratum.metrics import Aggregation, MetricCatalog, load_catalog, parse_catalog
from stratum.settings import Settings
from stratum.storage import Storage
from tests.integration.batch_support import (
    exact_sample,
    first_by_offset,
    nearest_rank,
    reference,
    reset_batch_state,
    write_file,
)
from tests.reference import weighted_quantile

pytestmark = pytest.mark.integration

MINUTE = 60_000
HOUR = 3_600_000
H0 = int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1000)
LAST_TS = H0 + 2 * HOUR + 30 * MINUTE + 30_000
HORIZON = H0 + 2 * HOUR + 29 * MINUTE  # LAST_TS - 60 s lateness, floored to the minute


@pytest.fixture
def clean_batch(settings: Settings, storage: Storage) -> Iterator[None]:
    reset_batch_state(settings, storage)
    yield
    reset_batch_state(settings, storage)


def _random_events(count: int) -> list[Event]:
    rng = random.Random(20261120)  # noqa: S311 - test data, not security
    events: list[Event] = []
    for index in range(count):
        kind = rng.choice(["view", "view", "purchase", "click"])
        event: Event = {
            "event_id": f"r{index}",
            "type": kind,
            "ts": H0 + rng.randrange(0, 2 * HOUR + 30 * MINUTE),
        }
        if rng.random() > 0.15:
            event["country"] = rng.choice(["DE", "FR", "US"])
        if rng.random() > 0.2:
            event["device"] = rng.choice(["ios", "android"])
        if kind == "view":
            event["latency_ms"] = rng.choice([5, 10, 10, 20, 35.5, 50, 120, 250])
        if kind == "purchase" and rng.random() > 0.1:
            event["amount"] = rng.choice([9.99, 20, 35.5, 120])
        events.append(event)
    return events


def _archive() -> list[tuple[str, int, list[tuple[int, Event]]]]:
    """(epoch, partition, (offset, event) pairs) per file set; overlaps are deliberate."""
    randoms = _random_events(600)
    special: list[Event] = [
        {"event_id": "no-amount", "ts": H0 + 5 * MINUTE, "type": "purchase", "country": "DE"},
        {"event_id": "no-dims", "ts": H0 + 6 * MINUTE, "type": "view", "latency_ms": 7},
        {
            "event_id": "dup-amount",
            "ts": H0 + 7 * MINUTE,
            "type": "purchase",
            "country": "FR",
            "amount": 10,
        },
        {"event_id": "dup-hour", "ts": H0 + 30 * MINUTE, "type": "click", "country": "US"},
        {
            "event_id": "last",
            "ts": LAST_TS,
            "type": "view",
            "country": "DE",
            "device": "ios",
            "latency_ms": 1,
        },
    ]
    later_copies: list[Event] = [
        {**special[2], "amount": 999},  # same id, higher offset: must lose
        {**special[3], "ts": H0 - 30 * MINUTE},  # its hour holds nothing but this duplicate
    ]
    return [
        ("e1", 0, list(enumerate(randoms[:400]))),
        ("e1", 1, list(enumerate(randoms[400:]))),
        ("e2", 0, [(1000 + i, e) for i, e in enumerate(randoms[350:450])]),  # re-archived
        ("e1", 2, [(i, e) for i, e in enumerate(special, start=3)]),
        ("e1", 3, [(500 + i, e) for i, e in enumerate(later_copies)]),
    ]


def _write_archive(settings: Settings) -> list[Event]:
    files = _archive()
    for epoch, partition, pairs in files:
        write_file(settings, epoch, partition, pairs)
    return first_by_offset(pairs for _, _, pairs in files)


def _served(storage: Storage) -> list[dict[str, Any]]:
    """Window rows of the version coverage points at, as serving will join them."""
    return storage.query_dicts(
        """SELECT w.metric AS metric, toUnixTimestamp64Milli(w.window_start) AS start_ms,
                  w.window_ms AS window_ms, w.group_key AS group_key, w.dims AS dims,
                  w.count AS count, w.sum AS sum, w.min AS min, w.max AS max,
                  w.q_values AS q_values, w.q_weights AS q_weights,
                  w.d_hashes AS d_hashes, w.d_theta AS d_theta, w.version AS version
           FROM stratum.batch_windows AS w
           INNER JOIN (SELECT metric, hour_start, version FROM stratum.batch_coverage FINAL) AS c
             ON w.metric = c.metric AND w.version = c.version
            AND intDiv(toUnixTimestamp64Milli(w.window_start), 3600000) * 3600
                = toUnixTimestamp(c.hour_start)"""
    )


def _coverage(storage: Storage) -> dict[tuple[str, int], int]:
    rows = storage.query(
        "SELECT metric, toUnixTimestamp(hour_start) * 1000, version "
        "FROM stratum.batch_coverage FINAL"
    )
    return {(m, int(h)): int(v) for m, h, v in rows}


def _check_against_reference(
    storage: Storage, catalog: MetricCatalog, events: list[Event], horizon_ms: int = HORIZON
) -> None:
    served = _served(storage)
    for metric in catalog.metrics:
        expected = reference(metric, events, horizon_ms)
        rows = {(r["start_ms"], r["group_key"]): r for r in served if r["metric"] == metric.name}
        assert len(rows) == len(expected), metric.name
        for (start, group), want in expected.items():
            row = rows[(start, group_key(metric.dimensions, group))]
            assert row["window_ms"] == metric.window_ms
            assert row["dims"] == dict(zip(metric.dimensions, group, strict=True))
            assert row["count"] == want.count, (metric.name, start, group)
            if metric.aggregation == Aggregation.DISTINCT:
                assert row["d_hashes"] == sorted(want.hashes)
                assert row["d_theta"] == MAX_HASH  # batch keeps every hash: exact
            if metric.field is None or metric.aggregation == Aggregation.DISTINCT:
                assert (row["sum"], row["min"], row["max"]) == (0.0, 0.0, 0.0)
            else:
                assert row["sum"] == pytest.approx(sum(want.values))
                assert (row["min"], row["max"]) == (min(want.values), max(want.values))
            if metric.quantile is None:
                assert (row["q_values"], row["q_weights"]) == ([], [])
                continue
            assert (row["q_values"], row["q_weights"]) == exact_sample(want.values)
            assert weighted_quantile(row["q_values"], row["q_weights"], metric.quantile) == (
                nearest_rank(want.values, metric.quantile)
            )


def test_recompute_matches_plain_python(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    catalog = load_catalog(settings.metrics_file)
    events = _write_archive(settings)
    steps: list[RecomputeProgress] = []

    result = recompute(settings, catalog, storage, progress=steps.append)

    assert result.horizon == datetime.fromtimestamp(HORIZON / 1000, tz=UTC)
    assert result.rows_in == len(events) == 600 + 5
    assert result.rows_out == storage.query("SELECT count() FROM stratum.batch_windows")[0][0]
    assert [s.phase for s in steps] == [
        "read",
        *["metric"] * len(catalog.metrics),
        "windows_written",
        "coverage_written",
    ]
    assert steps[-1].units_done == steps[-1].units_total == len(catalog.metrics) + 2
    _check_against_reference(storage, catalog, events)

    revenue = {
        r["start_ms"]: r
        for r in _served(storage)
        if r["metric"] == "revenue"
        and r["dims"] == {"country": "FR"}
        and r["start_ms"] == H0 + 7 * MINUTE
    }
    assert revenue[H0 + 7 * MINUTE]["max"] < 999  # the copy with the higher offset lost
    no_dims = [
        r
        for r in _served(storage)
        if r["metric"] == "latency_p95"
        and r["start_ms"] == H0 + 6 * MINUTE
        and r["group_key"] == "country=\x1fdevice="
    ]
    assert no_dims and 7.0 in no_dims[0]["q_values"]

    latest_end = storage.query(
        "SELECT max(toUnixTimestamp64Milli(window_start) + window_ms) FROM stratum.batch_windows"
    )[0][0]
    assert latest_end == HORIZON  # the window [horizon - 1m, horizon) is the last one
    assert any(e["ts"] >= HORIZON for e in events)  # ... and later events were left out
    hours = {H0 - HOUR, H0, H0 + HOUR, H0 + 2 * HOUR}  # H0 - 1h: only a duplicate lives there
    assert _coverage(storage) == {(m, h): result.version for m in catalog.names for h in hours}


def test_clickhouse_quantile_agrees_with_the_reference(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    catalog = load_catalog(settings.metrics_file)
    events = _write_archive(settings)
    recompute(settings, catalog, storage)
    metric = catalog.get("latency_p95")
    assert metric is not None and metric.quantile is not None
    rows = storage.query(
        f"""SELECT w.group_key, intDiv(toUnixTimestamp64Milli(w.window_start), {HOUR}) * {HOUR},
                   quantileExactWeightedArray({metric.quantile})(w.q_values, w.q_weights)
            FROM stratum.batch_windows AS w
            WHERE w.metric = 'latency_p95'
            GROUP BY 1, 2"""
    )
    expected = reference(metric, events, HORIZON)
    by_hour: dict[tuple[str, int], list[float]] = {}
    for (start, group), want in expected.items():
        key = (group_key(metric.dimensions, group), start // HOUR * HOUR)
        by_hour.setdefault(key, []).extend(want.values)
    assert len(rows) == len(by_hour)
    for key_, hour, value in rows:  # hourly roll-up of minute samples: still exact
        assert value == nearest_rank(by_hour[(key_, hour)], metric.quantile), (key_, hour)


def test_membership_filters_custom_windows_and_no_dimensions(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    catalog = parse_catalog(
        {
            "metric": [
                {
                    "name": "biggest",
                    "aggregation": "max",
                    "field": "amount",
                    "where": {"type": ["purchase", "click"]},
                    "dimensions": ["country"],
                    "windows": ["5m", "1h"],
                },
                {"name": "all_events", "aggregation": "count"},
                {
                    "name": "odd_values",
                    "aggregation": "count",
                    "dimensions": ["label"],
                    "where": {"type": "view"},
                },
            ]
        }
    )
    pairs = list(
        enumerate(
            [
                {"event_id": "a", "ts": H0, "type": "click", "country": "DE", "amount": 3},
                {
                    "event_id": "b",
                    "ts": H0 + MINUTE,
                    "type": "purchase",
                    "country": "DE",
                    "amount": -2,
                },
                {
                    "event_id": "c",
                    "ts": H0 + 2 * MINUTE,
                    "type": "view",
                    "amount": 50,
                    "label": "a=b\x1fc\\",
                },
                {"event_id": "d", "ts": H0 + 6 * MINUTE, "type": "click", "amount": 8},
                {"event_id": "z", "ts": H0 + 20 * MINUTE, "type": "view"},
            ]
        )
    )
    write_file(settings, "e1", 0, pairs)

    result = recompute(settings, catalog, storage)

    assert result.horizon == datetime.fromtimestamp((H0 + 19 * MINUTE) / 1000, tz=UTC)
    _check_against_reference(storage, catalog, [e for _, e in pairs], H0 + 19 * MINUTE)
    served = _served(storage)
    assert {
        (r["start_ms"], r["group_key"], r["max"]) for r in served if r["metric"] == "biggest"
    } == {(H0, "country=DE", 3.0), (H0 + 5 * MINUTE, "country=", 8.0)}
    assert {r["group_key"] for r in served if r["metric"] == "all_events"} == {""}
    assert {r["group_key"] for r in served if r["metric"] == "odd_values"} == {
        group_key(["label"], ["a=b\x1fc\\"])
    }


def test_duplicates_in_one_log_message_keep_the_first(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    # The archiver stores the log message's offset: events of one message share it.
    sale = {"event_id": "twice", "ts": H0, "type": "purchase", "country": "DE"}
    write_file(
        settings,
        "e1",
        0,
        [
            (7, {**sale, "amount": 5}),
            (7, {**sale, "amount": 6}),
            (8, {**sale, "event_id": "end", "ts": H0 + 10 * MINUTE}),
        ],
    )
    catalog = parse_catalog(
        {"metric": [{"name": "revenue", "aggregation": "sum", "field": "amount"}]}
    )
    recompute(settings, catalog, storage)
    assert [(r["count"], r["sum"]) for r in _served(storage)] == [(1, 5.0)]


def test_each_run_is_a_new_version_and_a_failed_run_changes_nothing_served(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    catalog = load_catalog(settings.metrics_file)
    events = _write_archive(settings)
    first = recompute(settings, catalog, storage)
    second = recompute(settings, catalog, storage, mode=RecomputeMode.FULL)
    assert first.version is not None and second.version is not None
    assert second.version > first.version
    assert set(_coverage(storage).values()) == {second.version}
    _check_against_reference(storage, catalog, events)

    def die_after_rows(step: RecomputeProgress) -> None:
        if step.phase == "windows_written":
            raise RuntimeError("killed after writing rows")

    with pytest.raises(RuntimeError, match="killed"):
        recompute(settings, catalog, storage, progress=die_after_rows, mode=RecomputeMode.FULL)
    versions = {v for (v,) in storage.query("SELECT DISTINCT version FROM stratum.batch_windows")}
    assert len(versions) == 3  # the dead run's rows are there, but nothing points at them
    assert set(_coverage(storage).values()) == {second.version}
    _check_against_reference(storage, catalog, events)

    third = recompute(settings, catalog, storage, mode=RecomputeMode.FULL)
    assert third.version is not None and third.version > max(versions)
    assert set(_coverage(storage).values()) == {third.version}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # superseded and orphaned rows go, asynchronously
        left = {v for (v,) in storage.query("SELECT DISTINCT version FROM stratum.batch_windows")}
        if left == {second.version, third.version}:
            break
        time.sleep(0.2)
    assert left == {second.version, third.version}
    _check_against_reference(storage, catalog, events)


def test_an_empty_archive_writes_nothing(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    result = recompute(settings, load_catalog(settings.metrics_file), storage)
    assert (result.version, result.horizon, result.rows_in, result.rows_out) == (None, None, 0, 0)
    assert storage.query("SELECT count() FROM stratum.batch_coverage")[0][0] == 0


def test_a_partition_whose_archive_lags_caps_the_horizon(
    settings: Settings, storage: Storage, clean_batch: None
) -> None:
    """Speed consumed offsets 0..9 of partition 1 but only 0..4 are archived (with
    different columns per file): the horizon stops at what partition 1 has archived."""
    for table in ("speed_checkpoints",):
        storage.command(f"TRUNCATE TABLE stratum.{table}")
    write_file(
        settings,
        "L",
        0,
        [
            (i, {"event_id": f"l0-{i}", "ts": H0 + i * MINUTE, "type": "t", "amount": 1.0})
            for i in range(30)
        ],
    )
    write_file(
        settings,
        "L",
        1,
        [
            (i, {"event_id": f"l1-{i}", "ts": H0 + i * MINUTE, "type": "t", "country": "DE"})
            for i in range(5)
        ],
    )
    storage.insert(
        "speed_checkpoints",
        [[0, "L:1", 9, 0, 0, datetime.now(tz=UTC)], [0, "L:0", 29, 0, 0, datetime.now(tz=UTC)]],
        ("generation", "source_id", "through_offset", "watermark_ms", "max_event_ms", "updated_at"),
    )
    try:
        result = recompute(settings, load_catalog(settings.metrics_file), storage)
    finally:
        storage.command("TRUNCATE TABLE stratum.speed_checkpoints")
    lateness = settings.speed.allowed_lateness_ms
    assert result.horizon == datetime.fromtimestamp((H0 + 4 * MINUTE - lateness) / 1000, tz=UTC)
