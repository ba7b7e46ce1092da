"""Window arithmetic as pure functions over epoch milliseconds."""

from __future__ import annotations

import re
from functools import lru_cache

from stratum.errors import cite

_DURATION = re.compile(r"^(\d{1,15})(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@lru_cache(maxsize=1024)  # metric properties call it per window on the hot path
def parse_duration_ms(text: str) -> int:
    """``"1m"`` -> 60000. Units: ms, s, m, h, d."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{cite(text)} is not a duration like 30s, 1m, 5m, 1h or 1d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_duration(duration_ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if duration_ms % size == 0:
            return f"{duration_ms // size}{unit}"
    return f"{duration_ms}ms"


def window_start(timestamp_ms: int, duration_ms: int) -> int:
    """Start of the tumbling window (aligned to the epoch) holding ``timestamp_ms``."""
    return timestamp_ms - timestamp_ms % duration_ms


def hopping_window_starts(timestamp_ms: int, duration_ms: int, step_ms: int) -> list[int]:
    """Starts of every hopping window ``[s, s + duration_ms)`` holding ``timestamp_ms``."""
    last = timestamp_ms - timestamp_ms % step_ms
    first = last - duration_ms + step_ms
    return [s for s in range(first, last + 1, step_ms) if s <= timestamp_ms < s + duration_ms]


def is_window_final(window_start_ms: int, duration_ms: int, watermark_ms: int) -> bool:
    """A window is final once the watermark has passed its end."""
    return window_start_ms + duration_ms <= watermark_ms
