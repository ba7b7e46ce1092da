"""Stratum's root exception.

StratumError
├── EventError, MessageDecodeError      (stratum.events)
├── MetricDefinitionError               (stratum.metrics)
├── StorageError                        (stratum.storage)
│   └── StorageUnavailableError
├── BrokerError                         (stratum.broker)
└── LogUnavailableError                 (ingest: the log cannot take events now)
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

MAX_FAILURE_CHARS = 4000


class StratumError(Exception):
    """Base of every error Stratum raises on purpose."""


class BrokerError(StratumError):
    """The embedded broker could not be started or reached."""


class LogUnavailableError(StratumError):
    """The log (Kafka) did not accept events; the caller should retry later."""


def error_detail(code: str, message: str, **details: Any) -> dict[str, Any]:
    """An HTTP error as the API answers it, ``{"code", "message", "details"}``: routes
    raise ``HTTPException(status, detail=error_detail(...))`` and serving's handlers
    wrap it in ``{"error": ...}`` (serving/errors.py)."""
    return {"code": code, "message": message, "details": details}


def cite(text: object, limit: int = 40) -> str:
    """``text`` for an error message: quoted, and only a prefix of a long one (an error
    that echoes a 60 KB parameter whole is a 60 KB answer, and a reflection)."""
    value = str(text)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def describe_failure(exc: BaseException) -> str:
    """``Type: message (at file:line in func; ...)`` on ONE line: what a failed job's
    ``error`` shows on the admin page and in the CLI; the full traceback goes to the log."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    message = " ".join(str(exc).split())  # a multi-line message, folded
    text = f"{type(exc).__name__}: {message}" + (f" (at {where})" if where else "")
    return text[:MAX_FAILURE_CHARS]
