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
