"""Tokens that are tokens (issue 17, finding 3): outside development every token is long,
not the development default, and unlike the others; the commands refuse to start with one
line otherwise; and an empty token never opens anything, in any mode."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import HTTPException
from pydantic import ValidationError
from starlette.requests import Request

from ingest.routes import require_ingest
from serving.deps import require_admin, require_reader
from stratum.app.cli import main as cli
from stratum.settings import DEV_ADMIN_TOKEN, MIN_TOKEN_CHARS, Settings
from stratum.tokens import bearer, presented_token

GOOD = {"admin_token": "a" * MIN_TOKEN_CHARS, "ingest_token": "i" * MIN_TOKEN_CHARS}


def _production(**api: Any) -> Settings:
    return Settings(
        _env_file=None,
        environment="production",  # type: ignore[call-arg]
        api={**GOOD, **api},
    )


def test_production_takes_long_distinct_tokens() -> None:
    settings = _production(read_token="r" * 40)
    assert settings.api.read_token == "r" * 40


@pytest.mark.parametrize(
    ("api", "says"),
    [
        ({"admin_token": ""}, "STRATUM_API__ADMIN_TOKEN is 0 characters long"),
        ({"admin_token": "x"}, "STRATUM_API__ADMIN_TOKEN is 1 characters long"),
        ({"admin_token": DEV_ADMIN_TOKEN}, "not the default"),
        ({"read_token": "short"}, "STRATUM_API__READ_TOKEN is 5 characters long"),
        ({"ingest_token": None}, "STRATUM_API__INGEST_TOKEN must be set in production"),
        ({"ingest_token": "i" * 23}, "at least 24"),
        ({"read_token": GOOD["admin_token"]}, "READ_TOKEN must differ from STRATUM_API__ADMIN"),
        ({"ingest_token": "r" * 30, "read_token": "r" * 30}, "INGEST_TOKEN must differ"),
    ],
)
def test_production_refuses_weak_or_shared_tokens(api: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _production(**api)


def test_development_keeps_its_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.api.admin_token == DEV_ADMIN_TOKEN and settings.api.ingest_token is None


@pytest.mark.parametrize("command", ["up", "api", "worker", "batch"])
def test_the_commands_refuse_to_start_with_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ENVIRONMENT", "production")
    monkeypatch.setenv("STRATUM_API__ADMIN_TOKEN", "")
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        "stratum: refusing to start: STRATUM_API__ADMIN_TOKEN is 0 "
        "characters long; in production every token needs at least 24 (e.g. "
        "openssl rand -hex 24)"
    ], result.output
    assert "Traceback" not in result.output


def _request(token: str | None, settings: Settings) -> Request:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    app = SimpleNamespace(state=SimpleNamespace(settings=settings))
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "app": app})


@pytest.mark.parametrize("check", [require_admin, require_reader, require_ingest])
def test_an_empty_token_opens_nothing_even_when_the_setting_is_empty(check: Any) -> None:
    """Development accepts an empty setting; an empty bearer must still not match it."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        api={"admin_token": "", "read_token": "", "ingest_token": ""},
    )
    for token in ("", None, " "):
        request = _request(token, settings)
        presented = presented_token(request, asyncio.run(bearer(request)))
        with pytest.raises(HTTPException) as refused:
            if check is require_ingest:
                check(request, presented)
            else:
                check(presented, settings)
        assert refused.value.status_code == 401
