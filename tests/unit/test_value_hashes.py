"""The shared cache of distinct values' hashes gives exactly ``value_hash``."""

from __future__ import annotations

import polars as pl

from stratum.aggregation import value_hash
from stratum.value_hashes import ValueHashCache


def test_hashes_follow_the_values_in_order_warm_or_cold() -> None:
    cache = ValueHashCache(limit=3)
    first = pl.Series(["u1", None, "u2", "u1"], dtype=pl.String)
    expected = [value_hash("u1"), None, value_hash("u2"), value_hash("u1")]
    assert cache.hashes(first).to_list() == expected  # cold
    assert cache.hashes(first).to_list() == expected  # warm
    assert cache.frame.height == 2
    # Past the limit the cache starts again from the batch; answers stay exact.
    second = pl.Series(["u3", "u4", "u1"], dtype=pl.String)
    assert cache.hashes(second).to_list() == [value_hash(v) for v in ("u3", "u4", "u1")]
    assert cache.frame.height <= 3
