"""``stratum recompute`` / ``replay`` against an API that answers an error while the
job is followed: one clear AdminError with the API's code, never a KeyError."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stratum.app.admin_client import AdminError, follow_batch


class _Api(BaseHTTPRequestHandler):
    """Accepts the job, then refuses to show it (the token was rotated meanwhile)."""

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["content-length"]))
        self._answer(202, {"job_id": "j1", "state": "queued"})

    def do_GET(self) -> None:  # noqa: N802
        self._answer(
            401,
            {
                "error": {
                    "code": "unauthorized",
                    "details": {},
                    "message": "admin endpoints need the admin token",
                }
            },
        )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_job_watch_is_an_admin_error_with_the_apis_code(api_url: str) -> None:
    with pytest.raises(AdminError, match="job j1: 401 unauthorized: admin endpoints need"):
        follow_batch(api_url, "token", timeout_s=10)
