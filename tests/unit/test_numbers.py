"""``stratum.numbers``: the Python twins of how both layers read numbers agree with
Polars (the reading the metrics use), and numbers have one text as dimensions."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum.numbers import (
    filter_texts,
    number_text,
    number_text_expr,
    read_number,
    reads_as_non_finite,
)

NON_FINITE = [
    "NaN",
    "nan",
    "NAN",
    "-nan",
    "+NaN",
    "inf",
    "-inf",
    "+inf",
    "Inf",
    "INF",
    "infinity",
    "Infinity",
    "-Infinity",
    "iNfInItY",
    "1e999",
    "-1e999",
    "1E+400",
    "9" * 400,
]
NOT_NON_FINITE = [
    "12.5",
    "1e308",
    "-1.7e308",
    "1e-999",
    "DE",
    "",
    " nan",
    "nan ",
    "Nan1",
    "infinit",
    "snan",
    "1_0",
    "0x10",
    "٣",
    "n/a",
    "-",
    "e5",
]


@pytest.mark.parametrize("text", NON_FINITE)
def test_text_that_reads_as_a_non_finite_number(text: str) -> None:
    assert reads_as_non_finite(text)
    assert not math.isfinite(pl.Series([text]).cast(pl.Float64, strict=False)[0])


@pytest.mark.parametrize("text", NOT_NON_FINITE)
def test_text_that_does_not(text: str) -> None:
    assert not reads_as_non_finite(text)


def _polars_reading(texts: list[str]) -> list[float | None]:
    return pl.Series(texts, dtype=pl.String).cast(pl.Float64, strict=False).to_list()


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(st.lists(st.text("0123456789+-.eEnaifNItyIA _", max_size=9), min_size=1, max_size=50))
@settings(max_examples=300, deadline=None)
def test_read_number_is_polars_reading(texts: list[str]) -> None:
    for text, expected in zip(texts, _polars_reading(texts), strict=True):
        assert _same(read_number(text), expected), text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (1.0, "1"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (1e-7, "1e-7"),
        (123456789.0, "123456789"),
        (2**53 - 1, "9007199254740991"),
        (1e16, "1e+16"),
        (1.7e308, "1.7e+308"),
    ],
)
def test_a_number_has_one_text(value: float, text: str) -> None:
    assert number_text(value) == text
    assert pl.select(number_text_expr(pl.lit(value, dtype=pl.Float64))).item() == text


@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63) + 1, 2**63 - 1)
        ),
        min_size=1,
        max_size=50,
    )
)
@settings(max_examples=200, deadline=None)
def test_number_text_is_its_polars_twin(values: list[float]) -> None:
    series = pl.Series([float(v) for v in values], dtype=pl.Float64)
    assert pl.select(number_text_expr(pl.lit(series))).to_series().to_list() == [
        number_text(v) for v in values
    ]


@pytest.mark.parametrize(
    ("values", "texts"),
    [
        (["1"], ["1"]),
        (["1.0"], ["1.0", "1"]),
        (["1e0", "2.50"], ["1e0", "1", "2.50", "2.5"]),
        (["DE"], ["DE"]),
        (["01234"], ["01234", "1234"]),
        (["NaN"], ["NaN"]),
    ],
)
def test_a_filter_value_that_reads_as_a_number_also_finds_it(
    values: list[str], texts: list[str]
) -> None:
    assert filter_texts(values) == texts
