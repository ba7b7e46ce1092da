"""The REST call behind a panel, as a curl command to read and copy.

Why: the REST API is half of the product; a panel that says which call it drew from
is the quickest way to learn it, and a copied command reproduces the numbers exactly
(absolute start and end, the same step, grouping and filters the dashboard sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import flask
from dash import dcc, html

from dashboard import ids

# The read token, when the API requires one (STRATUM_API__READ_TOKEN on the server).
AUTH_HEADER = '-H "Authorization: Bearer $STRATUM_READ_TOKEN" '  # noqa: S105


def origin() -> str:
    """Where the browser reached us: the API is served beside the dashboard."""
    try:
        return flask.request.host_url.rstrip("/")
    except RuntimeError:  # outside a request (tests): a placeholder the reader can see
        return "http://127.0.0.1:8000"


def curl(base: str, path: str, params: Sequence[tuple[str, str]] = ()) -> str:
    query = f"?{urlencode(list(params))}" if params else ""
    return f"curl -s {AUTH_HEADER}'{base}{path}{query}'"


def query_details(text_id: ids.ComponentId) -> html.Details:
    """A closed "API query" disclosure: the command and a copy button."""
    return html.Details(
        className="api-query",
        children=[
            html.Summary("API query"),
            html.Div(
                className="api-query-body",
                children=[
                    html.Pre("–", id=text_id, className="api-query-text"),
                    dcc.Clipboard(
                        target_id=text_id, title="Copy the curl command", className="api-copy"
                    ),
                ],
            ),
        ],
    )
