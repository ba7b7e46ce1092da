"""The dashboard behind a read token in headless chromium (issue 17, finding 2): without
signing in a browser sees the sign-in page and no data; after signing in it sees the
events it could not see before, read with its own credential; script cannot read the
cookie that holds it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_dashboard import EVENTS_CARD, EVENTS_GRAPH, SUM_SINCE_JS, recent_events
from tests.conftest import READ_TOKEN
from tests.stack import Stack

pytestmark = pytest.mark.browser
LOAD_WAIT_MS = 15_000
CHART_WAIT_MS = 30_000


def test_the_dashboard_shows_data_only_after_signing_in(
    guarded_stack: Stack, page: Page, artifacts_dir: Path
) -> None:
    stack = guarded_stack
    events = recent_events(datetime.now(UTC))
    stack.post_events(events)

    page.goto(f"{stack.base_url}/dashboard/explorer")
    expect(page).to_have_url(f"{stack.base_url}/dashboard/sign-in")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.locator(EVENTS_CARD).count() == 0
    assert READ_TOKEN not in page.content()
    page.screenshot(path=artifacts_dir / "sign-in.png", full_page=True)

    page.get_by_label("Read token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the read token")

    page.get_by_label("Read token").fill(READ_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.base_url}/dashboard/")
    expect(page.locator(EVENTS_CARD)).to_be_visible(timeout=LOAD_WAIT_MS)
    page.wait_for_function(
        f"([s, since]) => ({SUM_SINCE_JS})([s, since]) >= {len(events)}",
        arg=[EVENTS_GRAPH, "1970-01-01T00:00:00"],
        timeout=CHART_WAIT_MS,
    )
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard" and cookie["expires"] == -1  # a session cookie
    page.screenshot(path=artifacts_dir / "signed-in-overview.png", full_page=True)
