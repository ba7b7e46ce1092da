"""The explorer's view as data: parsed from and written to the URL's query string, so that a
link reproduces the view; plus the table rows and the CSV of a series.

``?metric=revenue&range=24h&step=5m&group_by=country&filter_dim=country&filter=DE,FR``;
custom ranges add ``start`` and ``end`` (ISO-8601 or epoch ms, as the API takes them).
Pure functions, tested without a browser.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from dashboard.api_models import MetricInfo, SeriesResponse
from dashboard.drawing import split_open, step_delta
from dashboard.formatting import utc
from dashboard.series import Line, lines_of, to_naive_utc
from stratum.windows import parse_duration_ms

PRESETS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
PRESET_LABELS = {"15m": "15 min", "1h": "1 h", "24h": "24 h", "7d": "7 d", "custom": "custom"}
CUSTOM = "custom"
DEFAULT_RANGE = "1h"
TARGET_POINTS = 400  # the default step is the finest that keeps a line under this


@dataclass(frozen=True)
class ExplorerQuery:
    metric: str | None = None
    range: str = DEFAULT_RANGE
    start: str = ""
    end: str = ""
    step: str | None = None
    group_by: str | None = None
    filter_dim: str | None = None
    filter_values: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filters(self) -> dict[str, list[str]]:
        if self.filter_dim and self.filter_values:
            return {self.filter_dim: list(self.filter_values)}
        return {}


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if isinstance(value, list):  # Dash hands repeated parameters over as a list
        value = value[-1] if value else None
    return str(value).strip() if value is not None else ""


def from_params(params: Mapping[str, Any]) -> ExplorerQuery:
    """Whatever the URL says, made safe: unknown ranges fall back, blanks become None."""
    range_ = _text(params, "range")
    values = _text(params, "filter")
    return ExplorerQuery(
        metric=_text(params, "metric") or None,
        range=range_ if range_ in PRESETS or range_ == CUSTOM else DEFAULT_RANGE,
        start=_text(params, "start"),
        end=_text(params, "end"),
        step=_text(params, "step") or None,
        group_by=_text(params, "group_by") or None,
        filter_dim=_text(params, "filter_dim") or None,
        filter_values=tuple(v for v in values.split(",") if v),
    )


def to_search(query: ExplorerQuery) -> str:
    pairs: list[tuple[str, str]] = []
    if query.metric:
        pairs.append(("metric", query.metric))
    pairs.append(("range", query.range))
    if query.range == CUSTOM:
        pairs += [("start", query.start), ("end", query.end)]
    for key in ("step", "group_by", "filter_dim"):
        value = getattr(query, key)
        if value:
            pairs.append((key, value))
    if query.filter_dim and query.filter_values:
        pairs.append(("filter", ",".join(query.filter_values)))
    return "?" + urlencode(pairs)


def parse_moment(text: str) -> datetime:
    """ISO-8601 (no zone means UTC) or epoch milliseconds, like the API."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO-8601 such as 2026-11-21T10:00 "
            "(UTC) or epoch milliseconds"
        ) from None


def bounds(query: ExplorerQuery, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the view; ValueError with a message for the UI if unusable."""
    if query.range != CUSTOM:
        return now - PRESETS[query.range], now
    if not query.start:
        raise ValueError("Enter a start time for the custom range.")
    start = parse_moment(query.start)
    end = parse_moment(query.end) if query.end else now
    if end <= start:
        raise ValueError("The end of the custom range must be after its start.")
    return start, end


def default_step(metric: MetricInfo, span: timedelta) -> str:
    """The finest of the metric's windows that keeps the line under TARGET_POINTS."""
    span_ms = span.total_seconds() * 1000
    for window in metric.windows:
        if span_ms / parse_duration_ms(window) <= TARGET_POINTS:
            return window
    return metric.windows[-1] if metric.windows else "1m"


def settle(
    query: ExplorerQuery, metric: MetricInfo, span: timedelta, *, keep_step: bool
) -> ExplorerQuery:
    """Make the view valid for ``metric``: a step it has, dimensions it has."""
    step = query.step if keep_step and query.step in metric.windows else None
    dims = metric.dimensions
    group_by = query.group_by if query.group_by in dims else None
    filter_dim = query.filter_dim if query.filter_dim in dims else None
    return replace(
        query,
        metric=metric.name,
        step=step or default_step(metric, span),
        group_by=group_by,
        filter_dim=filter_dim,
        filter_values=query.filter_values if filter_dim else (),
    )


def dropped_note(before: ExplorerQuery, after: ExplorerQuery, metric: MetricInfo) -> str | None:
    """What switching to ``metric`` removed from the view, said on screen (a filter
    kept silently, or dropped silently, changes the numbers without a word)."""
    lost = []
    if before.filter_dim and before.filter_dim != after.filter_dim:
        values = ",".join(before.filter_values)
        lost.append(f"the filter {before.filter_dim}" + (f"={values}" if values else ""))
    if before.group_by and before.group_by != after.group_by:
        lost.append(f"grouping by {before.group_by}")
    if not lost:
        return None
    dims = ", ".join(metric.dimensions) or "none"
    return (
        f"Removed {' and '.join(lost)}: {metric.name} has no such dimension "
        f"(its dimensions: {dims})."
    )


def _group_text(line: Line) -> str:
    if line.folded:
        return f"other ({line.folded} groups)"
    return " · ".join(f"{k}={v}" for k, v in line.group.items()) or "total"


def table_rows(
    response: SeriesResponse, *, additive: bool = True, now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per drawn (window, line), newest first: the same lines as the chart's
    legend (top N + other), a window still filling noted "in progress", and the first
    window after missing ones noted with the gap's length."""
    size = step_delta(response.step)
    moment = to_naive_utc(now or response.end)
    rows = []
    for line in lines_of(response, additive=additive):
        piece = split_open(line, response.step, moment)
        cut = piece.done.x[-1] if piece.done.x else None
        tail = set(piece.open.x) if piece.open is not None else set()
        for i, x in enumerate(line.x):
            note = "in progress" if x in tail and (cut is None or x > cut) else ""
            if i and x - line.x[i - 1] > size:
                missing = int((x - line.x[i - 1]) / size) - 1
                note = ", ".join(
                    p for p in (note, f"after {missing} missing window{'s' * (missing != 1)}") if p
                )
            rows.append(
                {
                    "window": x.strftime("%Y-%m-%d %H:%M:%S"),
                    "group": _group_text(line),
                    "value": line.y[i],
                    "source": line.source[i],
                    "events": line.counts[i] if line.counts else None,
                    "note": note,
                }
            )
    return sorted(rows, key=lambda r: (r["window"], r["group"]), reverse=True)


def csv_text(response: SeriesResponse, dimensions: Sequence[str]) -> str:
    """Long format, one column per grouped dimension, times as ISO-8601 UTC and epoch ms."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["window_start", "window_start_ms", *dimensions, "value", "source", "events"])
    for series in response.series:
        for point in series.points:
            moment = utc(point.t)
            writer.writerow(
                [
                    moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    int(moment.timestamp() * 1000),
                    *(series.group.get(d, "") for d in dimensions),
                    "" if point.value is None else repr(point.value),
                    point.source,
                    "" if point.count is None else point.count,
                ]
            )
    return out.getvalue()
