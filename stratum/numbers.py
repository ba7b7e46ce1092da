"""How Stratum reads numbers, in one place for ingest, both layers and serving.

- **Measures.** A numeric field counts when its value is a finite number or text that
  reads as one. The reading is Polars' ``cast(pl.Float64, strict=False)`` (what both
  layers use, :mod:`stratum.metric_frames`): an optional sign, digits with an optional
  point and exponent, or ``nan``/``inf``/``infinity`` in any case. Text that reads as a
  non-finite number ("NaN", "-Infinity", "1e999") is rejected at ingest
  (:func:`reads_as_non_finite`, the Python twin of that cast, checked against it in
  tests/unit/test_numbers.py), so it never turns a metric into NaN.
- **Dimensions and filters.** A number is one value whatever its JSON spelling or the
  archive column it landed in (a file stores a field as Float64 when every value of its
  batch is a number, as text otherwise): it is written as an integer when it is one
  (``1``, ``1.0`` -> ``"1"``), otherwise as its shortest float text (``2.5`` -> ``"2.5"``;
  :func:`number_text` and its Polars twin :func:`number_text_expr`). Text stays as it
  is, so ``"01234"`` is not a number; a filter value that reads as a number also
  matches that number (:func:`filter_texts`: ``tier=1.0`` finds the group ``"1"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import polars as pl

# Digits are ASCII only: Python's \d would also take other scripts' digits, Polars not.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE_WORDS = frozenset(("nan", "inf", "infinity"))
_EXACT_INTEGERS = 2.0**53  # beyond it a float64 holds integers only, and not all of them


def read_number(text: str) -> float | None:
    """The number text reads as (Polars' reading), or None; may be non-finite."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body.lower() in _NON_FINITE_WORDS:
        return float(text)
    return float(text) if _NUMBER.fullmatch(text) else None


def reads_as_non_finite(text: str) -> bool:
    """Whether text would become NaN or an infinity where a metric reads it as a number."""
    value = read_number(text)
    return value is not None and not math.isfinite(value)


SIGNIFICANT_DIGITS = 15  # what a float64 holds exactly in decimal; the 17th is noise


def api_number(value: float | None) -> float | None:
    """A value as the API serves it: 15 significant digits, so a sum of cents reads
    ``18081.51``, not ``18081.510000000002``. Integers stay exact (a count past 1e15
    keeps every digit); None stays None."""
    if value is None or value.is_integer() or not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def number_text(value: float) -> str:
    """A number as dimension text: ``1`` and ``1.0`` -> "1", ``2.5`` -> "2.5". The same
    text as :func:`number_text_expr`: a fraction is written by Polars itself, whose
    shortest form differs from Python's (``0.00006103515625`` for ``6.103515625e-05``)."""
    number = float(value)
    if number.is_integer() and abs(number) < _EXACT_INTEGERS:
        return str(int(number))
    text: str = pl.Series([number], dtype=pl.Float64).cast(pl.String).item()
    return text


def number_text_expr(expr: pl.Expr) -> pl.Expr:
    """:func:`number_text` over a numeric column."""
    number = expr.cast(pl.Float64)
    integral = (number == number.round()) & (number.abs() < _EXACT_INTEGERS)
    return (
        pl.when(integral)
        .then(number.cast(pl.Int64, strict=False).cast(pl.String))
        .otherwise(number.cast(pl.String))
    )


def dimension_text(value: Any) -> str:
    """An event value as a dimension: text as it is, a number canonically; null (an
    absent field) is the empty string."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)
    return str(value)


def filter_texts(values: Iterable[str]) -> list[str]:
    """Filter values as dimension texts: each as written, plus the canonical text of the
    number it reads as (so "1.0" and "1e0" also find the group "1")."""
    out: list[str] = []
    for text in values:
        number = read_number(text)
        for candidate in (
            text,
            number_text(number) if number is not None and math.isfinite(number) else None,
        ):
            if candidate is not None and candidate not in out:
                out.append(candidate)
    return out
