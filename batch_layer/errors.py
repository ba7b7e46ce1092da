"""Errors of the batch layer.

    StratumError
    └── BatchLayerError
        └── BatchInterruptedError   (the process is stopping; the run is abandoned)

A run that fails for any other reason records the exception in its job row; storage
failures arrive as :class:`stratum.storage.StorageError`.
"""

from __future__ import annotations

from stratum.errors import StratumError
from stratum.storage.jobs import INTERRUPTED


class BatchLayerError(StratumError):
    """Base of the batch layer's own errors."""


class BatchInterruptedError(BatchLayerError):
    """The scheduler is shutting down; the run stopped at a unit boundary, before its
    coverage was written, so nothing served changed. The next run redoes it."""

    def __init__(self) -> None:
        super().__init__(INTERRUPTED)


class BatchCancelledError(BatchLayerError):
    """A cancel request reached the run before its coverage was written; nothing served
    changed."""

    def __init__(self) -> None:
        super().__init__("cancelled before it completed")
