"""Objects that live as long as the process, kept out of the garbage collector's scans.

On these machines a full collection walks ~110,000 start-up objects (imports, apps,
engines) in ~60 ms, holding the GIL: a merged read that meets one takes that much longer,
and the speed layer loses as much throughput (GC time of a 100,000-message run: 0.9 s ->
0.3 s frozen). What is built before a process starts its work is frozen once."""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> None:
    """Collect garbage first (it would be kept for good), then freeze the rest."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def unfreeze() -> None:
    """Frozen objects are never collected: hand them back when the process's work stops
    (frozen sketches would otherwise outlive the interpreter, which nanobind reports as
    leaks)."""
    global _frozen
    if _frozen:
        _frozen = False
        gc.unfreeze()
