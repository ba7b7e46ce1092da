"""Leases in ClickHouse's ``kv`` table: one holder among processes that share nothing
but ClickHouse (e.g. the one worker of many that runs Kappa replays).

ClickHouse has no compare-and-set, so acquiring is write, wait, read back: every
contender writes its claim, waits ``settle_s`` (far longer than the read-to-write gap of
a claim), and reads which claim is newest; only that one holds. The holder renews well
before ``ttl_s``; a holder that died loses the lease when it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stratum.storage.client import Storage

LEASE = "lease:"


@dataclass
class Lease:
    storage: Storage
    name: str
    owner: str
    ttl_s: float = 30.0
    settle_s: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    _held_until: float = 0.0  # monotonic; renew before it

    def _read(self) -> tuple[str, float] | None:
        rows = self.storage.query(
            f"SELECT value FROM {self.storage.database}.kv FINAL WHERE key = {{k:String}}",
            {"k": LEASE + self.name},
        )
        if not rows or not rows[0][0]:
            return None
        owner, _, expires = str(rows[0][0]).rpartition("|")
        return owner, float(expires)

    def _write(self, value: str) -> None:
        self.storage.insert(
            "kv", [[LEASE + self.name, value, datetime.now(tz=UTC)]], ("key", "value", "updated_at")
        )

    def holder(self) -> str | None:
        """Who holds the lease now, if anyone."""
        found = self._read()
        return found[0] if found and found[1] > time.time() else None

    def hold(self) -> bool:
        """Acquire or renew; whether this owner holds the lease afterwards."""
        now = time.monotonic()
        if self._held_until - now > self.ttl_s / 2:
            return True  # renewed recently
        current = self._read()
        mine = current is not None and current[0] == self.owner
        if current is not None and not mine and current[1] > time.time():
            self._held_until = 0.0
            return False
        self._write(f"{self.owner}|{time.time() + self.ttl_s}")
        if not mine:
            self.sleep(self.settle_s)  # let a simultaneous claim land, then see who won
            current = self._read()
            if current is None or current[0] != self.owner:
                self._held_until = 0.0
                return False
        self._held_until = now + self.ttl_s
        return True

    def release(self) -> None:
        if self._held_until and self.holder() == self.owner:
            self._write("")
        self._held_until = 0.0
