"""``value_hash`` of recurring distinct values (users, sessions), for both layers.

Distinct metrics hash every value with MurmurHash3 (:func:`stratum.aggregation.value_hash`),
one Python call per value. The same users come back batch after batch, so a process keeps
their hashes in a frame and a batch finds them with one join: per value in Python, a lookup
in a dict this size cost ~0.5 us on these machines (random memory access), as much as the
hash itself. Each layer keeps its own cache (``stratum up`` runs the batch job in a
thread beside the speed layer's event loop, and neither should wait on the other); a
cache is still locked, because a value added twice by racing lookups would join twice and
count its events twice.
"""

from __future__ import annotations

import threading

import polars as pl

from stratum.aggregation import value_hash

VALUE, HASH = "__value", "__hash"  # internal names, never an event field


class ValueHashCache:
    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit  # values kept; past it the cache starts again from one batch
        self.frame = pl.DataFrame(schema={VALUE: pl.String, HASH: pl.UInt64})
        self._lock = threading.Lock()

    def lookup(self, values: pl.Series) -> pl.DataFrame:
        """(VALUE, HASH) for every distinct non-null value of ``values`` (strings)."""
        with self._lock:
            return self._lookup(values)

    def _lookup(self, values: pl.Series) -> pl.DataFrame:
        wanted = values.drop_nulls().unique().to_frame(VALUE)
        known = wanted.join(self.frame, on=VALUE, how="inner")
        if known.height == wanted.height:
            return known
        missing = wanted.join(self.frame, on=VALUE, how="anti")[VALUE]
        new = pl.DataFrame(
            {
                VALUE: missing,
                HASH: pl.Series([value_hash(v) for v in missing.to_list()], dtype=pl.UInt64),
            }
        )
        if self.frame.height + new.height > self.limit:
            self.frame = new
        else:
            self.frame = pl.concat([self.frame, new], rechunk=False)
            if self.frame.n_chunks() > 64:
                self.frame = self.frame.rechunk()
        return pl.concat([known, new])

    def hashes(self, values: pl.Series) -> pl.Series:
        """The hash of each value of ``values``, in order (null for null)."""
        return values.to_frame(VALUE).join(
            self.lookup(values), on=VALUE, how="left", maintain_order="left"
        )[HASH]
