"""A realistic synthetic stream for demos and benchmarks.

Clickstream (page views, clicks, add-to-cart) and purchases over country, device and
page; a few percent of events out of order (seconds), a
smaller share late (minutes, beyond the default allowed lateness), some duplicates (the
same event_id sent again) and a few malformed events, which ingest rejects with a reason.

Events go through the HTTP ingest API, the same path as any producer.

Pacing: the stream is a function of event time, :meth:`GeneratorConfig.rate_at`, the
same for the back-fill and the live part: ``rate_per_s``, times ``burst_factor`` for
``burst_length_s`` out of every ``burst_every_s`` when bursts are on (off unless asked:
the mean rate is then exactly ``rate_per_s``). The live loop keeps a cursor in event time
and, every quarter second, sends what is due from the cursor to now (the fraction of an
event carries over), so a slow post is made up rather than lost and ``--rate 50`` is 50
events per second. The back-fill runs the cursor from ``now - backfill_s`` and, since
posting history takes a while, catches up to the wall clock before the live part starts:
no dent between the two.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)

COUNTRIES = ("DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "JP")
COUNTRY_WEIGHTS = (18, 12, 25, 10, 7, 7, 5, 5, 3, 8)
DEVICES = ("ios", "android", "desktop", "tablet")
DEVICE_WEIGHTS = (30, 35, 28, 7)
PAGES = ("/", "/search", "/product", "/cart", "/checkout", "/account", "/help")
TYPES = ("page_view", "click", "add_to_cart", "purchase")
TYPE_WEIGHTS = (60, 25, 10, 5)
DEMO_BURSTS_S = 45.0  # `stratum up --demo` and `generate --bursts`: a burst every 45 s
BASE_LATENCY = {"ios": 110.0, "android": 140.0, "desktop": 80.0, "tablet": 120.0}


@dataclass(frozen=True)
class GeneratorConfig:
    rate_per_s: float = 200.0
    burst_every_s: float = 0.0  # 0: no bursts; the demo uses 45 s
    burst_factor: float = 4.0
    burst_length_s: float = 5.0
    out_of_order: float = 0.03
    late: float = 0.005
    duplicate: float = 0.005
    malformed: float = 0.002
    backfill_s: float = 0.0
    seed: int | None = None

    def rate_at(self, ts_ms: int) -> float:
        """Events per second at event time ``ts_ms``."""
        every_ms = self.burst_every_s * 1000
        if every_ms > 0 and ts_ms % every_ms < self.burst_length_s * 1000:
            return self.rate_per_s * self.burst_factor
        return self.rate_per_s

    @property
    def mean_rate_per_s(self) -> float:
        if self.burst_every_s <= 0:
            return self.rate_per_s
        share = min(1.0, self.burst_length_s / self.burst_every_s)
        return self.rate_per_s * (1 + (self.burst_factor - 1) * share)


class Pacer:
    """How many events are due from an event-time cursor to a moment; the fraction of
    an event carries over, so any rate (0.5/s too) comes out right on average."""

    def __init__(self, config: GeneratorConfig, cursor_ms: int) -> None:
        self.config = config
        self.cursor_ms = cursor_ms
        self._credit = 0.0

    def due(self, until_ms: int, slice_ms: int = 250) -> list[tuple[int, int]]:
        """``(slice start, count)`` for each slice from the cursor up to ``until_ms``;
        moves the cursor there."""
        out: list[tuple[int, int]] = []
        while self.cursor_ms < until_ms:
            length = min(slice_ms, until_ms - self.cursor_ms)
            self._credit += self.config.rate_at(self.cursor_ms) * length / 1000
            count = int(self._credit)
            self._credit -= count
            if count:
                out.append((self.cursor_ms, count))
            self.cursor_ms += length
        return out


class EventFactory:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - demo data, not security
        self.sent: list[dict[str, Any]] = []

    def event(self, ts_ms: int) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choices(TYPES, TYPE_WEIGHTS)[0]
        device = rng.choices(DEVICES, DEVICE_WEIGHTS)[0]
        event: dict[str, Any] = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "ts": ts_ms,
            "type": kind,
            "user_id": f"u{rng.randrange(50_000)}",
            "country": rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
            "device": device,
            "page": "/checkout" if kind == "purchase" else rng.choice(PAGES),
            "latency_ms": round(rng.lognormvariate(0, 0.5) * BASE_LATENCY[device], 1),
        }
        if kind == "purchase":
            event["amount"] = round(rng.lognormvariate(3.3, 0.7), 2)
        return event

    def batch(self, now_ms: int, count: int) -> list[Any]:
        """``count`` events around ``now_ms`` with the configured imperfections."""
        rng, cfg = self.rng, self.config
        out: list[Any] = []
        for _ in range(count):
            roll = rng.random()
            if roll < cfg.malformed:
                out.append(self._malformed(now_ms))
                continue
            if roll < cfg.malformed + cfg.duplicate and self.sent:
                out.append(rng.choice(self.sent))
                continue
            ts = now_ms - rng.randrange(0, 1000)
            if rng.random() < cfg.out_of_order:
                ts -= rng.randrange(2_000, 45_000)
            elif rng.random() < cfg.late:
                ts -= rng.randrange(6 * 60_000, 20 * 60_000)
            event = self.event(ts)
            out.append(event)
            if len(self.sent) < 1000:
                self.sent.append(event)
            else:
                self.sent[rng.randrange(1000)] = event
        return out

    def _malformed(self, now_ms: int) -> Any:
        choice = self.rng.randrange(4)
        if choice == 0:
            return {"event_id": "bad-" + uuid.uuid4().hex, "type": "click"}  # no ts
        if choice == 1:
            return {"event_id": 42, "ts": now_ms, "type": "click"}
        if choice == 2:
            return {"event_id": uuid.uuid4().hex, "ts": "yesterday", "type": "click"}
        return ["not", "an", "object"]


def backfill(factory: EventFactory, pacer: Pacer, until_ms: int) -> Iterator[list[dict[str, Any]]]:
    """In-order history from the pacer's cursor to ``until_ms``, one second per batch."""
    while pacer.cursor_ms < until_ms:
        second = [
            factory.event(start + factory.rng.randrange(1000))
            for start, count in pacer.due(min(until_ms, pacer.cursor_ms + 1000), 1000)
            for _ in range(count)
        ]
        if second:
            yield second


