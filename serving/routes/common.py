"""What several routes share: time fields in both forms, and documented error statuses.

Every time a route returns comes twice, ``<name>`` (ISO-8601 UTC with a Z) and
``<name>_ms`` (epoch milliseconds), so neither a browser nor a shell script has to parse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from serving.errors import error_responses
from stratum.errors import error_detail
from stratum.timeparse import JobTimeError, time_in_range_ms

# Statuses any read may answer: a read token set but missing, a bad parameter, storage.
READ_ERRORS = error_responses(401, 422, 500, 503)


def bad_parameter(code: str, message: str, **details: Any) -> HTTPException:
    return HTTPException(422, detail=error_detail(code, message, **details))


def split_list(text: str) -> list[str]:
    """``DE,FR`` -> ["DE", "FR"]: a comma separates values (as in ``group_by`` and the
    dashboard's URLs); ``\\,`` is a literal comma and ``\\\\`` a literal backslash
    (any other backslash is itself). Empty items are dropped."""
    items: list[str] = []
    current: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and text[position + 1 : position + 2] in (",", "\\"):
            position += 1
            char = text[position]
            current.append(char)
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        position += 1
    items.append("".join(current))
    return [item for item in items if item]


def time_param(text: str | None, default_ms: int, now_ms: int, name: str) -> int:
    """A time query parameter in 1970-2200, or a 422 citing a short prefix of it."""
    if not text:
        return default_ms
    try:
        return time_in_range_ms(text, name, now_ms=now_ms)
    except JobTimeError as exc:
        raise job_time_error(exc) from exc


def job_time_error(exc: JobTimeError) -> HTTPException:
    return bad_parameter(exc.code, str(exc), parameter=exc.parameter)


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
