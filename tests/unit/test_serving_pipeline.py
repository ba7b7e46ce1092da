"""Serving's pipeline pieces without a stack: counter rates and their history, and the
OpenAPI error documentation."""

from __future__ import annotations

from unittest import mock

import pytest

from serving import pipeline
from serving.errors import ErrorResponse, error_responses
from serving.pipeline import COUNTERS, CounterRates


def totals(accepted: float) -> dict[str, float]:
    return {stage: (accepted if stage == "ingest_accepted" else 0.0) for stage in COUNTERS}


@pytest.fixture
def counters() -> list[float]:
    values = [0.0]
    with mock.patch.object(pipeline, "counter_totals", lambda: totals(values[0])):
        yield values


def test_no_rate_before_two_samples(counters: list[float]) -> None:
    rates = CounterRates()
    rates.sample(now_s=100.0)
    assert rates.rates() == dict.fromkeys(COUNTERS)


def test_rate_over_the_window_and_samples_at_most_once_a_second(counters: list[float]) -> None:
    rates = CounterRates()
    rates.sample(now_s=100.0)
    counters[0] = 50.0
    rates.sample(now_s=100.5)  # too soon: ignored
    rates.sample(now_s=110.0)
    assert rates.rates()["ingest_accepted"] == pytest.approx(5.0)
    counters[0] = 10.0  # a reset counts from zero, never negative
    rates.sample(now_s=120.0)
    assert rates.rates(window_s=10.0)["ingest_accepted"] == 0.0


def test_history_keeps_fifteen_minutes_of_rates(counters: list[float]) -> None:
    rates = CounterRates()
    for second in range(0, 1200, 5):
        counters[0] = second * 2.0
        rates.sample(now_s=float(second))
    history = rates.history(step_s=5.0)
    assert history[-1][0] == 1195.0 and history[0][0] >= 1195.0 - 900.0
    assert {round(r["ingest_accepted"] or 0.0, 6) for _, r in history} == {2.0}


def test_error_responses_document_the_error_body() -> None:
    documented = error_responses(404, 422)
    assert set(documented) == {404, 422}
    assert documented[404]["model"] is ErrorResponse
    assert "invalid" in documented[422]["description"]
