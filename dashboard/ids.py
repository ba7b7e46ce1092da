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
APP_PAUSE_BUTTON: Final = "app-pause-button"  # pause / resume every page's auto refresh
APP_PAUSED: Final = "app-paused"  # dcc.Store (session): True while paused
LIVE_INTERVAL: Final = "live-interval"  # pattern type {"type", "page"}: pausable intervals

# Overview page.
OVERVIEW_CATALOG: Final = "overview-catalog"
OVERVIEW_CATALOG_INTERVAL: Final = "overview-catalog-interval"
OVERVIEW_STATUS: Final = "overview-status"
OVERVIEW_GRID: Final = "overview-grid"
OVERVIEW_GRAPH: Final = "overview-graph"  # pattern type, one per metric
OVERVIEW_LAST_POINT: Final = "overview-last-point"  # pattern type
OVERVIEW_KPI: Final = "overview-kpi"  # pattern type
OVERVIEW_TILES: Final = "overview-tiles"
OVERVIEW_TILE_VALUE: Final = "overview-tile-value"  # pattern type, one per metric
OVERVIEW_TILE_NOTE: Final = "overview-tile-note"  # pattern type
OVERVIEW_TILE_SPARK: Final = "overview-tile-spark"  # pattern type
OVERVIEW_RATE_VALUE: Final = "overview-rate-value"
OVERVIEW_RATE_NOTE: Final = "overview-rate-note"
OVERVIEW_RATE_SPARK: Final = "overview-rate-spark"
OVERVIEW_FRESHNESS: Final = "overview-freshness"
OVERVIEW_REFRESHED: Final = "overview-refreshed"  # dcc.Store: epoch s of the last refresh

# Explorer page.
EXPLORER_CATALOG: Final = "explorer-catalog"
EXPLORER_CATALOG_INTERVAL: Final = "explorer-catalog-interval"
EXPLORER_METRIC: Final = "explorer-metric"
EXPLORER_RANGE: Final = "explorer-range"
EXPLORER_CUSTOM: Final = "explorer-custom"  # the row of the two custom time inputs
EXPLORER_START: Final = "explorer-start"
EXPLORER_END: Final = "explorer-end"
EXPLORER_STEP: Final = "explorer-step"
EXPLORER_GROUP_BY: Final = "explorer-group-by"
EXPLORER_FILTER_DIM: Final = "explorer-filter-dim"
EXPLORER_FILTER_VALUES: Final = "explorer-filter-values"
EXPLORER_GRAPH: Final = "explorer-graph"
EXPLORER_TABLE: Final = "explorer-table"
EXPLORER_SUMMARY: Final = "explorer-summary"
EXPLORER_STATUS: Final = "explorer-status"
EXPLORER_QUERY: Final = "explorer-query"  # dcc.Store: the view as URL parameters
EXPLORER_REFRESHED: Final = "explorer-refreshed"
EXPLORER_DOWNLOAD_BUTTON: Final = "explorer-download-button"
EXPLORER_DOWNLOAD: Final = "explorer-download"
EXPLORER_URL_SINK: Final = "explorer-url-sink"  # output of the clientside URL writer
EXPLORER_VALUES_DIM: Final = "explorer-values-dim"  # dcc.Store: the dim the values belong to

# Pipeline health page.
PIPELINE_STATUS: Final = "pipeline-status"
PIPELINE_TILES: Final = "pipeline-tiles"
PIPELINE_THROUGHPUT: Final = "pipeline-throughput"
PIPELINE_PARTITIONS: Final = "pipeline-partitions"
PIPELINE_TIMELINE: Final = "pipeline-timeline"
PIPELINE_JOBS: Final = "pipeline-jobs"
PIPELINE_UPDATED: Final = "pipeline-updated"
PIPELINE_REFRESHED: Final = "pipeline-refreshed"

# Admin page.
ADMIN_TOKEN_INPUT: Final = "admin-token-input"  # noqa: S105 (an element id, not a secret)
ADMIN_RECOMPUTE: Final = "admin-recompute"
ADMIN_STATUS: Final = "admin-status"
ADMIN_LAST_JOB: Final = "admin-last-job"
ADMIN_JOBS_INTERVAL: Final = "admin-jobs-interval"
ADMIN_JOBS_TABLE: Final = "admin-jobs-table"
ADMIN_JOBS_UPDATED: Final = "admin-jobs-updated"


def live_interval(page: Any) -> dict[str, Any]:
    """The auto-refresh interval of ``page`` (or ``dash.ALL``): the pause control stops
    every one of them at once."""
    return {"type": LIVE_INTERVAL, "page": page}


def metric_id(kind: str, metric: Any) -> dict[str, Any]:
    """A pattern-matching id for one metric's component of ``kind`` (OVERVIEW_*).

    ``metric`` is a metric name, or a wildcard such as ``dash.ALL`` in a callback.
    """
    return {"type": kind, "metric": metric}
