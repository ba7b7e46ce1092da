"""Bearer tokens, shared by the API's checks, ingest's and the dashboard's sign-in.

Tokens come only as headers (``Authorization: Bearer`` or ``X-Stratum-Token``), never
from cookies, so a page on another site cannot make a browser present them. The Bearer
header is read by FastAPI's :class:`HTTPBearer`, so OpenAPI shows the security scheme."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_HEADER = "x-stratum-token"  # noqa: S105 - a header name
bearer = HTTPBearer(
    auto_error=False, description="a Stratum token; the X-Stratum-Token header works too"
)


def presented_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str | None:
    """A FastAPI dependency: the request's Bearer credentials, else its X-Stratum-Token."""
    return credentials.credentials.strip() if credentials else request.headers.get(TOKEN_HEADER)


TokenDep = Annotated[str | None, Depends(presented_token)]


def matches(token: str | None, expected: Iterable[str | None]) -> bool:
    """Constant-time per candidate; an empty token never matches, not even an empty
    setting (development accepts an empty admin token, which must not mean "open")."""
    if not token:
        return False
    given = token.encode()
    return any(
        bool(candidate) and secrets.compare_digest(given, str(candidate).encode())
        for candidate in expected
    )
