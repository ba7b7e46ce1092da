"""Pure parts of the series API: list parameters, served numbers, the step that fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.queries import MAX_POINTS
from serving.routes.common import split_list
from serving.routes.metrics import fitting_step
from stratum.metrics import load_catalog
from stratum.numbers import api_number
from stratum.windows import parse_duration_ms


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("DE", ["DE"]),
        ("DE,FR", ["DE", "FR"]),
        ("DE,,FR,", ["DE", "FR"]),
        ("", []),
        (r"a\,b,c", ["a,b", "c"]),
        ("a\\\\,b", ["a\\", "b"]),
        (r"C:\temp", [r"C:\temp"]),
        ("end\\", ["end\\"]),
    ],
)
def test_a_list_parameter_splits_at_unescaped_commas(text: str, items: list[str]) -> None:
    assert split_list(text) == items


@pytest.mark.parametrize(
    ("value", "served"),
    [
        (18081.510000000002, 18081.51),
        (0.1 + 0.2, 0.3),
        (1e-20 / 3, 3.33333333333333e-21),
        (12.5, 12.5),
        (2.0**60, 2.0**60),  # an integer past 1e15 keeps all its digits
        (1234567890123456.0, 1234567890123456.0),
        (None, None),
    ],
)
def test_served_values_have_no_float_noise_and_integers_stay_exact(
    value: float | None, served: float | None
) -> None:
    assert api_number(value) == served


@pytest.mark.parametrize("span", ["30d", "365d", "14d", "20001m"])
def test_the_fitting_step_keeps_the_range_within_the_point_limit(span: str) -> None:
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "stratum" / "metrics.toml")
    metric = catalog.get("events")
    assert metric is not None
    span_ms = parse_duration_ms(span)
    step = fitting_step(metric, span_ms)
    assert step is not None
    step_ms = parse_duration_ms(step)
    assert step_ms % metric.window_ms == 0
    assert (span_ms + step_ms - 1) // step_ms <= MAX_POINTS
    # the finest such: one window less would not fit (below a minute), or a minute less
    finer = step_ms - (metric.window_ms if step_ms <= 60_000 else 60_000)
    assert finer <= 0 or (span_ms + finer - 1) // finer > MAX_POINTS - 1
