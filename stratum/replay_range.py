"""What a Kappa replay rebuilds and what it keeps, said the same way by the API, the
replay job's params, the CLI and the admin page.

A replay from a time rebuilds the windows that start at or after that time aligned down
(:meth:`stratum.metrics.MetricCatalog.replay_start_ms`); every older window stays served:
from batch where batch covers it, otherwise carried over from the live generation at the
switch. A replay without a time rebuilds every window.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds").replace(
        "+00:00", "Z"
    )


def range_params(rebuild_from_ms: int | None, carried_rows: int | None = None) -> dict[str, Any]:
    """The job params naming the range: ``rebuild_from_ms`` (absent: all of history),
    ``rebuilds`` and ``carries_over`` in words, ``carried_rows`` once switched."""
    if rebuild_from_ms is None:
        return {"rebuilds": "all windows", "carries_over": "nothing"}
    start = _iso(rebuild_from_ms)
    params: dict[str, Any] = {
        "rebuild_from_ms": rebuild_from_ms,
        "rebuilds": f"windows from {start}",
        "carries_over": f"windows before {start} that batch does not serve, from the live "
        "generation at the switch",
    }
    if carried_rows is not None:
        params["carried_rows"] = carried_rows
    return params


def describe(params: Mapping[str, Any]) -> str:
    """One line for people: "rebuilds windows from …; keeps windows before … (batch, or
    carried over from the live generation)"."""
    start = params.get("rebuild_from_ms")
    if not isinstance(start, int):
        return "rebuilds all windows from the archive and the log"
    text = (
        f"rebuilds windows from {_iso(start)}; keeps the windows before it (served by "
        "batch, or carried over from the live generation)"
    )
    asked = params.get("from_ms")
    if isinstance(asked, int) and asked != start:
        text += f"; asked from {_iso(asked)}, aligned down to a window start"
    carried = params.get("carried_rows")
    if isinstance(carried, int):
        text += f"; {carried} window row(s) carried over"
    return text
