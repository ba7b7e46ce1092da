"""How numbers and times read in the UI: one place, so every page says it the same way.

Times are shown in UTC (the API's zone) unless the page's time bar asks for the
browser's local time: a refresh callback then runs inside :func:`display_zone`, and every
clock text and chart axis (:func:`dashboard.series.to_naive_utc`) is shifted by the
browser's offset and labelled with :func:`zone_name` ("UTC" or "UTC+01:00").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, timezone

from dashboard.api_models import MetricInfo

_OFFSET_MIN: ContextVar[int] = ContextVar("display_offset_min", default=0)
_LOCAL: ContextVar[bool] = ContextVar("display_local", default=False)


@contextmanager
def display_zone(zone: str | None, offset_min: int | None) -> Iterator[None]:
    """Render times in the browser's zone (``zone == "local"``) or in UTC."""
    local = zone == "local"
    tokens = (_LOCAL.set(local), _OFFSET_MIN.set(int(offset_min or 0) if local else 0))
    try:
        yield
    finally:
        _LOCAL.reset(tokens[0])
        _OFFSET_MIN.reset(tokens[1])


def display_offset() -> timedelta:
    return timedelta(minutes=_OFFSET_MIN.get())


def zone_name() -> str:
    """ "UTC", or "UTC+01:00" for a browser's local time (even when that is UTC+00:00)."""
    if not _LOCAL.get():
        return "UTC"
    minutes = _OFFSET_MIN.get()
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def shown(moment: datetime) -> datetime:
    """``moment`` in the display zone (aware)."""
    return utc(moment).astimezone(timezone(display_offset()))


def number_format(metric: MetricInfo) -> str:
    """A format spec both Python and Plotly's d3 understand (",.2f")."""
    if metric.kind.whole:
        return ",.0f"
    if metric.unit == "ms":
        return ",.1f"
    return ",.2f"


def fmt_value(value: float | None, metric: MetricInfo) -> str:
    if value is None:
        return "–"
    return format(value, number_format(metric))


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fmt_clock(moment: datetime | None) -> str:
    """10:41:02 — for things that happened within the day on screen."""
    return shown(moment).strftime("%H:%M:%S") if moment else "–"


def fmt_when(moment: datetime | None, now: datetime) -> str:
    """Clock time today, with the date when it was another day."""
    if moment is None:
        return "–"
    moment = shown(moment)
    if moment.date() == shown(now).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def fmt_duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return fmt_seconds((utc(end) - utc(start)).total_seconds())


def fmt_seconds(seconds: float) -> str:
    """4.2 s, 3 min 5 s, 2 h 10 min: precise when short, coarse when long."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


INGEST_WINDOW = "last 30 s"  # the API's rate window for stage counters (serving/pipeline.py)


def fmt_rate_number(per_s: float) -> str:
    """Whole numbers from 100 up, one decimal from 1, two significant digits below:
    12,404 · 18.5 · 0.25 · 0.0011 (never "12,404.0", nor "0.00" for a slow hour)."""
    if abs(per_s) >= 100:
        return f"{per_s:,.0f}"
    return f"{per_s:.1f}" if abs(per_s) >= 1 else f"{per_s:.2g}"


def fmt_rate(per_s: float | None) -> str:
    """Events per second with the precision of :func:`fmt_rate_number`."""
    return "–" if per_s is None else f"{fmt_rate_number(per_s)}/s"


def fmt_iso(moment: datetime | None) -> str:
    """2026-11-21 10:00:00.120 UTC: the full timestamp, for details panels."""
    if moment is None:
        return "–"
    return shown(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + f" {zone_name()}"


def fmt_count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"
