"""Retired log epochs: ended incarnations of the embedded broker's log.

The embedded broker keeps its log in memory, so every start is a new log *epoch* and
speed rows and checkpoints are keyed by ``<epoch>:<partition>``. Once a start has
reconciled an ended epoch with its archive (:mod:`speed_layer.recovery`), the epoch is
recorded here. Its window rows keep being served; its checkpoints stop being progress:
they no longer cap the batch horizon, bound the final-bucket cache or show as lag. Every
reader of checkpoints as progress filters with :func:`live_sources_sql`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from stratum.storage.client import Storage

TABLE = "retired_epochs"
COLUMNS = ("epoch", "sources", "windows", "events", "retired_at")


def epoch_of(source_id: str) -> str:
    """The epoch of a source id ``<epoch>:<partition>``."""
    return source_id.split(":", 1)[0]


def live_sources_sql(database: str, column: str = "source_id") -> str:
    """A SQL condition on a source id column: its epoch has not been retired."""
    return f"splitByChar(':', {column})[1] NOT IN (SELECT epoch FROM {database}.{TABLE})"


def retired(storage: Storage) -> set[str]:
    return {str(e) for (e,) in storage.query(f"SELECT epoch FROM {storage.database}.{TABLE}")}


def record_retired(storage: Storage, epoch: str, sources: int, windows: int, events: int) -> None:
    """The last step of a retirement: written only after its rows are reconciled, so a
    crash before it makes the next start redo the (idempotent) reconciliation."""
    storage.insert(TABLE, [[epoch, sources, windows, events, datetime.now(tz=UTC)]], COLUMNS)