async def run_generator(
    api_url: str,
    config: GeneratorConfig,
    *,
    duration_s: float | None = None,
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Post events to ``api_url`` until ``duration_s`` passes or ``stop`` is set."""
    factory = EventFactory(config)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    sent = 0

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def now_ms() -> int:
        return int(time.time() * 1000)

    async with httpx.AsyncClient(base_url=api_url, timeout=30.0, headers=headers) as client:
        await _wait_ready(client, stopped)
        pacer = Pacer(config, now_ms() - int(config.backfill_s * 1000))
        if config.backfill_s > 0 and not stopped():
            # Stop is checked per chunk too: uvicorn closes the API's port before the
            # lifespan stops the generator, and a backfill posting into the closed port
            # held the shutdown for seconds, warning once a chunk, until cancelled.
            # Rounds until the cursor is within a second of the clock: posting an hour
            # of history takes seconds, which would otherwise be a dent.
            while now_ms() - pacer.cursor_ms > 1000 and not stopped():
                chunk: list[dict[str, Any]] = []
                for second in backfill(factory, pacer, now_ms() - now_ms() % 1000):
                    if stopped():
                        break
                    chunk.extend(second)
                    if len(chunk) >= 5000:
                        sent += await _post(client, chunk)
                        chunk = []
                if not stopped():
                    sent += await _post(client, chunk)
            log.info("generator: backfilled %.0f s of history (%d events)", config.backfill_s, sent)
        started = time.monotonic()
        tick = 0.25
        pacer.cursor_ms = max(pacer.cursor_ms, now_ms() - 1000)
        while not stopped():
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            due = pacer.due(now_ms())
            count = sum(n for _, n in due)
            if count:
                sent += await _post(client, factory.batch(now_ms(), count))
            await asyncio.sleep(tick)
    return sent


async def _wait_ready(
    client: httpx.AsyncClient, stopped: Callable[[], bool], timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stopped():
        try:
            if (await client.get("/v1/health")).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)


async def _post(client: httpx.AsyncClient, events: list[Any]) -> int:
    if not events:
        return 0
    try:
        response = await client.post("/v1/events", content=orjson.dumps(events))
    except httpx.HTTPError as exc:
        log.warning("generator: ingest unreachable: %s", exc)
        await asyncio.sleep(1.0)
        return 0
    if response.status_code == 202:
        return int(response.json()["accepted"])
    log.warning("generator: ingest answered %s: %s", response.status_code, response.text[:300])
    if response.status_code in (429, 503):
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    return 0
