"""Health of the processes that serve no HTTP: ``stratum worker`` and ``stratum batch``
write their probe's verdict to a heartbeat file, which ``stratum healthcheck`` (the
container healthcheck) reads; the API is asked over HTTP."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from stratum.health import ComponentHealth, Probe

HEARTBEAT_INTERVAL_S = 5.0


def heartbeat_path(role: str) -> Path:
    """Per container (a temp dir), never a shared volume: replicas must not share it."""
    return Path(tempfile.gettempdir()) / f"stratum-{role}.health.json"


async def heartbeat(role: str, probe: Probe, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
    """Write the probe's verdict every ``interval_s``: ``stratum worker`` and ``stratum
    batch`` serve no HTTP, so their container healthcheck reads this file instead. A
    stuck event loop stops the writes, which the check sees as a stale file."""
    path = heartbeat_path(role)
    while True:
        try:
            health = probe()
        except Exception as exc:  # noqa: BLE001 - a failing probe is a finding
            health = ComponentHealth(status="down", detail=f"probe failed: {exc}")
        record = {"status": health.status, "detail": health.detail, "at": time.time()}
        partial = path.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(record))
        partial.replace(path)
        await asyncio.sleep(interval_s)


def check_health(role: str, api_url: str, *, max_age_s: float = 30.0) -> tuple[bool, str]:
    """The container healthcheck: ``(healthy, why)``. The API is asked over HTTP at
    ``api_url``; a worker or the scheduler by its heartbeat file."""
    if role == "api":
        target = f"{api_url.rstrip('/')}/v1/health"
        try:
            response = httpx.get(target, timeout=5.0)
        except httpx.HTTPError as exc:
            return False, f"{target}: {exc}"
        if response.status_code != 200:
            return False, f"{target}: HTTP {response.status_code}"
        status = str(response.json().get("status"))
        return status == "ok", f"{target}: {status}"  # "degraded" is not healthy
    path = heartbeat_path(role)
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return False, f"no heartbeat from the {role} at {path}: {exc}"
    age_s = time.time() - float(record["at"])
    if age_s > max_age_s:
        return False, f"the {role}'s last heartbeat is {age_s:.0f} s old"
    return record["status"] != "down", f"{record['status']}: {record['detail']}"
