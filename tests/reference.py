"""Plain-Python references of what the layers compute, for tests only.

The layers compute with Polars (:mod:`stratum.metric_frames`); these functions say the
same thing one event at a time, with the production semantics: a numeric field counts
when it is a finite number or text that reads as one (``"12.5"``, Polars' lenient cast),
dimensions and filters compare as dimension text (:mod:`stratum.numbers`).
tests/unit/test_reference.py checks them against the speed layer's own aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from stratum.aggregation import MAX_HASH, NO_TIME, DistinctSample, WindowState, value_hash
from stratum.aggregations import FieldUse, kind_of
from stratum.metrics import MetricDefinition
from stratum.numbers import dimension_text, filter_texts, read_number


def hopping_window_starts(timestamp_ms: int, duration_ms: int, step_ms: int) -> list[int]:
    """Starts of every hopping window ``[s, s + duration_ms)`` holding ``timestamp_ms``."""
    last = timestamp_ms - timestamp_ms % step_ms
    first = last - duration_ms + step_ms
    return [s for s in range(first, last + 1, step_ms) if s <= timestamp_ms < s + duration_ms]


def window_starts(metric: MetricDefinition, ts_ms: int) -> list[int]:
    """Starts of the metric's windows holding an event time (several when windows hop)."""
    return hopping_window_starts(ts_ms, metric.window_ms, metric.hop_ms)


def measure(value: Any) -> float | None:
    """A numeric field as both layers read it: a finite number, or text reading as one."""
    if isinstance(value, bool) or value is None:
        return None
    number = read_number(value) if isinstance(value, str) else float(value)
    return number if number is not None and math.isfinite(number) else None


def matches(metric: MetricDefinition, event: Mapping[str, Any]) -> bool:
    """Whether the metric counts the event: its ``where`` holds and its field is there."""
    for key, expected in metric.where.items():
        value = event.get(key)
        texts = filter_texts(expected if isinstance(expected, list) else [expected])
        if value is None or dimension_text(value) not in texts:
            return False
    if metric.field is None:
        return True
    value = event.get(metric.field)
    if kind_of(metric.aggregation).field == FieldUse.VALUE:
        return value is not None
    return measure(value) is not None


def group_of(metric: MetricDefinition, event: Mapping[str, Any]) -> tuple[str, ...]:
    """The event's dimension values; a missing dimension is the empty string."""
    return tuple(dimension_text(event.get(d)) for d in metric.dimensions)


def weighted_quantile(values: list[float], weights: list[int], q: float) -> float | None:
    """ClickHouse's ``quantileExactWeighted``: the first value, in order, whose
    cumulative weight reaches ``q`` times the total weight."""
    pairs = sorted(zip(values, weights, strict=True))
    total = sum(w for _, w in pairs)
    if not total:
        return None
    threshold = q * total
    acc = 0
    for value, weight in pairs:
        acc += weight
        if acc >= threshold:
            return value
    return pairs[-1][0]


def add_value(state: WindowState, value: float | str | None) -> None:
    """Add one event's value to a window's state, one at a time."""
    state.count += 1
    if value is None:
        return
    if state.distinct is not None:
        state.distinct.add_hash_array(np.array([value_hash(value)], dtype=np.uint64))
        return
    number = float(value)
    state.sum += number
    state.min, state.max = min(state.min, number), max(state.max, number)
    if state.sketch is not None:
        state.sketch.update(number)


def state_sample(state: WindowState) -> tuple[list[float], list[int]]:
    """A KLL sketch's items and weights, as lists."""
    if state.sketch is None or state.sketch.is_empty():
        return [], []
    items = list(state.sketch)
    return [float(v) for v, _ in items], [int(w) for _, w in items]


def state_columns(state: WindowState) -> dict[str, Any]:
    """A window's state as the stored columns (``speed_windows``)."""
    values, weights = state_sample(state)
    distinct: DistinctSample | None = state.distinct
    return {
        "count": state.count,
        "sum": state.sum,
        "min": state.min if state.count and math.isfinite(state.min) else 0.0,
        "max": state.max if state.count and math.isfinite(state.max) else 0.0,
        "q_values": values,
        "q_weights": weights,
        "d_hashes": sorted(distinct.hashes) if distinct else [],
        "d_theta": distinct.theta if distinct else MAX_HASH,
        "first_ms": state.first_ms if state.first_ms != NO_TIME else 0,
        "last_ms": state.last_ms if state.last_ms != -NO_TIME else 0,
    }
