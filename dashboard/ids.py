"""Every component id, prefixed by the page that owns it, in one place.

Why constants: a typo in an id string is a callback that silently never fires;
a typo in a constant is an import error. Tests select elements with these too.
Pattern-matching ids are dicts ``{"type": <TYPE>, "metric": <name>}``.
"""

from __future__ import annotations

from typing import Any, Final

# Shell (dashboard/app.py): nav bar and health strip on every page.
APP_LOCATION: Final = "app-location"
APP_NAV: Final = "app-nav"
APP_HEALTH_INTERVAL: Final = "app-health-interval"
APP_HEALTH_STRIP: Final = "app-health-strip"

# Overview page.
OVERVIEW_CATALOG: Final = "overview-catalog"
OVERVIEW_CATALOG_INTERVAL: Final = "overview-catalog-interval"
OVERVIEW_REFRESH_INTERVAL: Final = "overview-refresh-interval"
OVERVIEW_STATUS: Final = "overview-status"
OVERVIEW_GRID: Final = "overview-grid"
OVERVIEW_GRAPH: Final = "overview-graph"  # pattern type, one per metric
OVERVIEW_LAST_POINT: Final = "overview-last-point"  # pattern type
OVERVIEW_KPI: Final = "overview-kpi"  # pattern type

# Admin page.
ADMIN_TOKEN_INPUT: Final = "admin-token-input"  # noqa: S105 (an element id, not a secret)
ADMIN_RECOMPUTE: Final = "admin-recompute"
ADMIN_STATUS: Final = "admin-status"
ADMIN_LAST_JOB: Final = "admin-last-job"
ADMIN_JOBS_INTERVAL: Final = "admin-jobs-interval"
ADMIN_JOBS_TABLE: Final = "admin-jobs-table"
ADMIN_JOBS_UPDATED: Final = "admin-jobs-updated"


def metric_id(kind: str, metric: Any) -> dict[str, Any]:
    """A pattern-matching id for one metric's component of ``kind`` (OVERVIEW_*).

    ``metric`` is a metric name, or a wildcard such as ``dash.ALL`` in a callback.
    """
    return {"type": kind, "metric": metric}
