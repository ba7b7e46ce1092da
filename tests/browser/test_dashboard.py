"""The dashboard in headless chromium against the running stack (API + dashboard).

Needs the ``stack`` fixture from tests/conftest.py: ``.base_url``, ``.settings`` and
``.post_events(events)``, which returns once the speed layer shows the events.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from dashboard import ids
from stratum.metrics import load_catalog

pytestmark = pytest.mark.browser

LOAD_WAIT_MS = 15_000
CHART_WAIT_MS = 30_000
JOB_WAIT_MS = 60_000

EVENTS_CARD = '[data-metric="events"]'
EVENTS_GRAPH = f"{EVENTS_CARD} .js-plotly-plot"
# Sum of the drawn values at or after `since` (naive UTC ISO, as Plotly holds the x values).
SUM_SINCE_JS = """([selector, since]) => {
  const gd = document.querySelector(selector);
  let total = 0;
  for (const trace of (gd && gd.data) || []) {
    if (trace.yaxis === 'y2') continue;  // batch-run marks, not values
    const xs = trace.x || [], ys = trace.y || [];
    // A dotted, still-filling tail may start at the last complete point, which the solid
    // trace holds already: that point's state is its source, not "in progress".
    const tail = trace.line && trace.line.dash === 'dot';
    for (let i = 0; i < xs.length; i++) {
      if (tail && (trace.customdata || [])[i] !== 'in progress') continue;
      if (String(xs[i]).replace(' ', 'T') >= since && typeof ys[i] === 'number') total += ys[i];
    }
  }
  return total;
}"""


def recent_events(now: datetime) -> list[dict[str, Any]]:
    """Eight events at `now`: both types, both countries, both devices."""
    ts = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    events = []
    for index, (kind, country, device) in enumerate(
        product(("page_view", "purchase"), ("DE", "FR"), ("mobile", "desktop"))
    ):
        event: dict[str, Any] = {
            "event_id": f"browser-{uuid4().hex}",
            "ts": ts,
            "type": kind,
            "country": country,
            "device": device,
            "latency_ms": 80 + 15 * index,
        }
        if kind == "purchase":
            event["amount"] = 10.0 + index
        events.append(event)
    return events


def window_start(stack: Any, metric: str, moment: datetime) -> str:
    """The start of `moment`'s window at the metric's finest size, as the chart's x."""
    definition = load_catalog(stack.settings.metrics_file).get(metric)
    assert definition is not None, f"metric {metric} is not defined"
    ms = int(moment.timestamp() * 1000) // definition.window_ms * definition.window_ms
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_overview_draws_newly_posted_events_without_a_reload(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    page.goto(f"{stack.base_url}/dashboard/")
    expect(page.locator(EVENTS_CARD)).to_be_visible(timeout=LOAD_WAIT_MS)
    # The first refresh has answered once the last-point text is no longer a dash.
    expect(page.locator(f"{EVENTS_CARD} .last-point")).not_to_have_text("–", timeout=LOAD_WAIT_MS)
    now = datetime.now(UTC)
    since = window_start(stack, "events", now)
    before = page.evaluate(SUM_SINCE_JS, [EVENTS_GRAPH, since])

    events = recent_events(now)
    stack.post_events(events)

    want = before + len(events)
    try:
        page.wait_for_function(
            f"([selector, since, want]) => ({SUM_SINCE_JS})([selector, since]) >= want",
            arg=[EVENTS_GRAPH, since, want],
            timeout=CHART_WAIT_MS,
        )
    except PlaywrightTimeoutError:
        drawn = page.evaluate(SUM_SINCE_JS, [EVENTS_GRAPH, since])
        pytest.fail(
            f"events chart shows {drawn} events since {since} after "
            f"{CHART_WAIT_MS} ms; expected at least {want} ({before} before posting)"
        )
    expect(page.locator(f"{EVENTS_GRAPH} .scatterlayer .trace").first).to_be_attached()
    expect(page.locator(f"{EVENTS_CARD} .last-point")).to_contain_text("last point")
    page.screenshot(path=artifacts_dir / "overview.png", full_page=True)


def test_admin_recompute_shows_the_job_and_its_success(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    page.goto(f"{stack.base_url}/dashboard/admin")
    table = page.locator(f"#{ids.ADMIN_JOBS_TABLE}")
    expect(table).not_to_contain_text("Loading", timeout=LOAD_WAIT_MS)

    page.locator(f"#{ids.ADMIN_TOKEN_INPUT}").fill(stack.settings.api.admin_token)
    page.locator(f"#{ids.ADMIN_RECOMPUTE}").click()
    page.locator(f"#{ids.ADMIN_CONFIRM_YES}").click()  # the confirmation step

    # "Started batch job <id>", or "already running: <id>" if the scheduler got there first.
    job = page.locator(f"#{ids.ADMIN_STATUS} .job-id")
    expect(job).to_have_text(re.compile(r"^\S+$"), timeout=LOAD_WAIT_MS)
    expect(page.locator(f"#{ids.ADMIN_STATUS}")).to_contain_text(
        re.compile(r"Started batch job|already running:")
    )
    job_id = job.inner_text().strip()
    row = table.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=LOAD_WAIT_MS)
    expect(row).to_have_attribute("data-state", "succeeded", timeout=JOB_WAIT_MS)
    expect(row).to_contain_text("succeeded")
    page.screenshot(path=artifacts_dir / "admin.png", full_page=True)
