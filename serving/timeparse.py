"""Times in query strings: ISO-8601 (a missing zone means UTC), epoch milliseconds, or
``now`` / ``now-15m`` relative to the server clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from stratum.errors import cite
from stratum.windows import parse_duration_ms

MAX_TIME_CHARS = 64  # the longest ISO-8601 with nanoseconds and a zone is 35


def parse_time_ms(text: str, *, now_ms: int | None = None) -> int:
    """Epoch milliseconds of a query-string time; ValueError says what to send."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = text.strip()
    if len(value) > MAX_TIME_CHARS:
        raise ValueError(f"{cite(text)} is not a time: it is too long")
    if value == "now":
        return now_ms
    if value.startswith("now-"):
        return now_ms - parse_duration_ms(value[4:])
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00", 1))
    except ValueError:
        raise ValueError(
            f"{cite(text)} is not a time: use ISO-8601 (2026-11-21T10:00:00Z), epoch "
            "milliseconds, or now-15m"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)

