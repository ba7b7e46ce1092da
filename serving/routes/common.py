"""What several routes share: time fields in both forms, and documented error statuses.

Every time a route returns comes twice, ``<name>`` (ISO-8601 UTC with a Z) and
``<name>_ms`` (epoch milliseconds), so neither a browser nor a shell script has to parse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from serving.errors import error_responses
from serving.timeparse import parse_time_ms
from stratum.errors import cite, error_detail

# Statuses any read may answer: a read token set but missing, a bad parameter, storage.
READ_ERRORS = error_responses(401, 422, 500, 503)
# DateTime64(3) holds 1900-2299; past 2200 nobody means it, and negative epochs are typos.
MIN_TIME_MS, MAX_TIME_MS = 0, 7_258_118_400_000


def bad_parameter(code: str, message: str, **details: Any) -> HTTPException:
    return HTTPException(422, detail=error_detail(code, message, **details))


def time_param(text: str | None, default_ms: int, now_ms: int, name: str) -> int:
    """A time query parameter in 1970-2200, or a 422 citing a short prefix of it."""
    if not text:
        return default_ms
    try:
        ms = parse_time_ms(text, now_ms=now_ms)
    except ValueError as exc:
        raise bad_parameter("invalid_parameter", f"{name}: {exc}", parameter=name) from exc
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise bad_parameter("invalid_parameter", f"{name}: {cite(text)} is outside "
                            "1970-2200", parameter=name)
    return ms


def iso(ms: int) -> str:
    """2026-11-21T10:00:00Z, or 2026-11-21T10:00:00.125Z when there are milliseconds."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    spec = "milliseconds" if ms % 1000 else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def iso_or_none(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def ms_of(moment: datetime | None) -> int | None:
    """Epoch ms of an aware datetime; a naive one is UTC (chDB hands those back)."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return int(aware.timestamp() * 1000)


def age_s(now_ms: int, ms: int | None) -> float | None:
    """Seconds from ``ms`` to now (negative would be a clock skew: shown as 0)."""
    return None if ms is None else round(max(0, now_ms - ms) / 1000, 3)
