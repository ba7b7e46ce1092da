"""Admin commands against a running Stratum, through its REST API, with terminal progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import click
import httpx

from stratum.errors import StratumError
from stratum.job_progress import progress_label, split_params
from stratum.replay_range import describe

FINISHED = ("succeeded", "failed", "cancelled")


class AdminError(StratumError):
    """The API refused or could not be reached."""


def _explain(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


def follow_batch(
    api_url: str,
    token: str,
    *,
    mode: str = "incremental",
    wait: bool = True,
    timeout_s: float = 3600,
) -> str:
    return _follow(
        api_url,
        token,
        "/v1/admin/batch",
        {"trigger": "cli", "mode": mode},
        "recompute",
        wait=wait,
        timeout_s=timeout_s,
    )


def follow_replay(
    api_url: str,
    token: str,
    *,
    from_time: str | None = None,
    wait: bool = True,
    timeout_s: float = 3600,
) -> str:
    body: dict[str, str] = {"trigger": "cli"}
    if from_time:
        body["from"] = from_time
    return _follow(
        api_url, token, "/v1/admin/replay", body, "replay", wait=wait, timeout_s=timeout_s
    )


def _follow(
    api_url: str,
    token: str,
    path: str,
    body: dict[str, str],
    label: str,
    *,
    wait: bool,
    timeout_s: float,
) -> str:
    """Start a job and draw its progress until it ends; Ctrl-C leaves it running."""
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=10) as client:
            response = client.post(path, json=body)
            if response.status_code != 202:
                raise AdminError(_explain(response))
            accepted: dict[str, Any] = response.json()
            job_id: str = accepted["job_id"]
            click.echo(f"{label} job {job_id} queued")
            if accepted.get("rebuilds"):
                click.echo(f"{label} {accepted['rebuilds']}")
            if not wait:
                return job_id
            job = _watch(client, job_id, label, timeout_s)
            for line in result_lines(job):
                click.echo(line)
            if job["state"] != "succeeded":
                raise AdminError(f"job {job_id} {job['state']}: {job['error']}")
            return job_id
    except httpx.HTTPError as exc:
        raise AdminError(f"cannot reach Stratum at {api_url}: {exc}") from exc


def result_lines(job: Mapping[str, Any]) -> list[str]:
    """A finished job as readable lines, only the fields that mean something for its
    kind (a replay has no rows out or horizon)."""
    asked, state = split_params(job.get("params") or {})
    lines = [f"{job.get('kind', 'job')} job {job.get('job_id', '?')} {job.get('state')}"]
    if job.get("kind") == "replay":
        lines.append(f"  events read   {job.get('rows_in', 0):,}")
        if isinstance(state.get("generation"), int):
            lines.append(f"  generation    {state['generation']}")
        lines.append(f"  range         {describe(asked)}")
        if isinstance(asked.get("carried_rows"), int):
            lines.append(f"  carried over  {asked['carried_rows']:,} window rows")
    else:
        lines.append(f"  events in     {job.get('rows_in', 0):,}")
        lines.append(f"  window rows   {job.get('rows_out', 0):,}")
        lines.append(f"  horizon       {job.get('horizon') or 'none (empty archive)'}")
        lines.append(f"  mode          {asked.get('mode', 'incremental')}")
    if job.get("error"):
        lines.append(f"  error         {job['error']}")
    return lines


def _label(job: Mapping[str, Any]) -> str:
    phase = (job.get("params") or {}).get("phase")
    return progress_label(
        job.get("kind", "batch"),
        job.get("state", ""),
        job.get("units_done") or 0,
        job.get("units_total") or 0,
        phase if isinstance(phase, str) else None,
    )


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job as the API shows it; a refusal (401, 404) is an AdminError with its code."""
    response = client.get(f"/v1/admin/jobs/{job_id}")
    if response.status_code != 200:
        raise AdminError(f"job {job_id}: {_explain(response)}")
    job: dict[str, Any] = response.json()
    return job


def _watch(client: httpx.Client, job_id: str, label: str, timeout_s: float) -> dict[str, Any]:
    """On a terminal, a progress bar naming the phase; otherwise one line per phase
    (click's bar, off a terminal, printed its label alone and no final newline)."""
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    if not sys.stdout.isatty():
        said = ""
        while time.monotonic() < deadline:
            job = _job(client, job_id)
            if (text := _label(job)) != said and job["state"] in ("queued", "running"):
                click.echo(f"{label} {text}")
                said = text
            if job["state"] in FINISHED:
                break
            time.sleep(0.5)
        return job

    def phase(_: int | None) -> str | None:  # the bar counts percent; it shows the phase
        return _label(job) if job else None

    with click.progressbar(length=100, label=label, item_show_func=phase) as bar:
        shown = 0
        while time.monotonic() < deadline:
            job = _job(client, job_id)
            total = job["units_total"] or 1
            done = int(100 * job["units_done"] / total)
            bar.update(max(0, done - shown))
            shown = max(shown, done)
            if job["state"] in FINISHED:
                break
            time.sleep(0.5)
    return job


def import_definitions(
    api_url: str, token: str, text: str, *, author: str, reason: str
) -> dict[str, Any]:
    """``PUT /v1/admin/definitions`` with a definitions file's text: the change and jobs."""
    body = {"toml": text, "author": author, "reason": reason}
    return _call(api_url, token, "PUT", "/v1/admin/definitions", body, 202)


def export_definitions(api_url: str, token: str) -> dict[str, Any]:
    """``GET /v1/admin/definitions``: the current version (with its TOML) and history."""
    return _call(api_url, token, "GET", "/v1/admin/definitions", None, 200)


def _call(
    api_url: str, token: str, method: str, path: str, body: dict[str, Any] | None, expected: int
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise AdminError(f"{api_url}: {exc}") from exc
    if response.status_code != expected:
        raise AdminError(_explain(response))
    answer: dict[str, Any] = response.json()
    return answer
