"""The replay-runner lease on real chDB: one holder among contenders, renewal, expiry,
and a simultaneous claim settled the same way for both sides."""

from __future__ import annotations

import time

import pytest

from stratum.storage import Storage
from stratum.storage.leases import Lease
from tests.stack import wait_until

pytestmark = pytest.mark.integration


def _lease(storage: Storage, owner: str, name: str, **kw: float) -> Lease:
    return Lease(storage, name, owner, settle_s=0.05, **kw)


def test_one_holder_until_it_releases(storage: Storage) -> None:
    a, b = _lease(storage, "a", "t1"), _lease(storage, "b", "t1")
    assert a.hold() and a.holder() == "a"
    assert not b.hold()
    assert a.hold()  # renewing keeps it
    a.release()
    assert a.holder() is None
    assert b.hold() and not a.hold()


def test_a_dead_holder_loses_the_lease_when_it_expires(storage: Storage) -> None:
    a, b = _lease(storage, "a", "t2", ttl_s=0.5), _lease(storage, "b", "t2", ttl_s=0.5)
    assert a.hold() and not b.hold()
    # a stops renewing (it died): b gets the lease once it expires, not before.
    assert wait_until(b.hold, 5, "b to take the expired lease")
    assert b.holder() == "b"


def test_simultaneous_claims_leave_exactly_one_holder(storage: Storage) -> None:
    a, b = _lease(storage, "a", "t3"), _lease(storage, "b", "t3")
    # b claims while a waits for its claim to settle: the newest claim wins, for both.
    a.sleep = lambda _: b._write(f"b|{time.time() + 30}")
    assert not a.hold()
    assert b.hold() and a.holder() == b.holder() == "b"
