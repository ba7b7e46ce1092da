"""The demo generator stops when asked, also while it waits for the API or backfills:
the platform stops it after uvicorn has closed the API's port."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from ingest.generator import GeneratorConfig, run_generator
from tests.ports import free_port


def test_a_stop_during_the_wait_for_the_api_ends_the_generator() -> None:
    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_generator(
                f"http://127.0.0.1:{free_port()}", GeneratorConfig(backfill_s=3600), stop=stop
            )
        )
        await asyncio.sleep(0.5)  # waiting for /v1/health, which never answers
        stop.set()
        # Without the stop check the wait alone lasts 30 s, then an hour's backfill follows.
        return await asyncio.wait_for(task, timeout=10)

    assert asyncio.run(main()) == 0


def test_a_stop_during_the_backfill_ends_it_at_the_next_chunk() -> None:
    posts: list[int] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # /v1/health
            self._answer(200, b"{}")

        def do_POST(self) -> None:  # /v1/events
            body = self.rfile.read(int(self.headers["content-length"]))
            posts.append(len(orjson.loads(body)))
            self._answer(202, orjson.dumps({"accepted": posts[-1]}))

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def main() -> int:
        stop = asyncio.Event()
        # An hour at 100 events/s: 72 chunks of 5,000.
        config = GeneratorConfig(rate_per_s=100, backfill_s=3600)
        task = asyncio.create_task(
            run_generator(f"http://127.0.0.1:{server.server_address[1]}", config, stop=stop)
        )
        while not posts:
            await asyncio.sleep(0.01)
        stop.set()
        return await asyncio.wait_for(task, timeout=30)

    try:
        sent = asyncio.run(main())
    finally:
        server.shutdown()
        server.server_close()
    assert 0 < len(posts) < 72 and sent == sum(posts)
