"""Times people type (query strings, job requests, the admin page): ISO-8601 (a missing
zone means UTC), epoch milliseconds, or ``now`` / ``now-15m`` relative to the clock; and
the checks a job's times pass before it is queued."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from stratum.errors import cite
from stratum.windows import parse_duration_ms

MAX_TIME_CHARS = 64  # the longest ISO-8601 with nanoseconds and a zone is 35


def parse_time_ms(text: str, *, now_ms: int | None = None) -> int:
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


def iso(ms: int) -> str:
    """2026-11-21T10:00:00Z (milliseconds only when there are some)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    spec = "milliseconds" if ms % 1000 else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


# DateTime64(3) holds 1900-2299; past 2200 nobody means it, and negative epochs are typos.
MIN_TIME_MS, MAX_TIME_MS = 0, 7_258_118_400_000


class JobTimeError(ValueError):
    """A job's time input that cannot run; ``parameter`` names it, ``code`` says how."""

    def __init__(self, message: str, parameter: str, code: str = "invalid_parameter") -> None:
        self.parameter = parameter
        self.code = code
        super().__init__(message)


def time_in_range_ms(text: str, name: str, *, now_ms: int) -> int:
    """``text`` as epoch ms in 1970-2200, or a JobTimeError naming ``name``."""
    try:
        ms = parse_time_ms(text, now_ms=now_ms)
    except ValueError as exc:
        raise JobTimeError(f"{name}: {exc}", name) from None
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise JobTimeError(f"{name}: {cite(text)} is outside 1970-2200", name)
    return ms


def batch_range_ms(
    start: str | None, end: str | None, *, now_ms: int | None = None
) -> tuple[int | None, int | None]:
    """A recompute's ``start`` / ``end`` as epoch ms, checked before anything is queued:
    each a time, and the start before the end (a missing end is now). Why here: the API
    and the admin page refuse the same inputs with the same words."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start_ms = time_in_range_ms(start, "start", now_ms=now_ms) if start else None
    end_ms = time_in_range_ms(end, "end", now_ms=now_ms) if end else None
    if start_ms is not None and start_ms >= (now_ms if end_ms is None else end_ms):
        until = f"end ({iso(end_ms)})" if end_ms is not None else f"now ({iso(now_ms)})"
        raise JobTimeError(
            f"start ({iso(start_ms)}) must be before {until}: the range "
            "holds no event hour to recompute",
            "start",
            "invalid_range",
        )
    return start_ms, end_ms


def replay_from_ms(text: str | None, *, now_ms: int | None = None) -> int | None:
    """A replay's ``from`` as epoch ms (None: all of history), not in the future."""
    if not text or not text.strip():
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    from_ms = time_in_range_ms(text, "from", now_ms=now_ms)
    if from_ms > now_ms:
        raise JobTimeError(
            f"from ({iso(from_ms)}) is in the future: a replay rebuilds "
            "windows up to now; give a past time such as now-6h",
            "from",
            "invalid_range",
        )
    return from_ms
