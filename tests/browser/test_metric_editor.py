"""The admin page's metric editor in headless chromium on a real stack of its own: a
draft is checked as it is typed (the file's messages), previewed from the archive,
applied without a restart, and the explorer then offers the new metric with data."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dashboard import ids
from dashboard import metric_editor as editor
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.browser
WAIT_MS = 15_000


def test_create_preview_apply_and_explore(
    make_stack: Callable[..., Stack], page: Page, browser_errors: list[str], artifacts_dir: Path
) -> None:
    stack = make_stack("editor", dashboard=True)
    now = int(time.time() * 1000)
    history = [
        {
            "event_id": f"ed-{i}",
            "ts": now - 40 * 60_000 + i * 20_000,
            "type": "purchase",
            "country": "DE" if i % 2 else "FR",
            "amount": 1.0 + i,
        }
        for i in range(60)
    ]
    stack.post_events(history)
    # The preview reads the archive: previewing before it holds the events gave 0 points,
    # and clicking again every second under load kept replacing answers still on their way.
    stack.wait_archived(history)
    page.goto(f"{stack.base_url}/dashboard/admin")
    page.locator(f"#{ids.ADMIN_TOKEN_INPUT}").fill(stack.settings.api.admin_token)
    page.locator(f"#{editor.NAME}").fill("editor_purchases")
    page.locator(f"#{editor.WHERE}").fill("type=purchase")
    page.locator(f"#{editor.DIMENSIONS}").fill("country")
    page.locator(f"#{editor.WINDOWS}").fill("7m")
    problems = page.locator(f"#{editor.PROBLEMS}")
    expect(problems).to_contain_text("window 7m does not divide a day evenly", timeout=WAIT_MS)
    page.locator(f"#{editor.WINDOWS}").fill("1m")
    expect(problems).to_contain_text("Valid.", timeout=WAIT_MS)
    expect(page.locator(f"#{editor.TOML}")).to_contain_text('name = "editor_purchases"')

    status = page.locator(f"#{editor.STATUS}")

    page.locator(f"#{editor.PREVIEW}").click()
    expect(status).to_contain_text("Preview of editor_purchases", timeout=WAIT_MS)
    assert "Preview of editor_purchases: 0 point(s)" not in status.inner_text()
    expect(page.locator(f"#{editor.CHART} .scatterlayer .trace")).to_have_count(1)
    page.screenshot(path=artifacts_dir / "metric-editor.png", full_page=True)

    page.locator(f"#{editor.APPLY}").click()
    expect(status).to_contain_text("Applied: version 2", timeout=WAIT_MS)
    names = wait_until(
        lambda: (
            "editor_purchases"
            in [m["name"] for m in stack.client.get("/v1/metrics").json()["metrics"]]
        ),
        10,
        "the API",
    )
    assert names

    stamps = [now - 40 * 60_000 + i * 20_000 for i in range(60)]

    def backfilled() -> bool:
        """Batch backfills up to its horizon (the windows after it fill in as the
        horizon passes them, at a later run)."""
        body = stack.client.get(
            "/v1/metrics/editor_purchases", params={"start": now - 3_600_000}
        ).json()
        horizon = body["horizon_ms"] or 0
        want = sum(1 for t in stamps if t - t % 60_000 + 60_000 <= horizon)
        served = sum(
            p["value"] for s in body["series"] for p in s["points"] if p["source"] == "batch"
        )
        return want > 0 and served == want

    wait_until(backfilled, 60, "the new metric's history from batch", interval_s=1.0)
    page.goto(f"{stack.base_url}/dashboard/explorer?metric=editor_purchases&range=1h")
    expect(page.locator(f"#{ids.EXPLORER_METRIC}")).to_contain_text(
        "editor_purchases", timeout=WAIT_MS
    )
    page.screenshot(path=artifacts_dir / "metric-editor-explorer.png", full_page=True)
    assert browser_errors == []
