"""The Dash app: a shell (nav bar, health strip) around the pages in ``dashboard/pages``.

Built by :func:`create_dash` so that nothing is read, fetched or connected at import
time. The serving app mounts it with a2wsgi::

    dash_app = create_dash(settings, requests_pathname_prefix="/dashboard/")
    app.mount("/dashboard", WSGIMiddleware(dash_app.server))

Every number on screen comes through :class:`~dashboard.api_client.ApiClient` from
``settings.api_url``, so the dashboard works the same beside the API or on another host.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash
import flask
from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component
from dash.exceptions import DependencyException

from dashboard import ids
from dashboard.api_client import ApiClient
from dashboard.auth import install_sign_in, person_credential
from dashboard.components import health_strip, tone_of
from dashboard.errors import ApiError
from dashboard.live import pause_control, register_live_callbacks
from dashboard.timebar import register_timebar_callbacks
from stratum.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
HEALTH_REFRESH_MS = 5_000


def create_dash(settings: Settings, *, requests_pathname_prefix: str = "/dashboard/") -> Dash:
    """A Dash app serving routes at "/" for a mount at ``requests_pathname_prefix``."""
    prefix = "/" + "".join(f"{part}/" for part in requests_pathname_prefix.split("/") if part)
    # The person's own credential (sign-in cookie), never a configured token.
    api = ApiClient(settings.api_url, credential=person_credential)
    app = Dash(
        "dashboard",  # the package: Dash then names the page modules dashboard.pages.*
        use_pages=True,
        pages_folder=str(PACKAGE_DIR / "pages"),
        assets_folder=str(PACKAGE_DIR / "assets"),
        requests_pathname_prefix=prefix,
        routes_pathname_prefix="/",
        title="Stratum",
        update_title="",  # no "Updating..." flicker in the tab on every refresh
        suppress_callback_exceptions=True,  # page components exist only on their page
    )
    install_sign_in(app.server, settings, prefix)
    _unknown_is_not_found(app)
    app.layout = _shell(prefix)
    _register_shell_callbacks(app, api, prefix)
    register_live_callbacks(app)
    register_timebar_callbacks(app)

    # Dash has just executed the page modules; these imports return those modules.
    from dashboard.pages import admin, drift, explorer, overview, pipeline

    overview.register_callbacks(app, api)
    explorer.register_callbacks(app, api)
    pipeline.register_callbacks(app, api)
    drift.register_callbacks(app, api)
    admin.register_callbacks(app, api)
    return app


def _unknown_is_not_found(app: Dash) -> None:
    """An asset path Dash does not serve (``..%2f`` included) and a callback it does not
    have are 404s, not Dash's 500s: a client's mistake, not the server's failure."""

    def not_found(_exc: Exception) -> tuple[dict[str, Any], int]:
        return {
            "error": {"code": "not_found", "message": "no such dashboard resource", "details": {}}
        }, 404

    server: flask.Flask = app.server  # Dash leaves the attribute unannotated
    server.register_error_handler(DependencyException, not_found)

    @server.before_request
    def _known_callback() -> tuple[dict[str, Any], int] | None:
        request = flask.request
        if request.method != "POST" or request.path != "/_dash-update-component":
            return None
        body = request.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, str) or output not in app.callback_map:
            return not_found(LookupError(output))
        return None


def _pages() -> list[dict[str, Any]]:
    return sorted(dash.page_registry.values(), key=lambda page: page.get("order") or 0)


def _nav_links(pathname: str | None, prefix: str) -> list[Component]:
    """Links under this app's own prefix. Not ``page["relative_path"]``: the page
    registry is global, so it holds the prefix of whichever app was created last."""
    current = (pathname or "").rstrip("/")
    links: list[Component] = []
    for page in _pages():
        href = prefix.rstrip("/") + page["path"] if page["path"] != "/" else prefix
        active = current == href.rstrip("/")
        links.append(
            dcc.Link(
                page["name"], href=href, className="nav-link is-active" if active else "nav-link"
            )
        )
    return links


def _shell(prefix: str) -> html.Div:
    brand = html.A(
        className="brand",
        href=prefix,
        children=[
            html.Span(className="brand-mark"),
            html.Span("Stratum", className="brand-name"),
            html.Span("real-time analytics", className="brand-tag"),
        ],
    )
    return html.Div(
        className="app",
        children=[
            dcc.Location(id=ids.APP_LOCATION),
            dcc.Store(id=ids.APP_TZ_OFFSET),
            html.Header(
                className="topbar",
                children=[
                    brand,
                    html.Nav(_nav_links(None, prefix), id=ids.APP_NAV, className="nav"),
                    pause_control(),
                ],
            ),
            html.Div(
                [html.Span(className="dot dot--muted"), html.Span("Checking the API…")],
                id=ids.APP_HEALTH_STRIP,
                className="health-strip",
                role="status",
            ),
            dcc.Interval(id=ids.APP_HEALTH_INTERVAL, interval=HEALTH_REFRESH_MS),
            html.Main(dash.page_container, className="page"),
        ],
    )


def _register_shell_callbacks(app: Dash, api: ApiClient, prefix: str) -> None:
    @app.callback(Output(ids.APP_NAV, "children"), Input(ids.APP_LOCATION, "pathname"))
    def highlight_nav(pathname: str | None) -> list[Component]:
        return _nav_links(pathname, prefix)

    @app.callback(
        Output(ids.APP_HEALTH_STRIP, "children"),
        Output(ids.APP_HEALTH_STRIP, "className"),
        Input(ids.APP_HEALTH_INTERVAL, "n_intervals"),
        running=[(Output(ids.APP_HEALTH_INTERVAL, "disabled"), True, False)],
    )
    def show_health(_n: int | None) -> tuple[list[Component], str]:
        now = datetime.now(UTC)
        try:
            health = api.health()
        except ApiError as exc:
            return health_strip(None, str(exc), now), "health-strip health-strip--bad"
        tone = tone_of("ok" if health.status == "ok" else "degraded")
        return health_strip(health, None, now), f"health-strip health-strip--{tone}"
