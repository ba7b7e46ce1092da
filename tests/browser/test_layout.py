"""Issue 20 in a real browser: every page fits 1440 and 390 px wide, a still-filling window
and missing windows are drawn as such, and the time bar round-trips through the URL.

The gaps test's events carry a country no other test uses (``GW``) so its points can be
asserted on the shared stack; the other tests here post ``GY``, so an event they post a
few seconds earlier can never land in the gaps test's range.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from dashboard import ids
from tests.browser.test_pages import (
    LOAD_WAIT_MS,
    events_at,
    now_in_every_partition,
    settled_text,
)

pytestmark = pytest.mark.browser

WIDTHS = (1440, 390)
# page path -> a selector that is there once the page has drawn its data
PAGES = {
    "overview": ("", ".tile--metric .tile-note:not(:empty)"),
    "explorer": ("explorer?metric=events", f"#{ids.EXPLORER_SUMMARY}:has-text('point')"),
    "pipeline": ("pipeline", '[data-stage="ingest"] .tile-value:has-text("/s")'),
    "drift": ("drift?metric=events", '[data-drift="compared"]'),
    "admin": ("admin", f"#{ids.ADMIN_JOBS_TABLE} .empty-state"),
}


def plotly_traces(page: Page, graph_id: str) -> list[dict[str, Any]]:
    return page.evaluate(
        "id => document.getElementById(id).querySelector('.js-plotly-plot').data"
        ".map(t => ({name: t.name, dash: t.line && t.line.dash, y: t.y,"
        " state: t.customdata}))",
        graph_id,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_window(
    stack: Any, page: Page, browser_errors: list[str], artifacts_dir: Path, width: int
) -> None:
    """No horizontal scroll: the document is never wider than the viewport, the whole
    nav and the pause button are inside it."""
    stack.post_events(events_at(int(time.time() * 1000), GY=1))
    page.set_viewport_size({"width": width, "height": 900 if width > 500 else 844})
    for name, (path, ready) in PAGES.items():
        page.goto(f"{stack.base_url}/dashboard/{path}")
        expect(page.locator(ready).first).to_be_attached(timeout=LOAD_WAIT_MS)
        page.wait_for_timeout(300)  # let Plotly size its figures to the new layout
        scroll, inner = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll <= inner, f"{name} at {width} px: document {scroll} px wide"
        for locator in (
            page.locator(f"#{ids.APP_PAUSE_BUTTON}"),
            page.get_by_role("link", name="Admin"),
        ):
            box = locator.bounding_box()
            assert box is not None and box["x"] + box["width"] <= inner + 0.5, name
        page.screenshot(path=artifacts_dir / f"layout-{name}-{width}.png", full_page=True)
    assert browser_errors == []


def _series(stack: Any, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    response = stack.client.get(
        "/v1/metrics/events",
        params={"start": start_ms, "end": end_ms, "step": "1m", "country": "GW"},
    )
    assert response.status_code == 200, response.text
    series = response.json()["series"]
    return series[0]["points"] if series else []


def test_open_window_and_gaps_are_drawn_as_such(
    stack: Any, page: Page, browser_errors: list[str], artifacts_dir: Path
) -> None:
    """Batch holds GW at -9, -8 and -5 min, speed at the current minute: the chart
    breaks the line at -7..-6 and before now, draws the current minute dotted in an
    "in progress" band, and summary and table say both."""
    minute = 60_000
    # The current minute must still be "in progress" when the page draws (until 2 min
    # after it began): late in a minute, start with the next one instead.
    into = int(time.time() * 1000) % minute
    if into > 40_000:
        time.sleep((minute - into) / 1000 + 0.2)
    now_ms = int(time.time() * 1000)
    stack.post_events(now_in_every_partition(stack, now_ms, "GW"))  # watermarks to now-60 s
    old = [now_ms - k * minute for k in (9, 8, 5)]
    for ts in old:
        stack.post_events(events_at(ts, GW=2), wait=False)  # late: batch adds them
    deadline = time.monotonic() + 45
    wanted = {ts // minute * minute for ts in old}
    while True:
        stack.run_batch()
        held = {
            p["t_ms"]
            for p in _series(stack, now_ms - 15 * minute, now_ms + minute)
            if p.get("source") == "batch"
        }
        if wanted <= held:
            break
        assert time.monotonic() < deadline, f"batch never held {wanted - held}"
        page.wait_for_timeout(500)

    page.goto(
        f"{stack.base_url}/dashboard/explorer?metric=events&range=15m&step=1m"
        "&filter_dim=country&filter=GW"
    )
    summary = page.locator(f"#{ids.EXPLORER_SUMMARY}")
    expect(summary).to_contain_text("last window in progress", timeout=LOAD_WAIT_MS)
    expect(summary).to_contain_text(re.compile(r"⚠ 2 gaps \(missing windows\)"))
    expect(summary).to_contain_text(re.compile(r"^4 points in 1 line"))
    traces = plotly_traces(page, ids.EXPLORER_GRAPH)
    solid = [t for t in traces if t["dash"] == "solid"]
    dotted = [t for t in traces if t["dash"] == "dot"]
    assert len(solid) == 1 and None in solid[0]["y"]  # broken, not bridged
    assert len(dotted) == 1 and dotted[0]["state"] == ["in progress"]
    band = page.locator(f"#{ids.EXPLORER_GRAPH} .annotation-text", has_text="in progress")
    expect(band).to_have_count(1)
    table = page.locator(f"#{ids.EXPLORER_TABLE}")
    expect(table).to_contain_text("in progress")
    expect(table).to_contain_text("after 2 missing windows")
    page.screenshot(path=artifacts_dir / "explorer-open-window-and-gaps.png", full_page=True)
    assert browser_errors == []


def test_time_bar_round_trips_through_the_url(
    stack: Any, browser: Browser, artifacts_dir: Path
) -> None:
    """Range, custom range, refresh and local time come from the URL, are shown, and
    every change is written back; the API query of a panel is the call it drew from."""
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id="Asia/Kolkata"
    )  # UTC+05:30, no DST
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(error.message))
    stack.post_events(events_at(int(time.time() * 1000), GY=1))
    page.goto(f"{stack.base_url}/dashboard/?range=1h&refresh=10s&tz=local")
    card = page.locator('[data-metric="events"]')
    expect(card.locator(".last-point")).to_contain_text("UTC+05:30", timeout=LOAD_WAIT_MS)
    assert (
        page.get_by_role("option", name="1 h", exact=True).get_attribute("aria-selected") == "true"
    )
    expect(page.locator(".time-bar .field--refresh")).to_contain_text("10 s")

    page.get_by_role("option", name="6 h", exact=True).click()
    expect(page).to_have_url(re.compile(r"range=6h"), timeout=LOAD_WAIT_MS)
    assert "refresh=10s" in page.url and "tz=local" in page.url
    page.get_by_role("option", name="custom", exact=True).click()
    start = page.locator(".time-bar .custom-range input").first
    start.fill("2026-01-01T00:00")
    start.press("Enter")
    expect(page).to_have_url(re.compile(r"start=2026-01-01T00%3A00"), timeout=LOAD_WAIT_MS)
    assert "range=custom" in page.url
    page.get_by_role("option", name="UTC", exact=True).click()
    expect(page).to_have_url(re.compile(r"tz=utc"), timeout=LOAD_WAIT_MS)
    expect(card.locator(".last-point")).to_contain_text(" UTC ", timeout=LOAD_WAIT_MS)

    card.locator("summary", has_text="API query").click()
    command = card.locator(".api-query-text")
    expect(command).to_contain_text("curl -s")
    expect(command).to_contain_text(
        re.compile(r"/v1/metrics/events\?start=2026-01-01T00%3A00%3A00\.000Z&end=.*&step=\d+[mh]")
    )
    page.screenshot(path=artifacts_dir / "overview-time-bar.png", full_page=True)

    page.reload()  # the URL alone rebuilds the view
    expect(page.locator(".time-bar .custom-range input").first).to_have_value(
        "2026-01-01T00:00", timeout=LOAD_WAIT_MS
    )
    assert (
        page.get_by_role("option", name="custom", exact=True).get_attribute("aria-selected")
        == "true"
    )

    page.goto(f"{stack.base_url}/dashboard/pipeline?tz=local")
    page.locator(".time-bar .field--refresh [id]").first.click()  # the dcc.Dropdown
    page.get_by_role("option", name="off", exact=True).click()
    expect(page).to_have_url(re.compile(r"refresh=off"), timeout=LOAD_WAIT_MS)
    assert "tz=local" in page.url
    updated = page.locator(f"#{ids.PIPELINE_UPDATED}")
    expect(updated).to_contain_text("UTC+05:30", timeout=LOAD_WAIT_MS)
    shown = settled_text(updated)  # a refresh under way at the click may still land
    page.wait_for_timeout(5_000)  # over two of the page's default 2 s refreshes
    assert updated.inner_text() == shown
    context.close()
    assert errors == []
