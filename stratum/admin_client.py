"""Admin commands against a running Stratum, through its REST API, with terminal progress."""

from __future__ import annotations

import time

import click
import httpx

from stratum.errors import StratumError


class AdminError(StratumError):
    """The API refused or could not be reached."""


def _explain(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


def follow_batch(api_url: str, token: str, *, wait: bool = True, timeout_s: float = 3600) -> str:
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=10) as client:
            response = client.post("/v1/admin/batch", json={"trigger": "cli"})
            if response.status_code != 202:
                raise AdminError(_explain(response))
            job_id = response.json()["job_id"]
            click.echo(f"batch job {job_id} queued")
            if not wait:
                return job_id
            deadline = time.monotonic() + timeout_s
            with click.progressbar(length=100, label="recompute") as bar:
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
            click.echo(f"{job['state']}: {job['rows_in']} events in, {job['rows_out']} window "
                       f"rows out, horizon {job['horizon']}")
            if job["state"] != "succeeded":
                raise AdminError(f"job {job_id} {job['state']}: {job['error']}")
            return job_id
    except httpx.HTTPError as exc:
        raise AdminError(f"cannot reach Stratum at {api_url}: {exc}") from exc
