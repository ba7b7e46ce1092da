"""Which hours a batch run recomputes."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_layer.planning import (
    HourPlan,
    RecomputeMode,
    dirty_hours,
    hour_of_file,
    hours_read_for,
    hours_written_for,
    lagging_sources,
    last_window_end,
    log_order,
    options_from_params,
    plan_hours,
)
from stratum.metrics import MetricDefinition

H = 3_600_000
FILES = {"a": 0, "b": H, "c": 2 * H}
DONE = {("m", 0): H, ("m", H): 2 * H, ("m", 2 * H): 2 * H + 30 * 60_000}


def test_the_hour_comes_from_the_file_path() -> None:
    path = Path("archive/events/date=2026-11-21/hour=10/events-E-p0-1-9.parquet")
    assert hour_of_file(path) == 1_795_255_200_000


@pytest.mark.parametrize(
    ("processed", "coverage", "metrics", "expected"),
    [
        # Nothing new, every hour complete but the last one, which the horizon cut.
        ({"a", "b", "c"}, DONE, ["m"], {2 * H}),
        # A late event's new file makes its old hour dirty.
        ({"a", "c"}, DONE, ["m"], {H, 2 * H}),
        # A new metric has no coverage anywhere: backfill every hour.
        ({"a", "b", "c"}, DONE, ["m", "new"], {0, H, 2 * H}),
        # First run.
        (set(), {}, ["m"], {0, H, 2 * H}),
    ],
)
def test_incremental_runs_take_only_dirty_hours(
    processed: set[str],
    coverage: dict[tuple[str, int], int],
    metrics: list[str],
    expected: set[int],
) -> None:
    assert dirty_hours(FILES, processed, coverage, metrics, RecomputeMode.INCREMENTAL) == expected


def test_full_runs_take_every_hour_and_ranges_cut_them() -> None:
    assert dirty_hours(FILES, set(FILES), DONE, ["m"], RecomputeMode.FULL) == {0, H, 2 * H}
    assert dirty_hours(
        FILES, set(FILES), DONE, ["m"], RecomputeMode.FULL, start_ms=H + 1, end_ms=2 * H
    ) == {H}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"mode": "sometimes"}, "mode 'sometimes' is not one of"),
        ({"start_ms": "yesterday"}, "start_ms must be epoch milliseconds"),
        ({"start_ms": 5, "end_ms": 5}, "end_ms must be after start_ms"),
    ],
)
def test_bad_job_parameters_are_named(params: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        options_from_params(params)


def test_job_parameters_default_to_incremental() -> None:
    assert options_from_params({}) == (RecomputeMode.INCREMENTAL, None, None)
    assert options_from_params({"mode": "full", "start_ms": 1, "end_ms": 2}) == (
        RecomputeMode.FULL,
        1,
        2,
    )


def test_a_partition_whose_archive_is_behind_the_speed_layer_is_lagging() -> None:
    files = [
        Path(f"a/date=2026-11-21/hour={h}/events-E-p{p}-{first}-{last}.parquet")
        for h, p, first, last in [
            ("10", 0, 0, 9),
            ("11", 0, 10, 19),
            ("10", 0, 10, 19),
            ("11", 1, 0, 4),
        ]
    ]
    lagging = lagging_sources(files, {"E:0": 19, "E:1": 7, "E:2": 3})
    assert set(lagging) == {"E:1", "E:2"}
    assert [p.name for p in lagging["E:1"]] == ["events-E-p1-0-4.parquet"]
    assert lagging["E:2"] == []  # consumed but nothing archived yet


M = 60_000
HOPPING = MetricDefinition(name="hop", aggregation="count", windows=("5m",), hop="1m")
MINUTES = MetricDefinition(name="minutes", aggregation="count")
LONG = MetricDefinition(name="long", aggregation="count", windows=("90m",))


def test_hopping_windows_reach_into_the_hours_around_a_changed_hour() -> None:
    # 04:56-04:59 hold 05:00's events; windows starting 05:56-05:59 hold 06:00-06:03's.
    assert hours_written_for(5 * H, HOPPING) == {4 * H, 5 * H}
    assert hours_read_for(5 * H, HOPPING) == {5 * H, 6 * H}
    assert last_window_end(5 * H, HOPPING) == 6 * H + 4 * M
    assert hours_written_for(5 * H, MINUTES) == hours_read_for(5 * H, MINUTES) == {5 * H}
    assert last_window_end(5 * H, MINUTES) == 6 * H


def test_windows_longer_than_an_hour_belong_to_the_hour_they_start_in() -> None:
    # 90m windows start at 00:00, 01:30, 03:00: none starts in hour 02.
    assert hours_written_for(2 * H, LONG) == {H}
    assert hours_read_for(H, LONG) == {H, 2 * H}
    assert last_window_end(2 * H, LONG) == 2 * H  # nothing to wait for there
    plan = HourPlan(frozenset({2 * H}), frozenset())
    assert plan.written(LONG) == {H} and plan.read([LONG, MINUTES]) == {H, 2 * H}


def test_a_hopping_hour_is_complete_only_when_its_last_window_has_ended() -> None:
    files = {"a": 0}
    cut = {("hop", 0): H + 3 * M}  # complete for minutes, not for 5m windows hopping 1m
    assert plan_hours(files, {"a"}, cut, [HOPPING], RecomputeMode.INCREMENTAL).incomplete == {0}
    assert not plan_hours(
        files, {"a"}, {("hop", 0): H + 4 * M}, [HOPPING], RecomputeMode.INCREMENTAL
    ).incomplete
    # An hour without files whose windows hold later events is checked too.
    assert plan_hours(
        files, {"a"}, {**cut, ("hop", -H): 0}, [HOPPING], RecomputeMode.INCREMENTAL
    ).incomplete == {-H, 0}


def test_log_order_is_epoch_by_number_then_partition() -> None:
    names = ["events-999-p3-0-9", "events-1000-p0-5-9", "events-1000-p1-0-4", "events-x-p0-0-1"]
    paths = [Path(f"a/date=2026-11-21/hour=10/{n}.parquet") for n in names]
    assert sorted(paths, key=log_order) == paths
