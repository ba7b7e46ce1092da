"""The speed layer's column-oriented write path builds exactly the rows the state says."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from datasketches import kll_doubles_sketch

from speed_layer.aggregator import WindowRow
from speed_layer.store import SpeedStore, kll_sample
from stratum.aggregation import KLL_K, new_state
from tests.reference import add_value, state_columns, weighted_quantile


def _sketch(values: list[float]) -> kll_doubles_sketch:
    sketch = kll_doubles_sketch(KLL_K)
    for value in values:
        sketch.update(value)
    return sketch


@pytest.mark.parametrize("n", [0, 1, 2, 199, 200, 201, 1_000, 20_000])
def test_kll_sample_is_the_sketch_items_with_their_weights(n):
    rng = random.Random(n)
    sketch = _sketch([rng.lognormvariate(0, 1) for _ in range(n)])
    values, weights = kll_sample(sketch)
    assert Counter(zip(values.tolist(), weights.tolist(), strict=True)) == Counter(sketch)
    assert int(weights.sum()) == sketch.n


def test_kll_sample_of_merged_sketches():
    """After a merge the binding's own iterator reports weight 1 for every item (their
    sum is not n); the serialised levels give the true weights."""
    rng = random.Random(1)
    merged = _sketch([rng.random() for _ in range(5_000)])
    merged.merge(_sketch([rng.random() * 10 for _ in range(7_000)]))
    values, weights = kll_sample(merged)
    assert sorted(values.tolist()) == sorted(v for v, _ in merged)
    assert int(weights.sum()) == 12_000
    for q in (0.1, 0.5, 0.95):
        assert weighted_quantile(values.tolist(), weights.tolist(), q) == pytest.approx(
            merged.get_quantile(q), rel=0.05
        )


class _NoStorage:
    database = "unused"


def _rows() -> list[WindowRow]:
    rng = random.Random(7)
    plain, quantile, distinct, empty = (
        new_state(False),
        new_state(True),
        new_state(False, True),
        new_state(False),
    )
    for _ in range(500):
        add_value(plain, rng.uniform(-5, 5))
        add_value(quantile, rng.lognormvariate(0, 1))
        add_value(distinct, f"u{rng.randrange(300)}")
    return [
        WindowRow(("revenue", 60_000, ("DE",)), 60_000, ("country",), plain, final=False),
        WindowRow(
            ("latency", 120_000, ("FR", "ios")), 60_000, ("country", "device"), quantile, final=True
        ),
        WindowRow(("users", 0, ("a=b\x1fc",)), 60_000, ("country",), distinct, final=False),
        WindowRow(("events", 60_000, ()), 60_000, (), empty, final=False),
    ]


def test_window_table_matches_the_state_columns():
    rows = _rows()
    table = (
        SpeedStore(_NoStorage(), generation=3)
        .window_table(  # type: ignore[arg-type]
            "epoch:1", rows, through=42, now_ms=1_000
        )
        .to_pylist()
    )
    for row, got in zip(rows, table, strict=True):
        expected = state_columns(row.state)
        for column in ("count", "sum", "min", "max", "d_hashes", "d_theta"):
            assert got[column] == expected[column], column
        assert Counter(zip(got["q_values"], got["q_weights"], strict=True)) == Counter(
            zip(expected["q_values"], expected["q_weights"], strict=True)
        )
        assert got["group_key"] == row.group_key
        assert dict(got["dims"]) == dict(zip(row.dimensions, row.key[2], strict=True))
        assert (got["generation"], got["source_id"], got["through_offset"]) == (3, "epoch:1", 42)
        assert got["metric"] == row.key[0] and got["final"] == int(row.final)
        assert int(got["window_start"].timestamp() * 1000) == row.key[1]
