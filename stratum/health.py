"""Component health: each running part registers a probe; ``GET /v1/health`` runs them.

Probes are plain callables so serving needs no knowledge of the parts: the process that
composes the platform (one process, or ``stratum api`` alone) decides what to register.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

Status = Literal["ok", "degraded", "down", "unknown"]


class ComponentHealth(BaseModel):
    status: Status
    detail: str = ""


Probe = Callable[[], ComponentHealth]


class HealthRegistry:
    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def check(self) -> dict[str, ComponentHealth]:
        results = {}
        for name, probe in self._probes.items():
            try:
                results[name] = probe()
            except Exception as exc:  # noqa: BLE001 - a failing probe is a finding, not a 500
                results[name] = ComponentHealth(status="down", detail=f"probe failed: {exc}")
        return results
