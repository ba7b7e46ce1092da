"""What the speed layer does about dead log epochs at start, after the journal's
recovery (:mod:`ingest.recovery`) has completed their archive."""

from __future__ import annotations

from typing import Any

from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage import Storage


def after_journal_recovery(settings: Settings, catalog: MetricCatalog, storage: Storage,
                           current_epoch: str, recovered: Any = None) -> None:
    """The single call site, at start-up before the speed layer consumes, that runs once
    every dead epoch's archive is complete (journal recovery done).

    Retiring dead epochs goes here: rebuilding each dead epoch's still-open speed windows
    from its archive (so its speed rows equal its archive) and stopping retired epochs
    from capping the batch horizon or showing lag. Not built yet (branch ``retire``):
    for now a no-op."""
    del settings, catalog, storage, current_epoch, recovered
