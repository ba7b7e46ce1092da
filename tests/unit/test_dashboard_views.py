"""Dashboard rules without a browser: the explorer's URL state, default steps and CSV, the
overview tiles' numbers and freshness tones, and the refresh throttle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from dashboard.api_models import SeriesResponse, Status
from dashboard.explorer_state import (
    ExplorerQuery,
    bounds,
    csv_text,
    default_step,
    from_params,
    settle,
    table_rows,
    to_search,
)
from dashboard.kpi_tiles import (
    freshness,
    metric_tile_text,
    newest_complete,
    rate_text,
    throughput_metric,
)
from dashboard.live import too_soon
from tests.served import metric_info

NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
EVENTS = metric_info(
    name="events", aggregation="count", dimensions=("type", "country"), windows=("1m", "5m", "1h")
)
REVENUE = metric_info(
    name="revenue",
    aggregation="sum",
    where={"type": "purchase"},
    dimensions=("country",),
    windows=("1m", "5m", "1h"),
)


def response(points: dict[str, list[tuple[int, float]]], step: str = "1m") -> SeriesResponse:
    """Series per country; points as (minutes after 10:00, value)."""
    base = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    return SeriesResponse.model_validate(
        {
            "metric": "events",
            "step": step,
            "start": base,
            "end": NOW,
            "horizon": None,
            "series": [
                {
                    "group": {"country": c},
                    "points": [
                        {
                            "t": base + timedelta(minutes=m),
                            "value": v,
                            "source": "speed",
                            "count": int(v),
                        }
                        for m, v in pts
                    ],
                }
                for c, pts in points.items()
            ],
        }
    )


@pytest.mark.parametrize(
    "query",
    [
        ExplorerQuery(
            metric="events",
            range="24h",
            step="5m",
            group_by="country",
            filter_dim="type",
            filter_values=("page_view", "purchase"),
        ),
        ExplorerQuery(
            metric="revenue",
            range="custom",
            start="2026-11-21T09:00",
            end="1795255200000",
            step="1m",
        ),
        ExplorerQuery(),
    ],
)
def test_url_state_round_trips(query: ExplorerQuery) -> None:
    search = to_search(query)
    assert search.startswith("?")
    assert from_params(dict(parse_qsl(search[1:]))) == query


def test_url_state_survives_junk_and_lists() -> None:
    query = from_params({"range": "forever", "metric": ["a", "events"], "filter": ",x,,"})
    assert query.range == "1h" and query.metric == "events"
    assert query.filter_values == ("x",) and query.filters == {}


@pytest.mark.parametrize(
    ("range_", "step"), [("15m", "1m"), ("1h", "1m"), ("24h", "5m"), ("7d", "1h")]
)
def test_default_step_keeps_lines_readable(range_: str, step: str) -> None:
    start, end = bounds(ExplorerQuery(range=range_), NOW)
    assert default_step(EVENTS, end - start) == step


def test_custom_bounds_take_iso_and_epoch_ms_and_explain_mistakes() -> None:
    query = ExplorerQuery(range="custom", start="2026-11-21T09:00", end="1795255200000")
    assert bounds(query, NOW) == (
        datetime(2026, 11, 21, 9, tzinfo=UTC),
        datetime(2026, 11, 21, 10, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="not a time"):
        bounds(ExplorerQuery(range="custom", start="tuesday"), NOW)
    with pytest.raises(ValueError, match="after its start"):
        bounds(ExplorerQuery(range="custom", start="2026-11-21T11:00", end="2026-11-21T10:00"), NOW)


def test_settle_drops_what_the_new_metric_does_not_have() -> None:
    query = ExplorerQuery(
        metric="events", step="5m", group_by="type", filter_dim="type", filter_values=("purchase",)
    )
    settled = settle(query, REVENUE, timedelta(hours=1), keep_step=True)
    assert (
        settled.metric,
        settled.step,
        settled.group_by,
        settled.filter_dim,
        settled.filter_values,
    ) == ("revenue", "5m", None, None, ())
    assert settle(query, REVENUE, timedelta(hours=24), keep_step=False).step == "5m"


def test_table_and_csv_hold_every_point_with_both_time_forms() -> None:
    data = response({"DE": [(0, 2.0), (1, 3.0)], "FR": [(1, 1.0)]})
    rows = table_rows(data)
    assert [r["group"] for r in rows] == ["country=FR", "country=DE", "country=DE"]
    lines = csv_text(data, ["country"]).strip().splitlines()
    assert lines[0] == "window_start,window_start_ms,country,value,source,events"
    assert lines[1] == "2026-11-21T10:00:00Z,1795255200000,DE,2.0,speed,2"
    assert len(lines) == 4


def test_rate_tile_uses_the_newest_settled_window() -> None:
    data = response({"DE": [(27, 60.0), (28, 120.0), (29, 6.0)], "FR": [(28, 60.0)]})
    value, note, xs, rates = rate_text(EVENTS, data, NOW, ingest_per_s=3.25)
    assert value == "3.0"  # 10:28 (180 events / 60 s); 10:29 is still taking stragglers
    assert note == "per 1m window · 10:28:00 · ingest 3.2/s (last 30 s)"
    assert rates[0] == 1.0 and len(xs) == 3
    assert newest_complete([], [], "1m", NOW) is None


def test_tiles_of_growing_aggregations_skip_the_open_window() -> None:
    """A distinct count grows while its window fills, like a count: its tile shows the
    newest settled window; so does a quantile, so that every headline is from the
    same window (issue 20, finding 1)."""
    data = response({"": [(27, 900.0), (28, 910.0), (29, 400.0)]})
    users = metric_info(name="users", aggregation="distinct", field="user_id")
    p95 = metric_info(name="p95", aggregation="quantile", field="latency_ms", quantile=0.95)
    assert metric_tile_text(users, data, NOW)[1] == "per 1m · 10:28:00"
    assert metric_tile_text(p95, data, NOW)[1] == "per 1m · 10:28:00"


def test_throughput_metric_prefers_an_unfiltered_count() -> None:
    filtered = metric_info(name="purchases", aggregation="count", where={"type": "purchase"})
    assert throughput_metric([REVENUE, filtered, EVENTS]) == EVENTS
    assert throughput_metric([REVENUE, filtered]) == filtered
    assert throughput_metric([REVENUE]) is None


@pytest.mark.parametrize(
    ("lag_s", "tone"), [(None, "unknown"), (2.0, "ok"), (60.0, "warn"), (600.0, "bad")]
)
def test_freshness_tone_follows_the_lag(lag_s: float | None, tone: str) -> None:
    status = Status.model_validate({"now": NOW, "speed": {"lag_s": lag_s}})
    _, class_name = freshness(status)
    assert class_name == f"tile tile--freshness is-{tone}"
    assert freshness(None, "down")[1].endswith("is-bad")


def test_too_soon_skips_ticks_queued_behind_a_slow_refresh() -> None:
    assert not too_soon(None, 2000, now_s=100.0)
    assert too_soon(99.5, 2000, now_s=100.0)
    assert not too_soon(98.9, 2000, now_s=100.0)


def test_nav_links_use_each_apps_own_prefix(tmp_path) -> None:
    from dashboard.app import _nav_links, create_dash
    from stratum.settings import Settings

    settings = Settings(data_dir=tmp_path)
    create_dash(settings, requests_pathname_prefix="/dashboard/")
    create_dash(settings, requests_pathname_prefix="/ui/")  # the page registry is global
    hrefs = [link.href for link in _nav_links("/dashboard/explorer", "/dashboard/")]
    assert hrefs == [
        "/dashboard/",
        "/dashboard/explorer",
        "/dashboard/pipeline",
        "/dashboard/drift",
        "/dashboard/admin",
    ]
    active = [
        link.href
        for link in _nav_links("/dashboard/explorer", "/dashboard/")
        if "is-active" in link.className
    ]
    assert active == ["/dashboard/explorer"]
