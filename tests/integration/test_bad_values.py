"""Issue 16's bad values through the real API on the shared stack, before and after a
batch run: text that reads as NaN is rejected and the window keeps its 10 good events;
a numeric dimension value is one group whatever its spelling and whatever column type
its archive file gave it; a sum past float64 is flagged as overflow, not a bare null."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import polars as pl
import pytest

from stratum.archive import archive_root
from tests.stack import Stack, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration
MINUTE = 60_000


def _purchase(ts_ms: int, country: Any, amount: Any) -> dict[str, Any]:
    return {
        "event_id": f"bad-{uuid4().hex}",
        "ts": ts_ms,
        "type": "purchase",
        "country": country,
        "amount": amount,
    }


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """Its own stack: its events are minutes old, late on a stack whose watermark other
    tests moved to now (lateness 60 s)."""
    return make_stack("bad_values")


def _archived(stack: Stack, ids: set[str]) -> bool:
    files = archive_root(stack.settings.data_dir).glob("date=*/hour=*/*.parquet")
    found = {i for f in files for i in pl.read_parquet(f, columns=["event_id"])["event_id"]}
    return ids <= found


def _revenue(stack: Stack, t0: int, **params: Any) -> list[dict[str, Any]]:
    response = stack.client.get(
        "/v1/metrics/revenue",
        params={"start": t0, "end": t0 + MINUTE, "group_by": "country", **params},
    )
    assert response.status_code == 200, response.text
    return [
        {
            "group": s["group"],
            **{k: s["points"][0][k] for k in ("value", "count", "overflow", "source")},
        }
        for s in response.json()["series"]
    ]


def test_bad_values_are_rejected_grouped_and_flagged_in_both_layers(stack: Stack) -> None:
    now_ms = int(time.time() * 1000)
    t0 = now_ms - now_ms % MINUTE - 3 * MINUTE
    nan_country, big_country = f"nan-{uuid4().hex[:8]}", f"big-{uuid4().hex[:8]}"
    tier = random.randint(10**6, 10**7)  # a number no other test uses as a country

    good = [_purchase(t0 + i, nan_country, 10.0) for i in range(10)]
    body = stack.post_events(
        [*good, _purchase(t0, nan_country, "NaN"), _purchase(t0, nan_country, "-Infinity")]
    )
    assert body["accepted"] == 10
    assert [r["index"] for r in body["rejected"]] == [10, 11]
    assert all(r["error"].startswith("amount: ") for r in body["rejected"])
    seconds = stack.client.post("/v1/events", json=[_purchase(now_ms // 1000, "x", 1)])
    assert "looks like epoch seconds" in seconds.json()["error"]["details"]["rejected"][0]["error"]

    # Numbers only: this request's archive file stores country as Float64 ...
    numbers = [_purchase(t0 + 1, tier, 1.0), _purchase(t0 + 2, tier, 1.0)]
    stack.post_events(numbers)
    wait_until(
        lambda: _archived(stack, {e["event_id"] for e in numbers}),
        30,
        "the numbers-only file in the archive",
    )
    # ... and this one as text (numbers mixed with text).
    mixed = [_purchase(t0 + 3, float(tier), 1.0), _purchase(t0 + 4, str(tier), 1.0)]
    stack.post_events(mixed)
    big = [_purchase(t0 + 5, big_country, 1.7e308), _purchase(t0 + 6, big_country, 1.7e308)]
    stack.post_events(big)

    def check(source: str) -> None:
        assert _revenue(stack, t0, country=nan_country) == [
            {
                "group": {"country": nan_country},
                "value": 100.0,
                "count": 10,
                "overflow": False,
                "source": source,
            }
        ]
        expected = [
            {
                "group": {"country": str(tier)},
                "value": 4.0,
                "count": 4,
                "overflow": False,
                "source": source,
            }
        ]
        assert _revenue(stack, t0, country=str(tier)) == expected
        assert _revenue(stack, t0, country=f"{tier}.0") == expected
        assert _revenue(stack, t0, country=big_country) == [
            {
                "group": {"country": big_country},
                "value": None,
                "count": 2,
                "overflow": True,
                "source": source,
            }
        ]

    check("speed")
    view = {"event_id": f"bad-{uuid4().hex}", "ts": int(time.time() * 1000), "type": "view"}
    stack.post_events([view])  # moves the horizon past t0's window ...
    # ... once archived: a partition whose archive is behind the speed layer caps it.
    stack.wait_archived([*good, *numbers, *mixed, *big, view])
    stack.run_batch()
    check("batch")
