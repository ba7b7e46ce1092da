from __future__ import annotations

import pytest

from stratum.windows import format_duration, parse_duration_ms
from tests.reference import hopping_window_starts


@pytest.mark.parametrize(
    ("ts", "size", "step", "expected"),
    [
        (100, 30, 10, [80, 90, 100]),
        (105, 30, 10, [80, 90, 100]),
        (0, 60, 60, [0]),
        (5, 20, 10, [-10, 0]),
    ],
)
def test_hopping_windows_hold_the_timestamp(
    ts: int, size: int, step: int, expected: list[int]
) -> None:
    assert hopping_window_starts(ts, size, step) == expected


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1m", 60_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("30s", 30_000),
        ("250ms", 250),
    ],
)
def test_durations_round_trip(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms
    assert format_duration(ms) == text


@pytest.mark.parametrize("text", ["", "0m", "1x", "m", "-1m", "1.5m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_ms(text)
