"""Partial aggregation state that merges correctly, shared by both layers.

Every stored window row holds the same state: ``count``, ``sum``, ``min``, ``max`` and, for
quantile metrics, a weighted sample ``(q_values, q_weights)``. Queries combine rows by
adding counts and sums, taking min of mins and max of maxes, and running a weighted
quantile over the union of samples, so no query ever averages averages or percentiles.

The speed layer's sample is a KLL sketch (Apache DataSketches, ``k=200``: normalised rank
error about 1.3 % at 99 % confidence for a single sketch, see
``kll_doubles_sketch.get_normalized_rank_error``). The batch layer's sample is the exact
multiset of values (each distinct value with its count), so batch quantiles are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from datasketches import kll_doubles_sketch

KLL_K = 200


@dataclass(slots=True)
class WindowState:
    """State of one (metric, window, group) in the speed layer."""

    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    sketch: kll_doubles_sketch | None = field(default=None)

    def add(self, value: float | None) -> None:
        self.count += 1
        if value is None:
            return
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if self.sketch is not None:
            self.sketch.update(value)

    def merge(self, other: WindowState) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = kll_doubles_sketch(KLL_K)
            self.sketch.merge(other.sketch)

    def sample(self) -> tuple[list[float], list[int]]:
        if self.sketch is None or self.sketch.is_empty():
            return [], []
        items = list(self.sketch)
        return [float(v) for v, _ in items], [int(w) for _, w in items]

    def to_columns(self) -> dict[str, Any]:
        values, weights = self.sample()
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count and math.isfinite(self.min) else 0.0,
            "max": self.max if self.count and math.isfinite(self.max) else 0.0,
            "q_values": values,
            "q_weights": weights,
        }

    @classmethod
    def from_columns(cls, row: dict[str, Any], *, with_sketch: bool) -> WindowState:
        """Rebuild state from a stored row (recovery after a restart)."""
        state = cls(count=int(row["count"]), sum=float(row["sum"]),
                    min=float(row["min"]) if row["count"] else math.inf,
                    max=float(row["max"]) if row["count"] else -math.inf)
        if with_sketch:
            state.sketch = kll_doubles_sketch(KLL_K)
            for value, weight in zip(row["q_values"], row["q_weights"], strict=True):
                # A stored sample item of weight w stands for w equal values.
                for _ in range(int(weight)):
                    state.sketch.update(float(value))
        return state


def new_state(with_sketch: bool) -> WindowState:
    return WindowState(sketch=kll_doubles_sketch(KLL_K) if with_sketch else None)


def weighted_quantile(values: list[float], weights: list[int], q: float) -> float | None:
    """The reference definition of a quantile over a weighted sample.

    Mirrors ClickHouse's ``quantileExactWeighted``: sort values, return the first value
    whose cumulative weight reaches ``q`` times the total weight. Used in tests to check
    what serving returns.
    """
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
