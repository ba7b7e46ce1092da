"""Admin commands against a running Stratum, through its REST API, with terminal progress."""

from __future__ import annotations

import time
from typing import Any

import click
import httpx

from stratum.errors import StratumError
from stratum.replay_range import describe


class AdminError(StratumError):
    """The API refused or could not be reached."""


def _explain(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


def follow_batch(api_url: str, token: str, *, mode: str = "incremental",
                 wait: bool = True, timeout_s: float = 3600) -> str:
    return _follow(api_url, token, "/v1/admin/batch", {"trigger": "cli", "mode": mode},
                   "recompute", wait=wait, timeout_s=timeout_s)


def follow_replay(api_url: str, token: str, *, from_time: str | None = None,
                  wait: bool = True, timeout_s: float = 3600) -> str:
    body: dict[str, str] = {"trigger": "cli"}
    if from_time:
        body["from"] = from_time
    return _follow(api_url, token, "/v1/admin/replay", body, "replay", wait=wait,
                   timeout_s=timeout_s)


def _follow(api_url: str, token: str, path: str, body: dict[str, str], label: str, *,
            wait: bool, timeout_s: float) -> str:
    """Start a job and draw its progress until it ends; Ctrl-C leaves it running."""
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=10) as client:
            response = client.post(path, json=body)
            if response.status_code != 202:
                raise AdminError(_explain(response))
            accepted = response.json()
            job_id = accepted["job_id"]
            click.echo(f"{label} job {job_id} queued")
            if accepted.get("rebuilds"):
                click.echo(f"{label} {accepted['rebuilds']}")
            if not wait:
                return job_id
            job = _watch(client, job_id, label, timeout_s)
            click.echo(f"{job['state']}: {job['rows_in']} events in, {job['rows_out']} rows "
                       f"out, horizon {job.get('horizon')}, params {job.get('params')}")
            if job.get("kind") == "replay":
                click.echo(f"{label}: {describe(job.get('params') or {})}")
            if job["state"] != "succeeded":
                raise AdminError(f"job {job_id} {job['state']}: {job['error']}")
            return job_id
    except httpx.HTTPError as exc:
        raise AdminError(f"cannot reach Stratum at {api_url}: {exc}") from exc


def _watch(client: httpx.Client, job_id: str, label: str, timeout_s: float
           ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    with click.progressbar(length=100, label=label) as bar:
        shown = 0
        while time.monotonic() < deadline:
            job = client.get(f"/v1/admin/jobs/{job_id}").json()
            total = job["units_total"] or 1
            done = int(100 * job["units_done"] / total)
            bar.update(max(0, done - shown))
            shown = max(shown, done)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
    return job


def import_definitions(api_url: str, token: str, text: str, *, author: str, reason: str
                       ) -> dict[str, Any]:
    """``PUT /v1/admin/definitions`` with a definitions file's text: the change and jobs."""
    body = {"toml": text, "author": author, "reason": reason}
    return _call(api_url, token, "PUT", "/v1/admin/definitions", body, 202)


def export_definitions(api_url: str, token: str) -> dict[str, Any]:
    """``GET /v1/admin/definitions``: the current version (with its TOML) and history."""
    return _call(api_url, token, "GET", "/v1/admin/definitions", None, 200)


def _call(api_url: str, token: str, method: str, path: str, body: dict[str, Any] | None,
          expected: int) -> dict[str, Any]:
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
