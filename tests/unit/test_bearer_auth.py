"""Tokens are read by FastAPI's HTTPBearer: OpenAPI documents the scheme, and the
answers stay what clients know (401 ``unauthorized`` with the same messages)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from serving.deps import AdminOnly
from serving.errors import install_error_handlers
from serving.routes import admin, metrics
from stratum.settings import Settings

ADMIN = "admin-token-for-the-bearer-test"  # noqa: S105


class Client:
    """Requests straight into the app (httpx's ASGI transport), one event loop each."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await http.get(path, headers=headers)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def client() -> Client:
    app = FastAPI()
    app.state.settings = Settings(api={"admin_token": ADMIN})
    install_error_handlers(app)
    app.include_router(admin.router)
    app.include_router(metrics.router)

    @app.get("/probe", dependencies=[AdminOnly])
    def probe() -> dict[str, bool]:
        return {"ok": True}

    return Client(app)


def test_openapi_shows_the_bearer_scheme_on_guarded_operations(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": ("a Stratum token; the X-Stratum-Token header works too"),
        }
    }
    assert spec["paths"]["/v1/admin/jobs"]["get"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/v1/metrics"]["get"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {ADMIN}"},
        {"Authorization": f"bearer {ADMIN}"},
        {"X-Stratum-Token": ADMIN},
        {"Authorization": "Basic x", "X-Stratum-Token": ADMIN},
    ],
)
def test_the_token_is_taken_from_either_header(client: Client, headers: dict[str, str]) -> None:
    assert client.get("/probe", headers=headers).json() == {"ok": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {ADMIN}"},
        {"X-Stratum-Token": ""},
    ],
)
def test_a_missing_or_wrong_token_is_401_unauthorized(
    client: Client, headers: dict[str, str]
) -> None:
    response = client.get("/probe", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and error["details"] == {}
    assert error["message"].startswith("admin endpoints need the admin token")
