"""The pure parts of retiring dead log epochs (speed_layer/recovery.py)."""

from __future__ import annotations

import pytest

from speed_layer.aggregator import WindowRow
from speed_layer.recovery import archived_through, dead_sources, hours_to_read, select_rows
from stratum.aggregation import new_state
from stratum.archive import HOUR_MS
from stratum.groups import group_key

MINUTE = 60_000


def test_dead_sources_are_those_of_neither_the_current_nor_a_retired_epoch() -> None:
    sources = ["100:0", "100:1", "200:0", "300:0", "300:3", "100:0"]
    assert dead_sources(sources, current_epoch="300", retired={"200"}) == {
        "100": ["100:0", "100:1"]
    }
    assert dead_sources(sources, current_epoch="300", retired={"100", "200"}) == {}


@pytest.mark.parametrize(
    ("ranges", "through"),
    [
        ([], -1),
        ([(0, 9)], 9),
        ([(10, 19), (0, 9)], 19),  # in any order
        ([(0, 9), (5, 14), (15, 20)], 20),  # a range archived again after a restart overlaps
        ([(0, 9), (11, 20)], 9),  # offset 10 is in no file: what follows may hold orphans
        ([(3, 9)], -1),  # nothing from offset 0
    ],
)
def test_the_archived_prefix_ends_at_the_first_offset_no_file_holds(
    ranges: list[tuple[int, int]], through: int
) -> None:
    assert archived_through(ranges) == through


def test_hours_to_read_cover_the_windows_at_risk_and_every_hour_open_windows_can_reach() -> None:
    files = [h * HOUR_MS for h in range(10)]
    # Open after 5:30 with 10-minute windows at most: a window from 5:20 on, so hour 5 on.
    assert hours_to_read([], 5 * HOUR_MS + 20 * MINUTE, files) == set(files[5:])
    # A window at risk in hour 1 and one straddling hours 2 and 3.
    at_risk = [(HOUR_MS + MINUTE, MINUTE), (3 * HOUR_MS - 5 * MINUTE, 10 * MINUTE)]
    assert hours_to_read(at_risk, 9 * HOUR_MS, files) == {
        HOUR_MS,
        2 * HOUR_MS,
        3 * HOUR_MS,
        9 * HOUR_MS,
    }


def _row(metric: str, start: int, group: tuple[str, ...]) -> WindowRow:
    return WindowRow(
        (metric, start, group), MINUTE, ("country",), new_state(False, False), final=False
    )


def test_rows_open_at_death_or_at_risk_are_written_final_and_the_rest_of_the_risk_deleted() -> None:
    rows = [_row("events", m * MINUTE, ("DE",)) for m in range(6)]
    watermark = 4 * MINUTE + 30_000  # minute 4 onwards was still open
    at_risk = {
        ("events", 1 * MINUTE, group_key(("country",), ("DE",))),
        ("events", 2 * MINUTE, group_key(("country",), ("FR",))),  # nothing archived
        ("events", 9 * MINUTE, group_key(("country",), ("DE",))),
    }  # nothing archived
    kept, missing = select_rows(rows, watermark, {"events": MINUTE}, at_risk)
    assert [r.key[1] // MINUTE for r in kept] == [1, 4, 5]
    assert all(r.final for r in kept)
    assert missing == {
        ("events", 2 * MINUTE, group_key(("country",), ("FR",))),
        ("events", 9 * MINUTE, group_key(("country",), ("DE",))),
    }
