"""The dashboard keeps the server's tokens on the server and honours the read token: the
real Dash app through its Flask test client (no API behind it is needed for these).

Issue 17, findings 1 (the admin token handed out by a callback), 2 (the read token
bypassed through the dashboard) and 6 (unknown asset paths answered 500)."""

from __future__ import annotations

from typing import Any

import pytest
from dash import Dash
from flask.testing import FlaskClient

from dashboard.app import create_dash
from dashboard.auth import COOKIE, person_credential
from stratum.settings import Settings

ADMIN = "adm-SECRET-123"  # noqa: S105 - the issue's reproduction
READ = "read-SECRET-456"  # noqa: S105
# The reproduction: ask the (development-only) prefill callback for the value.
PREFILL = {
    "output": "admin-token-input.value",
    "outputs": {"id": "admin-token-input", "property": "value"},
    "inputs": [{"id": "admin-token-input", "property": "id", "value": "admin-token-input"}],
    "changedPropIds": ["admin-token-input.id"],
    "state": [{"id": "admin-token-input", "property": "value", "value": None}],
}
PAGES = ["/", "/admin", "/explorer", "/_dash-layout", "/_dash-dependencies"]


def _dash(**api: Any) -> Dash:
    settings = Settings(_env_file=None, api={"port": 1, **api})  # type: ignore[call-arg]
    return create_dash(settings, requests_pathname_prefix="/dashboard/")


def _every_answer(client: FlaskClient) -> list[bytes]:
    answers = [client.get(path).data for path in PAGES]
    answers.append(client.post("/_dash-update-component", json=PREFILL).data)
    for callback in client.get("/_dash-dependencies").get_json():
        if not callback.get("inputs") or callback.get("clientside_function"):
            continue  # clientside callbacks run in the browser; their code is in the deps
        answers.append(client.post("/_dash-update-component", json=_call(callback)).data)
    return answers


def _call(callback: dict[str, Any]) -> dict[str, Any]:
    """A first-load call of a server callback: every input and state at None."""

    def plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"id": i["id"], "property": i["property"], "value": None}
            for i in items
            if not str(i["id"]).startswith("{")
        ]

    inputs = plain(callback["inputs"])
    return {
        "output": callback["output"],
        "outputs": [],
        "inputs": inputs,
        "changedPropIds": [],
        "state": plain(callback.get("state", [])),
    }


def test_no_page_layout_or_callback_hands_out_the_admin_token() -> None:
    """Finding 1: development mode (the default) with a custom admin token."""
    client = _dash(admin_token=ADMIN).server.test_client()
    answer = client.post("/_dash-update-component", json=PREFILL)
    assert answer.status_code == 404, answer.data[:300]
    for body in _every_answer(client):
        assert ADMIN.encode() not in body


def test_with_a_read_token_nothing_but_the_sign_in_page_answers_without_it() -> None:
    """Finding 2: every route and callback needs the person's credential."""
    client = _dash(admin_token=ADMIN, read_token=READ).server.test_client()
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code in (303, 401), (path, answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["location"] == "/dashboard/sign-in"
    for path in ("/_dash-update-component", "/_dash-layout"):
        answer = client.post(path, json=PREFILL)
        assert answer.status_code == 401 and b"sign in" in answer.data
    for path in ("/assets/stratum.css", "/_dash-component-suites/dash/deps/react@18.3.1.min.js"):
        assert client.get(path).status_code in (303, 401), path
    page = client.get("/sign-in")
    assert page.status_code == 200 and b'type="password"' in page.data
    assert READ.encode() not in page.data and ADMIN.encode() not in page.data


def test_signing_in_sets_an_httponly_strict_cookie_and_then_the_pages_answer() -> None:
    app = _dash(admin_token=ADMIN, read_token=READ)
    client = app.server.test_client()
    refused = client.post("/sign-in", data={"token": "guess"})
    assert refused.status_code == 200 and b"not the read token" in refused.data
    assert "set-cookie" not in refused.headers
    signed = client.post("/sign-in", data={"token": READ})
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={READ};")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/dashboard"):
        assert attribute in cookie, cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # a session cookie
    # The browser sends it back under /dashboard/; Flask sees paths below the mount.
    client = app.server.test_client()
    client.set_cookie(COOKIE, READ)
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    for body in _every_answer(client):
        assert ADMIN.encode() not in body
    out = client.post("/sign-out")
    assert out.status_code == 303 and f"{COOKIE}=;" in out.headers["set-cookie"]


@pytest.mark.parametrize("cookie", [None, READ])
def test_the_api_client_forwards_the_persons_credential_and_nothing_else(
    cookie: str | None,
) -> None:
    """The client's credential is the cookie of the request being served, never the
    configured read token (which would serve anyone)."""
    app = _dash(admin_token=ADMIN, read_token=READ)
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    with app.server.test_request_context("/", headers=headers):
        assert person_credential() == cookie
    assert person_credential() is None  # outside a request: nobody's


@pytest.mark.parametrize(
    "path",
    [
        "/_dash-component-suites/..%2f..%2fetc/passwd",
        "/_dash-component-suites/dash/..%2f..%2f..%2fetc%2fpasswd",
        "/_dash-component-suites/dash/deps/nope.js",
    ],
)
def test_unknown_asset_paths_are_404(path: str) -> None:
    """Finding 6: an encoded ``..%2f`` under the component suites answered 500."""
    answer = _dash().server.test_client().get(path)
    assert answer.status_code == 404, answer.data[:200]
