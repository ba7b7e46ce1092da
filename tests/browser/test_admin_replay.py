"""The admin page drives a Kappa replay and a full recompute on the real stack, in
headless chromium: a refused token explains itself, nothing is sent before confirmation,
the replay's progress is watched to 100 %, the job to "succeeded" and the served
generation to the new number; then a full recompute runs the same way.

Every wait is bounded; the whole test stays under ``BUDGET_S``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import Page, expect

from dashboard import ids
from tests.stack import wait_until

pytestmark = pytest.mark.browser

BUDGET_S = 180  # a replay of the whole shared log (20 K messages from test_backlog)
LOAD_WAIT_MS = 15_000
JOB_WAIT_S = 45
FINISHED = ("succeeded", "failed", "cancelled")


def api_json(stack: Any, path: str, **params: Any) -> Any:
    response = stack.client.get(path, params=params, headers=stack.admin_headers)
    response.raise_for_status()
    return response.json()


def wait_for_no_active(stack: Any, kind: str) -> None:
    """A job of this kind still running (another test's, the scheduler's) would answer
    409; that path is covered by unit tests, so wait it out here."""

    def idle() -> bool:
        jobs = api_json(stack, "/v1/admin/jobs", kind=kind, limit=1)["jobs"]
        return not jobs or jobs[0]["state"] in FINISHED

    wait_until(idle, 30, f"no active {kind} job")


def start_from_page(page: Page, button_id: str, confirm_words: str) -> str:
    """Click an action, check the confirmation says what it will do, confirm; the job id."""
    page.locator(f"#{button_id}").click()
    confirm = page.locator(f"#{ids.ADMIN_CONFIRM}")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(confirm_words)
    page.locator(f"#{ids.ADMIN_CONFIRM_YES}").click()
    expect(confirm).to_be_hidden()
    job = page.locator(f"#{ids.ADMIN_STATUS} .job-id")
    expect(page.locator(f"#{ids.ADMIN_STATUS}")).to_contain_text("Started", timeout=LOAD_WAIT_MS)
    return job.inner_text().strip()


# The job's progress bars (live panel and table row) and the row's state, in one read.
PROGRESS_JS = """(jobId) => {
  const bars = document.querySelectorAll(`[data-job-id="${jobId}"] .progress`);
  const row = document.querySelector(`tr[data-job-id="${jobId}"]`);
  return {percents: [...bars].map(b => b.dataset.percent || ''),
          state: row ? row.dataset.state : null};
}"""


def watch_progress(page: Page, job_id: str, deadline: float) -> tuple[str | None, list[int]]:
    """Every percentage the page shows for the job until its row says it finished; the
    phase that follows the log shows no number (it cannot be measured)."""
    seen: list[int] = []
    state = None
    while time.monotonic() < deadline:
        shown = page.evaluate(PROGRESS_JS, job_id)
        state = shown["state"]
        for value in shown["percents"]:
            if value and (not seen or int(value) != seen[-1]):
                seen.append(int(value))
        if state in FINISHED:
            return state, seen
        time.sleep(0.2)
    pytest.fail(f"job {job_id} still {state} at the deadline; progress seen: {seen}")


def newest_job(stack: Any, kind: str) -> str | None:
    jobs = api_json(stack, "/v1/admin/jobs", kind=kind, limit=1)["jobs"]
    return jobs[0]["job_id"] if jobs else None


def test_admin_replays_to_a_new_generation_and_runs_a_full_recompute(
    stack: Any, page: Page, artifacts_dir: Path
) -> None:
    deadline = time.monotonic() + BUDGET_S
    now_ms = int(time.time() * 1000)
    events = [
        {
            "event_id": f"replay-{uuid4().hex}",
            "ts": now_ms,
            "type": "page_view",
            "country": "XR",
            "device": "desktop",
            "latency_ms": 70,
        }
        for _ in range(6)
    ]
    stack.post_events(events)
    wait_for_no_active(stack, "replay")
    before = api_json(stack, "/v1/admin/generation")["live"]

    page.goto(f"{stack.base_url}/dashboard/admin")
    token = page.locator(f"#{ids.ADMIN_TOKEN_INPUT}")
    expect(token).to_have_value("", timeout=LOAD_WAIT_MS)  # no server token is handed out
    token.fill("not-the-token")
    alert = page.locator(f"#{ids.ADMIN_ALERT}")
    expect(alert).to_contain_text("refused the admin token", timeout=LOAD_WAIT_MS)
    expect(alert).to_contain_text("STRATUM_API__ADMIN_TOKEN")
    token.fill(stack.settings.api.admin_token)
    served = page.locator(f"#{ids.ADMIN_GENERATION} .generation-value")
    expect(served).to_have_attribute("data-generation", str(before), timeout=LOAD_WAIT_MS)
    expect(alert).to_be_empty()

    newest = newest_job(stack, "replay")
    page.locator(f"#{ids.ADMIN_REPLAY_ALL}").click()  # asked, then called off: nothing sent
    page.locator(f"#{ids.ADMIN_CONFIRM_NO}").click()
    expect(page.locator(f"#{ids.ADMIN_STATUS}")).to_contain_text("Nothing was sent")
    assert newest_job(stack, "replay") == newest

    replay_id = start_from_page(page, ids.ADMIN_REPLAY_ALL, "from the start of the log")
    row = page.locator(f'#{ids.ADMIN_JOBS_TABLE} tr[data-job-id="{replay_id}"]')
    expect(row).to_be_visible(timeout=LOAD_WAIT_MS)
    state, seen = watch_progress(page, replay_id, deadline)
    assert state == "succeeded", api_json(stack, f"/v1/admin/jobs/{replay_id}")
    assert seen and seen[-1] == 100 and seen == sorted(seen), seen
    expect(row).to_contain_text("switched")
    after = api_json(stack, "/v1/admin/generation")["live"]
    assert after > before
    expect(served).to_have_attribute("data-generation", str(after), timeout=LOAD_WAIT_MS)
    expect(row.locator("td").nth(8)).to_have_text(str(after))  # the Generation column
    assert stack.total("events", now_ms - 60_000, now_ms + 60_000, country="XR") == len(events)
    page.screenshot(path=artifacts_dir / "admin-replay.png", full_page=True)

    wait_for_no_active(stack, "batch")
    page.locator(f"#{ids.ADMIN_MODE}").get_by_text("Full", exact=True).click()
    batch_id = start_from_page(page, ids.ADMIN_RECOMPUTE, "every event hour in the archive")
    batch_row = page.locator(f'#{ids.ADMIN_JOBS_TABLE} tr[data-job-id="{batch_id}"]')
    remaining_ms = max(1.0, deadline - time.monotonic()) * 1000
    expect(batch_row).to_have_attribute("data-state", "succeeded", timeout=remaining_ms)
    expect(batch_row.locator(".kind-detail")).to_have_text("full")
    batch_row.click()
    details = page.locator(f"#{ids.ADMIN_DETAILS} .details")
    expect(details).to_have_attribute("data-job-id", batch_id)
    expect(details).to_contain_text(re.compile(r'"mode": "full"'))
    page.screenshot(path=artifacts_dir / "admin-full-recompute.png", full_page=True)
