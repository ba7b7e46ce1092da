"""Rules for drawing a series honestly: which windows are still filling, where data is
missing, and which colour each line gets. Pure functions, tested without a browser.

- A window is *complete* once it ended and a grace period passed (the just-closed window
  still takes stragglers): ``t + step + min(step, 1 min) <= now``. Charts draw the rest
  as "in progress"; tiles and card headlines use the newest complete window, so the
  headline is always the last solid point on the chart.
- A missing window is a gap: a ``None`` is inserted after a point whose successor is
  more than one step later, so Plotly breaks the line there instead of bridging it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from dashboard.series import OTHER, Line
from stratum.windows import parse_duration_ms

# Colour-blind-safe hues (Okabe-Ito, completed with Paul Tol's "muted"), most distinct
# first; "other" is always grey so it never reads as one more group.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#332288",
    "#999933",
    "#882255",
    "#44AA99",
)
OTHER_COLOUR = "#8c96a5"
MAX_GRACE = timedelta(minutes=1)


def step_delta(step: str) -> timedelta:
    return timedelta(milliseconds=parse_duration_ms(step))


def complete_before(step: str, now: datetime) -> datetime:
    """Windows starting at or before this moment are complete (``now`` naive UTC or aware)."""
    size = step_delta(step)
    return now - size - min(size, MAX_GRACE)


def colour_of(label: str, index: int) -> str:
    return OTHER_COLOUR if label == OTHER else PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Pieces:
    """A line cut for drawing: complete windows (gaps as None) and the open tail, which
    starts at the last complete point so the dashed tail joins the solid line."""

    done: Line
    open: Line | None
    gaps: int


def _subset(line: Line, keep: Sequence[int]) -> Line:
    return replace(
        line,
        x=[line.x[i] for i in keep],
        y=[line.y[i] for i in keep],
        source=[line.source[i] for i in keep],
        counts=[line.counts[i] for i in keep] if line.counts else [],
    )


def with_gaps(line: Line, step: str) -> tuple[Line, int]:
    """``line`` with a None after each point whose next window is missing; the number
    of gaps. Why a None and not nothing: ``connectgaps=False`` only breaks at a None."""
    size = step_delta(step)
    x: list[datetime] = []
    y: list[float | None] = []
    source: list[str] = []
    counts: list[int | None] = []
    gaps = 0
    for i, moment in enumerate(line.x):
        if i and moment - line.x[i - 1] > size:
            gaps += 1
            x.append(line.x[i - 1] + size)
            y.append(None)
            source.append("gap")
            counts.append(None)
        x.append(moment)
        y.append(line.y[i])
        source.append(line.source[i])
        counts.append(line.counts[i] if line.counts else None)
    return replace(line, x=x, y=y, source=source, counts=counts), gaps


def split_open(line: Line, step: str, now: datetime) -> Pieces:
    """Complete windows with gaps marked, and the still-filling tail (or None)."""
    cut = complete_before(step, now)
    done_at = [i for i, x in enumerate(line.x) if x <= cut]
    open_at = [i for i, x in enumerate(line.x) if x > cut]
    done, gaps = with_gaps(_subset(line, done_at), step)
    if not open_at:
        return Pieces(done, None, gaps)
    tail = _subset(line, open_at)
    if done_at and tail.x[0] - line.x[done_at[-1]] > step_delta(step):
        gaps += 1  # missing windows between the last complete one and the open ones
    elif done_at and line.y[done_at[-1]] is not None:
        tail = _subset(line, [done_at[-1], *open_at])  # join the solid line
    return Pieces(done, tail, gaps)


def drawn_points(pieces: Sequence[Pieces]) -> int:
    """Points with a value on the chart (a joined tail's first point counted once)."""
    total = 0
    for piece in pieces:
        total += sum(v is not None for v in piece.done.y)
        if piece.open is not None:
            shared = bool(piece.done.x) and piece.open.x[0] == piece.done.x[-1]
            total += sum(v is not None for v in piece.open.y) - shared
    return total


def newest_complete(
    xs: Sequence[datetime], ys: Sequence[float | None], step: str, now: datetime
) -> tuple[datetime, float | None] | None:
    """The newest complete window with a value: the headline of tiles and cards."""
    cut = complete_before(step, now)
    done = [(x, y) for x, y in zip(xs, ys, strict=True) if x <= cut and y is not None]
    return done[-1] if done else None
