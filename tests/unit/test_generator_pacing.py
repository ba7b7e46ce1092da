"""The generator's pacing: the rate asked is the rate sent, history and live alike, with
no gap between the end of the back-fill and the live stream."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from ingest.generator import EventFactory, GeneratorConfig, Pacer, backfill, run_generator

MINUTE = 60_000


@pytest.mark.parametrize("rate", [0.5, 50.0, 200.0, 333.3])
def test_without_bursts_the_pacer_sends_exactly_the_rate(rate: float) -> None:
    pacer = Pacer(GeneratorConfig(rate_per_s=rate), 0)
    sent = sum(n for _, n in pacer.due(10 * MINUTE))
    assert abs(sent - rate * 600) < 1
    assert pacer.cursor_ms == 10 * MINUTE


def test_bursts_are_opt_in_and_their_mean_is_stated() -> None:
    assert GeneratorConfig().burst_every_s == 0
    config = GeneratorConfig(rate_per_s=50, burst_every_s=45)
    sent = sum(n for _, n in Pacer(config, 0).due(45_000 * 40))
    assert sent == pytest.approx(config.mean_rate_per_s * 45 * 40, abs=1)
    assert config.mean_rate_per_s == pytest.approx(50 * (1 + 3 * 5 / 45))


def test_backfill_spreads_history_evenly_over_its_minutes() -> None:
    config = GeneratorConfig(rate_per_s=200, seed=1)
    factory = EventFactory(config)
    pacer = Pacer(config, 0)
    per_minute: dict[int, int] = {}
    for second in backfill(factory, pacer, 30 * MINUTE):
        for event in second:
            per_minute[event["ts"] // MINUTE] = per_minute.get(event["ts"] // MINUTE, 0) + 1
    assert set(per_minute.values()) == {12_000}
    assert len(per_minute) == 30


def test_live_sending_follows_the_backfill_without_a_dent_and_at_the_rate() -> None:
    """Against a slow ingest (0.3 s a post): the back-fill catches up to the clock, and
    the live part sends the rate asked, not more (it sent ~4x with bursts)."""
    stamps: list[int] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200, b"{}")

        def do_POST(self) -> None:
            events = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
            threading.Event().wait(0.3)
            stamps.extend(
                e["ts"] for e in events if isinstance(e, dict) and isinstance(e.get("ts"), int)
            )
            self._answer(202, orjson.dumps({"accepted": len(events)}))

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = GeneratorConfig(
        rate_per_s=50, backfill_s=60, seed=3, out_of_order=0, late=0, duplicate=0, malformed=0
    )
    try:
        sent = asyncio.run(
            run_generator(f"http://127.0.0.1:{server.server_address[1]}", config, duration_s=4.0)
        )
    finally:
        server.shutdown()
        server.server_close()
    stamps.sort()
    first, last = stamps[0], stamps[-1]
    per_second = [0] * ((last - first) // 1000 + 1)
    for ts in stamps:
        per_second[(ts - first) // 1000] += 1
    whole = per_second[1:-1]  # the partial first and last seconds aside
    assert len(whole) >= 60
    assert min(whole) >= 25, per_second  # no empty or thin second: no dent
    assert sent / ((last - first) / 1000) == pytest.approx(50, rel=0.1)
