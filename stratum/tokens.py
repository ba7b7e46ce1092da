"""Bearer tokens, shared by the API's checks, ingest's and the dashboard's sign-in.

Tokens come only as headers (``Authorization: Bearer`` or ``X-Stratum-Token``), never
from cookies, so a page on another site cannot make a browser present them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping


def presented_token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return headers.get("x-stratum-token")


def matches(token: str | None, expected: Iterable[str | None]) -> bool:
    """Constant-time per candidate; an empty token never matches, not even an empty
    setting (development accepts an empty admin token, which must not mean "open")."""
    if not token:
        return False
    given = token.encode()
    return any(bool(candidate) and secrets.compare_digest(given, str(candidate).encode())
               for candidate in expected)
