"""Each page in headless chromium against the shared real stack: load, interact, check that
what is drawn changed as it should, no browser errors, a screenshot per page.

Events here carry countries no other test uses (``ZZ``, ``YY``), so exact numbers can be
asserted on a stack other tests also write to.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Locator, Page, expect

from dashboard import ids
from dashboard.live import PAUSE_LABEL, RESUME_LABEL
from stratum.producer import partition_for
from tests.stack import wait_until

pytestmark = pytest.mark.browser

LOAD_WAIT_MS = 15_000
REFRESH_WAIT_MS = 12_000
PAUSED_WATCH_S = 5.0  # over two overview/pipeline refresh intervals


def events_at(ts_ms: int, **per_country: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"pages-{uuid4().hex}",
            "ts": ts_ms,
            "type": "page_view",
            "country": country,
            "device": "desktop",
            "latency_ms": 90,
        }
        for country, n in per_country.items()
        for _ in range(n)
    ]


def id_in_partition(partition: int, partitions: int) -> str:
    """An event id that ingest routes to ``partition``."""
    for _ in range(10_000):
        candidate = f"pages-now-{uuid4().hex}"
        if partition_for(candidate, partitions) == partition:
            return candidate
    raise AssertionError(f"no id for partition {partition} in 10,000 tries")


def now_in_every_partition(stack: Any, now_ms: int, country: str) -> list[dict[str, Any]]:
    """Events stamped now, one in each log partition: every partition's watermark then
    trails now by the allowed lateness, even on a fresh stack."""
    partitions = stack.settings.kafka.partitions
    events = events_at(now_ms, **{country: partitions})
    for partition, event in enumerate(events):
        event["event_id"] = id_in_partition(partition, partitions)
    return events


def settled_text(locator: Locator, quiet_s: float = 2.5, limit_s: float = 20.0) -> str:
    """The locator's text once it has not changed for ``quiet_s``: after a pause, a
    refresh that was already on its way may still land (the overview's asks the API for
    every metric, longer than any fixed settle time on a busy 2-core machine)."""
    deadline = time.monotonic() + limit_s
    text, since = locator.inner_text(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"still changing after {limit_s} s: {text!r}"
        time.sleep(0.25)
        now_text = locator.inner_text()
        if now_text != text:
            text, since = now_text, time.monotonic()
    return text


def choose(page: Page, dropdown_id: str, option: str) -> None:
    """Open a dcc.Dropdown and click one option (Dash 4 renders a listbox popover)."""
    page.locator(f"#{dropdown_id}").click()
    page.get_by_role("option", name=option, exact=True).click()


def table_groups(page: Page) -> set[str]:
    cells = page.locator(f"#{ids.EXPLORER_TABLE} td[data-dash-column='group']")
    return {text.strip() for text in cells.all_inner_texts()}


def test_explorer_range_group_filter_url_and_csv(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    now_ms = int(time.time() * 1000)
    # Counts well above the other countries on the shared stack's last 15 minutes, so
    # both stay in the table's top groups, never folded into "other".
    stack.post_events(events_at(now_ms, ZZ=13, YY=12))
    page.goto(f"{stack.base_url}/dashboard/explorer?metric=events&range=1h")
    summary = page.locator(f"#{ids.EXPLORER_SUMMARY}")
    expect(summary).to_contain_text(re.compile(r"\d+ points? in"), timeout=LOAD_WAIT_MS)
    expect(page).to_have_url(re.compile(r"metric=events&range=1h&step=1m"))
    one_hour = summary.inner_text()

    page.get_by_role("option", name="15 min", exact=True).click()
    expect(page).to_have_url(re.compile(r"range=15m"), timeout=LOAD_WAIT_MS)
    expect(summary).not_to_have_text(one_hour, timeout=LOAD_WAIT_MS)

    choose(page, ids.EXPLORER_GROUP_BY, "country")
    expect(page).to_have_url(re.compile(r"group_by=country"), timeout=LOAD_WAIT_MS)
    expect(page.locator(f"#{ids.EXPLORER_TABLE}")).to_contain_text(
        "country=ZZ", timeout=LOAD_WAIT_MS
    )
    assert {"country=ZZ", "country=YY"} <= table_groups(page)

    choose(page, ids.EXPLORER_FILTER_DIM, "country")
    choose(page, ids.EXPLORER_FILTER_VALUES, "ZZ")
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(r"filter_dim=country&filter=ZZ"), timeout=LOAD_WAIT_MS)
    expect(page.locator(f"#{ids.EXPLORER_TABLE}")).not_to_contain_text(
        "country=YY", timeout=LOAD_WAIT_MS
    )
    assert table_groups(page) == {"country=ZZ"}
    value = page.locator(f"#{ids.EXPLORER_TABLE} td[data-dash-column='value']").first
    expect(value).to_have_text("13")
    # One line: its complete windows and its still-filling tail are two traces of it.
    names = page.evaluate(
        f"() => document.querySelector('#{ids.EXPLORER_GRAPH} "
        ".js-plotly-plot').data.map(t => t.name)"
    )
    assert set(names) - {"batch run"} == {"ZZ"}

    with page.expect_download(timeout=LOAD_WAIT_MS) as download_info:
        page.locator(f"#{ids.EXPLORER_DOWNLOAD_BUTTON}").click()
    csv_text = Path(download_info.value.path()).read_text()
    header, *rows = csv_text.strip().splitlines()
    assert header == "window_start,window_start_ms,country,value,source,events"
    assert rows and all(",ZZ," in row for row in rows)
    page.screenshot(path=artifacts_dir / "explorer.png", full_page=True)

    shared = page.context.new_page()  # the link alone must rebuild the view
    shared.goto(page.url)
    expect(shared.locator(f"#{ids.EXPLORER_GROUP_BY}")).to_contain_text(
        "country", timeout=LOAD_WAIT_MS
    )
    expect(shared.locator(f"#{ids.EXPLORER_FILTER_VALUES}")).to_contain_text("ZZ")
    expect(shared.locator(f"#{ids.EXPLORER_TABLE}")).to_contain_text(
        "country=ZZ", timeout=LOAD_WAIT_MS
    )
    assert table_groups(shared) == {"country=ZZ"}
    assert (
        shared.get_by_role("option", name="15 min", exact=True).get_attribute("aria-selected")
        == "true"
    )
    shared.screenshot(path=artifacts_dir / "explorer-shared-link.png", full_page=True)
    shared.close()


def test_overview_tiles_freshness_and_pause_across_pages(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    stack.post_events(events_at(int(time.time() * 1000), ZZ=1))
    page.goto(f"{stack.base_url}/dashboard/")
    metric_count = len(stack.client.get("/v1/metrics").json()["metrics"])
    expect(page.locator(".tile--metric")).to_have_count(metric_count, timeout=LOAD_WAIT_MS)
    freshness = page.locator(f"#{ids.OVERVIEW_FRESHNESS}")
    expect(freshness).to_have_class(re.compile(r"is-ok"), timeout=LOAD_WAIT_MS)
    expect(freshness).to_contain_text("event-time lag")
    expect(page.locator(f"#{ids.OVERVIEW_RATE_NOTE}")).to_contain_text("per 1m window")
    assert page.locator(".tile-spark .js-plotly-plot").count() == metric_count + 1
    card = page.locator('[data-metric="events"]')
    expect(card.locator(".last-point")).to_contain_text("refreshed", timeout=LOAD_WAIT_MS)
    page.screenshot(path=artifacts_dir / "overview-tiles.png", full_page=True)

    button = page.locator(f"#{ids.APP_PAUSE_BUTTON}")
    button.click()
    expect(button).to_have_text(RESUME_LABEL)
    expect(button).to_have_attribute("data-paused", "true")
    frozen = settled_text(card.locator(".last-point"))
    time.sleep(PAUSED_WATCH_S)
    assert card.locator(".last-point").inner_text() == frozen

    page.get_by_role("link", name="Pipeline").click()  # the pause holds on every page
    updated = page.locator(f"#{ids.PIPELINE_UPDATED}")
    expect(updated).to_contain_text("updated", timeout=LOAD_WAIT_MS)
    expect(button).to_have_text(RESUME_LABEL)
    shown = updated.inner_text()
    time.sleep(PAUSED_WATCH_S)
    assert updated.inner_text() == shown
    page.screenshot(path=artifacts_dir / "paused.png", full_page=True)

    button.click()
    expect(button).to_have_text(PAUSE_LABEL)
    expect(updated).not_to_have_text(shown, timeout=REFRESH_WAIT_MS)


def test_pipeline_shows_stages_partitions_late_events_and_batch_runs(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    page.goto(f"{stack.base_url}/dashboard/pipeline")
    ingest = page.locator('[data-stage="ingest"] .tile-value')
    expect(ingest).to_have_text(re.compile(r"/s$"), timeout=LOAD_WAIT_MS)
    expect(page.locator(f"#{ids.PIPELINE_PARTITIONS} tr[data-partition]").first).to_be_visible(
        timeout=LOAD_WAIT_MS
    )
    late = page.locator('[data-stage="late"] .tile-value')
    expect(late).to_have_text(re.compile(r"^[\d,]+$"), timeout=LOAD_WAIT_MS)
    late_before = int(late.inner_text().replace(",", ""))

    now_ms = int(time.time() * 1000)
    # Every partition's watermark to now - 60 s: the older events are late in any of them.
    stack.post_events(now_in_every_partition(stack, now_ms, "ZZ"))
    stack.post_events(events_at(now_ms - 10 * 60_000, YY=2), wait=False)  # too late
    # The two may land in two partitions, counted one after the other: wait for both.
    wait_until(
        lambda: int(late.inner_text().replace(",", "")) >= late_before + 2,
        REFRESH_WAIT_MS / 1000,
        f"both late events counted (was {late_before:,})",
    )

    job = stack.run_batch()
    row = page.locator(f'#{ids.PIPELINE_JOBS} tr[data-job-id="{job["job_id"]}"]')
    expect(row).to_have_attribute("data-state", "succeeded", timeout=REFRESH_WAIT_MS)
    expect(page.locator(f"#{ids.PIPELINE_TIMELINE} .barlayer .point").first).to_be_attached()
    horizon = datetime.fromisoformat(job["horizon"].replace("Z", "+00:00")).astimezone(UTC)
    expect(page.locator('[data-stage="batch"] .tile-value')).to_have_text(
        horizon.strftime("%H:%M:%S"), timeout=REFRESH_WAIT_MS
    )
    page.screenshot(path=artifacts_dir / "pipeline.png", full_page=True)


def test_drift_shows_where_speed_was_off_and_why(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    """Events long behind the watermark: speed never counts them, batch does, and the
    drift page shows that window with its reason; a shorter range drops it again."""
    now_ms = int(time.time() * 1000)
    old_ms = now_ms - 5 * 3_600_000 - 17 * 60_000
    window = datetime.fromtimestamp(old_ms // 60_000 * 60, UTC).strftime("%H:%M:%S")
    # Each partition's watermark (and the batch horizon) is then a minute ago, so the
    # old events are late wherever they go.
    stack.post_events(now_in_every_partition(stack, now_ms, "XD"))
    late = events_at(old_ms, XD=4)
    stack.post_events(late, wait=False)
    stack.wait_archived(late)  # the late events are on disk before the batch run
    stack.run_batch()

    page.goto(f"{stack.base_url}/dashboard/drift?metric=events&range=6h")
    row = page.locator(f"#{ids.DRIFT_TABLE} tr", has_text=window)
    expect(row).to_contain_text("late events", timeout=LOAD_WAIT_MS)
    expect(row).to_contain_text("arrived after the watermark")
    off = page.locator('[data-drift="off"] .tile-value')
    assert int(off.inner_text().replace(",", "")) >= 1
    expect(page.locator(f"#{ids.DRIFT_GRAPH} .barlayer .point").first).to_be_attached()
    page.screenshot(path=artifacts_dir / "drift.png", full_page=True)

    page.get_by_role("option", name="1 h", exact=True).click()
    expect(row).to_have_count(0, timeout=LOAD_WAIT_MS)  # 5 h ago: outside the range
    choose(page, ids.DRIFT_METRIC, "revenue (sum)")
    expect(page.locator('[data-drift="compared"] .tile-value')).to_have_text(
        re.compile(r"^[\d,]+$"), timeout=LOAD_WAIT_MS
    )
