"""From an API series response to what the overview draws: lines, a headline, a last point.

Pure functions over the API models, so the drawing code stays free of data rules and
these rules can be tested without a browser.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dashboard.api_models import Job, MetricInfo, Point, SeriesResponse
from dashboard.formatting import display_offset, fmt_clock, zone_name

MAX_LINES = 10  # the palette's distinct hues: 9 groups and "other"
OTHER = "other"


@dataclass(frozen=True)
class Line:
    """One drawn line: x as naive UTC (Plotly has no time zones), y, and each point's source."""

    label: str
    x: list[datetime]
    y: list[float | None]
    source: list[str]
    counts: list[int | None] = field(default_factory=list)  # events per window
    group: dict[str, str] = field(default_factory=dict)
    folded: int = 0  # groups summed into this line ("other")

    @property
    def total(self) -> float:
        return sum(v for v in self.y if v is not None)


@dataclass(frozen=True)
class Headline:
    """The big number on a metric card: a 30-minute total, or the latest value."""

    label: str
    value: float | None


@dataclass(frozen=True)
class RunMark:
    """A batch run (or replay) to annotate on a chart: when it finished, what it did."""

    at: datetime
    text: str


def run_marks(jobs: Sequence[Job]) -> list[RunMark]:
    """Finished jobs as chart marks. Their time is wall-clock time on an event-time axis:
    close enough for live data, which is what they annotate."""
    marks = []
    for job in jobs:
        if job.finished_at is None or job.state not in ("succeeded", "failed"):
            continue
        at = job.finished_at.astimezone(UTC) if job.finished_at.tzinfo else job.finished_at
        text = f"{job.kind} run {job.state} at {fmt_clock(at)} {zone_name()}"
        if job.horizon is not None and job.kind == "batch" and job.state == "succeeded":
            text += f"; horizon → {fmt_clock(job.horizon)}"
        marks.append(RunMark(at, text))
    return marks


def group_by_for(metric: MetricInfo) -> tuple[str, ...]:
    """Split by the first dimension only when the parts add up (count, sum).

    Why: a few lines per type or country read well and sum to the whole; per-group
    quantiles would not, so those metrics are drawn as one total line.
    """
    if metric.additive and metric.dimensions:
        return (metric.dimensions[0],)
    return ()


def group_label(group: dict[str, str]) -> str:
    if not group:
        return "total"
    return " · ".join(value or "(none)" for value in group.values())


def to_naive_utc(moment: datetime) -> datetime:
    """Plotly's naive time: UTC, shifted into the display zone when the page asks for
    local time (:func:`dashboard.formatting.display_zone`); naive input is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment + display_offset()


def lines_of(response: SeriesResponse, *, additive: bool) -> list[Line]:
    """One line per group, alphabetical (stable colours across refreshes).

    More than MAX_LINES groups: additive metrics fold the smallest into "other";
    others keep the largest, since their values cannot be summed.
    """
    lines = [
        Line(
            label=group_label(series.group),
            x=[to_naive_utc(p.t) for p in series.points],
            y=[p.value for p in series.points],
            source=[p.source for p in series.points],
            counts=[p.count for p in series.points],
            group=dict(series.group),
        )
        for series in response.series
        if series.points
    ]
    if len(lines) > MAX_LINES:
        ranked = sorted(lines, key=lambda line: line.total, reverse=True)
        kept, rest = ranked[: MAX_LINES - 1], ranked[MAX_LINES - 1 :]
        lines = [*kept, _fold(rest)] if additive else ranked[:MAX_LINES]
    return sorted(lines, key=lambda line: (line.label == OTHER, line.label))


def _fold(lines: list[Line]) -> Line:
    """Sum several lines point by point; a window fed by different sources is "mixed"."""
    values: dict[datetime, float] = defaultdict(float)
    counts: dict[datetime, int] = defaultdict(int)
    sources: dict[datetime, set[str]] = defaultdict(set)
    for line in lines:
        line_counts = line.counts or [None] * len(line.x)
        for x, y, source, n in zip(line.x, line.y, line.source, line_counts, strict=True):
            if y is not None:
                values[x] += y
                counts[x] += n or 0
                sources[x].add(source)
    xs = sorted(values)
    return Line(
        label=OTHER,
        x=xs,
        y=[values[x] for x in xs],
        source=[next(iter(sources[x])) if len(sources[x]) == 1 else "mixed" for x in xs],
        counts=[counts[x] for x in xs],
        group=dict.fromkeys(lines[0].group, OTHER),
        folded=len(lines),
    )


def latest_point(response: SeriesResponse) -> Point | None:
    """The newest window that has a value, over all groups."""
    points = [p for s in response.series for p in s.points if p.value is not None]
    return max(points, key=lambda p: p.t, default=None)


def has_values(lines: list[Line]) -> bool:
    return any(v is not None for line in lines for v in line.y)


def headline(metric: MetricInfo, response: SeriesResponse) -> Headline:
    """Additive metrics: the total over the range; others: the newest value.

    Why not a total for quantiles: a sum of p95s means nothing. group_by_for keeps
    such metrics to one line, so "latest" is unambiguous.
    """
    if metric.additive:
        values = [p.value for s in response.series for p in s.points if p.value is not None]
        return Headline("total", sum(values) if values else None)
    newest = latest_point(response)
    return Headline("latest", newest.value if newest else None)
