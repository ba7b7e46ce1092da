"""Every component id, prefixed by the page that owns it, in one place.

Why constants: a typo in an id string is a callback that silently never fires;
a typo in a constant is an import error. Tests select elements with these too.
Pattern-matching ids are dicts ``{"type": <TYPE>, "metric": <name>}``.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

ComponentId: TypeAlias = str | dict[str, Any]  # a constant below, or a pattern-matching dict

# Shell (dashboard/app.py): nav bar and health strip on every page.
APP_LOCATION: Final = "app-location"
APP_NAV: Final = "app-nav"
APP_HEALTH_INTERVAL: Final = "app-health-interval"
APP_HEALTH_STRIP: Final = "app-health-strip"
APP_PAUSE_BUTTON: Final = "app-pause-button"  # pause / resume every page's auto refresh
APP_PAUSED: Final = "app-paused"  # dcc.Store (session): True while paused
LIVE_INTERVAL: Final = "live-interval"  # pattern type {"type", "page"}: pausable intervals
APP_TZ_OFFSET: Final = "app-tz-offset"  # dcc.Store: the browser's minutes east of UTC
TIMEBAR: Final = "timebar"  # pattern types "timebar-<part>" {"type", "page"}: time bar

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
OVERVIEW_API: Final = "overview-api"  # pattern type: a card's curl command
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
EXPLORER_DROPPED: Final = "explorer-dropped"  # what a metric switch removed from the view
EXPLORER_QUERY: Final = "explorer-query"  # dcc.Store: the view as URL parameters
EXPLORER_API: Final = "explorer-api"  # the chart's curl command
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
PIPELINE_API: Final = "pipeline-api"
PIPELINE_REFRESHED: Final = "pipeline-refreshed"

# Drift page.
DRIFT_CATALOG: Final = "drift-catalog"
DRIFT_CATALOG_INTERVAL: Final = "drift-catalog-interval"
DRIFT_METRIC: Final = "drift-metric"
DRIFT_TILES: Final = "drift-tiles"
DRIFT_GRAPH: Final = "drift-graph"
DRIFT_TABLE: Final = "drift-table"
DRIFT_STATUS: Final = "drift-status"
DRIFT_UPDATED: Final = "drift-updated"
DRIFT_API: Final = "drift-api"
DRIFT_REFRESHED: Final = "drift-refreshed"

# Admin page.
ADMIN_TOKEN_INPUT: Final = "admin-token-input"  # noqa: S105 (an element id, not a secret)
ADMIN_ALERT: Final = "admin-alert"  # refresh problems: a refused token, the API down
ADMIN_MODE: Final = "admin-mode"  # incremental / full / range
ADMIN_MODE_NOTE: Final = "admin-mode-note"
ADMIN_RANGE: Final = "admin-range"  # the row of the two range inputs
ADMIN_START: Final = "admin-start"
ADMIN_END: Final = "admin-end"
ADMIN_RECOMPUTE: Final = "admin-recompute"
ADMIN_REPLAY_ALL: Final = "admin-replay-all"
ADMIN_REPLAY_FROM: Final = "admin-replay-from"  # the time input
ADMIN_REPLAY_FROM_BUTTON: Final = "admin-replay-from-button"
ADMIN_CONFIRM: Final = "admin-confirm"  # the inline confirmation step
ADMIN_CONFIRM_TEXT: Final = "admin-confirm-text"
ADMIN_CONFIRM_YES: Final = "admin-confirm-yes"
ADMIN_CONFIRM_NO: Final = "admin-confirm-no"
ADMIN_PENDING: Final = "admin-pending"  # dcc.Store: the action awaiting confirmation
ADMIN_STATUS: Final = "admin-status"
ADMIN_LAST_JOB: Final = "admin-last-job"  # dcc.Store: id of the job this page started
ADMIN_CANCEL: Final = "admin-cancel"  # pattern type {"type", "job"}: cancel an active job
ADMIN_CANCEL_REQUEST: Final = "admin-cancel-request"  # dcc.Store: {"job", "at"} of a click
ADMIN_ACTIVE: Final = "admin-active"  # live progress of queued and running jobs
ADMIN_GENERATION: Final = "admin-generation"
ADMIN_JOBS_TABLE: Final = "admin-jobs-table"
ADMIN_JOBS_UPDATED: Final = "admin-jobs-updated"
ADMIN_KIND_FILTER: Final = "admin-kind-filter"
ADMIN_PAGE_PREV: Final = "admin-page-prev"
ADMIN_PAGE_NEXT: Final = "admin-page-next"
ADMIN_PAGE_INFO: Final = "admin-page-info"
ADMIN_OFFSET: Final = "admin-offset"  # dcc.Store: the history page's offset
ADMIN_JOB_ROW: Final = "admin-job-row"  # pattern {"type", "job", "part"}: history rows
ADMIN_SELECTED: Final = "admin-selected"  # dcc.Store: the job whose details are shown
ADMIN_DETAILS: Final = "admin-details"
ADMIN_REFRESHED: Final = "admin-refreshed"  # dcc.Store: epoch s of the last refresh
ADMIN_VIEW_KEYS: Final = "admin-view-keys"  # dcc.Store: what each part last showed


def live_interval(page: Any) -> dict[str, Any]:
    """The auto-refresh interval of ``page`` (or ``dash.ALL``): the pause control stops
    every one of them at once."""
    return {"type": LIVE_INTERVAL, "page": page}


def job_id(kind: str, job: Any) -> dict[str, Any]:
    """A pattern-matching id for one job's component of ``kind`` (ADMIN_CANCEL, ...)."""
    return {"type": kind, "job": job}


def job_row(job: Any, part: Any) -> dict[str, Any]:
    """A history row of ``job``: ``part`` is "main", or "error" for the row under it."""
    return {"type": ADMIN_JOB_ROW, "job": job, "part": part}


def metric_id(kind: str, metric: Any) -> dict[str, Any]:
    """A pattern-matching id for one metric's component of ``kind`` (OVERVIEW_*).

    ``metric`` is a metric name, or a wildcard such as ``dash.ALL`` in a callback.
    """
    return {"type": kind, "metric": metric}


def timebar(part: str, page: Any) -> dict[str, Any]:
    """A time bar control of ``page``: part is range, custom, start, end, refresh, tz or
    a URL writer's sink (see :mod:`dashboard.timebar`)."""
    return {"type": f"{TIMEBAR}-{part}", "page": page}
