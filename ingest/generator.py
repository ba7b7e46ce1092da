"""A realistic synthetic stream for demos and benchmarks.

Clickstream (page views, clicks, add-to-cart) and purchases over country, device and
page, at a steady rate with bursts; a few percent of events out of order (seconds), a
smaller share late (minutes, beyond the default allowed lateness), some duplicates (the
same event_id sent again) and a few malformed events, which ingest rejects with a reason.

Events go through the HTTP ingest API, the same path as any producer.
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
BASE_LATENCY = {"ios": 110.0, "android": 140.0, "desktop": 80.0, "tablet": 120.0}


@dataclass(frozen=True)
class GeneratorConfig:
    rate_per_s: float = 200.0
    burst_every_s: float = 45.0
    burst_factor: float = 4.0
    burst_length_s: float = 5.0
    out_of_order: float = 0.03
    late: float = 0.005
    duplicate: float = 0.005
    malformed: float = 0.002
    backfill_s: float = 0.0
    seed: int | None = None


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


def backfill(factory: EventFactory, seconds: float, now_ms: int, rate_per_s: float
             ) -> Iterator[list[dict[str, Any]]]:
    """In-order history for the last ``seconds``, one second per batch."""
    start = now_ms - int(seconds * 1000)
    for second in range(int(seconds)):
        base = start + second * 1000
        yield [factory.event(base + factory.rng.randrange(1000))
               for _ in range(max(1, int(rate_per_s)))]


async def run_generator(api_url: str, config: GeneratorConfig, *, duration_s: float | None = None,
                        token: str | None = None, stop: asyncio.Event | None = None) -> int:
    """Post events to ``api_url`` until ``duration_s`` passes or ``stop`` is set."""
    factory = EventFactory(config)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    sent = 0

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async with httpx.AsyncClient(base_url=api_url, timeout=30.0, headers=headers) as client:
        await _wait_ready(client, stopped)
        if config.backfill_s > 0 and not stopped():
            # Stop is checked per chunk too: uvicorn closes the API's port before the
            # lifespan stops the generator, and a backfill posting into the closed port
            # held the shutdown for seconds, warning once a chunk, until cancelled.
            now_ms = int(time.time() * 1000)
            chunk: list[dict[str, Any]] = []
            for second in backfill(factory, config.backfill_s, now_ms, config.rate_per_s):
                if stopped():
                    break
                chunk.extend(second)
                if len(chunk) >= 5000:
                    sent += await _post(client, chunk)
                    chunk = []
            else:
                sent += await _post(client, chunk)
                log.info("generator: backfilled %.0f s of history (%d events)",
                         config.backfill_s, sent)
        started = time.monotonic()
        tick = 0.25
        while not stopped():
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            in_burst = config.burst_every_s > 0 and (elapsed % config.burst_every_s
                                                     ) < config.burst_length_s
            rate = config.rate_per_s * (config.burst_factor if in_burst else 1.0)
            count = max(1, int(rate * tick * factory.rng.uniform(0.8, 1.2)))
            sent += await _post(client, factory.batch(int(time.time() * 1000), count))
            await asyncio.sleep(tick)
    return sent


async def _wait_ready(client: httpx.AsyncClient, stopped: Callable[[], bool],
                      timeout_s: float = 30.0) -> None:
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
