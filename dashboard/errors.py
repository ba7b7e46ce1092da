"""Errors the dashboard raises; ``str(error)`` is always a message fit for the UI.

    StratumError                       (stratum.errors)
    └── DashboardError
        └── ApiError                   the API call failed; .status is the HTTP status or None
            ├── ApiUnavailableError    no answer, a timeout, or a 5xx: the API is down or broken
            └── ApiConflictError       409: a job of that kind is already active; .job_id

Callbacks catch :class:`ApiError` once and show the message: the user sees
"API unreachable at http://..." instead of a stack trace.
"""

from __future__ import annotations

from typing import Any

from stratum.errors import StratumError


class DashboardError(StratumError):
    """Base of every error the dashboard raises on purpose."""


class ApiError(DashboardError):
    """The API refused a request or answered outside its contract."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}


class ApiUnavailableError(ApiError):
    """The API did not answer, timed out, or failed with a 5xx; retrying later may help."""


class ApiConflictError(ApiError):
    """A job is already active; ``job_id`` names it when the API said which one."""

    @property
    def job_id(self) -> str | None:
        value = self.details.get("job_id")
        return str(value) if value is not None else None
