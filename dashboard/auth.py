"""The dashboard's door when a read token is set: a sign-in page, and a check in front of
every other route and callback.

Why a cookie, and this one: the person types the read (or admin) token once; it is kept
in an HttpOnly (no script can read it), SameSite=Strict (no other site's page can send
it) session cookie scoped to the dashboard's prefix. The dashboard's server-side API
client forwards it as ``Authorization: Bearer`` for that person's callbacks
(:func:`person_credential`); the configured tokens never leave the server and are never
attached to a call. Without a read token the dashboard is open, as the API's reads are.
"""

from __future__ import annotations

import html

import flask
from flask import Flask, Response
from flask.typing import ResponseReturnValue

from stratum.settings import Settings
from stratum.tokens import matches

COOKIE = "stratum_dashboard"
SIGN_IN = "/sign-in"
SIGN_OUT = "/sign-out"
# The only route open before sign-in; it carries its style inline, so it needs no asset.


def person_credential() -> str | None:
    """The token the person behind this callback signed in with, if any."""
    if not flask.has_request_context():
        return None
    return flask.request.cookies.get(COOKIE) or None


def install_sign_in(server: Flask, settings: Settings, prefix: str) -> None:
    """Guard ``server`` (a Dash app's Flask) when ``settings.api.read_token`` is set."""
    if settings.api.read_token is None:
        return
    accepted = (settings.api.read_token, settings.api.admin_token)
    cookie_path = prefix.rstrip("/") or "/"

    def valid(token: str | None) -> bool:
        return matches(token, accepted)

    @server.before_request
    def _guard() -> ResponseReturnValue | None:
        path = flask.request.path
        if path == SIGN_IN or valid(person_credential()):
            return None
        if flask.request.method == "GET" and not path.startswith(("/_dash", "/assets")):
            return flask.redirect(prefix + SIGN_IN.lstrip("/"), code=303)
        return flask.jsonify(
            error={
                "code": "unauthorized",
                "details": {},
                "message": f"sign in at {prefix}{SIGN_IN.lstrip('/')} with the read token",
            }
        ), 401

    @server.route(SIGN_IN, methods=["GET", "POST"])
    def _sign_in() -> ResponseReturnValue:
        if flask.request.method == "GET":
            return _page(prefix, None, 200)
        token = flask.request.form.get("token", "").strip()
        if not valid(token):  # a page again, not a 401: the browser shows it as is
            return _page(prefix, "That is not the read token (nor the admin token).", 200)
        response = flask.redirect(prefix, code=303)
        response.set_cookie(
            COOKIE, token, path=cookie_path, httponly=True, samesite="Strict", secure=_secure()
        )
        return response

    @server.route(SIGN_OUT, methods=["POST"])
    def _sign_out() -> ResponseReturnValue:
        response = flask.redirect(prefix + SIGN_IN.lstrip("/"), code=303)
        response.delete_cookie(COOKIE, path=cookie_path, httponly=True, samesite="Strict")
        return response


def _secure() -> bool:
    """Secure cookies over https, also behind a proxy that says so."""
    forwarded = flask.request.headers.get("X-Forwarded-Proto", "")
    return flask.request.is_secure or forwarded.split(",")[0].strip() == "https"


def _page(prefix: str, error: str | None, status: int) -> Response:
    problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = _PAGE.format(action=html.escape(prefix + SIGN_IN.lstrip("/")), problem=problem)
    return Response(
        body,
        status=status,
        mimetype="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Stratum · Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body {{ margin: 0; background: #f1f5f9; color: #0f172a; font: 14px/1.45 Inter, system-ui,
  -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }}
.topbar {{ display: flex; align-items: center; gap: 10px; height: 56px; padding: 0 24px;
  background: #0f172a; color: #fff; }}
.mark {{ width: 22px; height: 22px; border-radius: 6px;
  background: linear-gradient(135deg, #818cf8 0%, #4f46e5 50%, #f59e0b 100%); }}
.name {{ font-weight: 700; font-size: 16px; }}
.card {{ max-width: 420px; margin: 72px auto; padding: 28px; background: #fff;
  border: 1px solid #e2e8f0; border-radius: 12px; box-shadow: 0 1px 2px rgba(15,23,42,.04); }}
h1 {{ font-size: 20px; margin: 0 0 6px; }}
p {{ margin: 0 0 18px; color: #64748b; }}
label {{ display: block; font-weight: 600; margin-bottom: 6px; }}
input {{ width: 100%; box-sizing: border-box; height: 38px; padding: 0 12px; font: inherit;
  border: 1px solid #cbd5e1; border-radius: 8px; }}
input:focus {{ border-color: #4f46e5; outline: none; box-shadow: 0 0 0 3px #c7d2fe; }}
button {{ margin-top: 16px; height: 38px; padding: 0 18px; font: inherit; font-weight: 600;
  color: #fff; background: #4f46e5; border: 0; border-radius: 8px; cursor: pointer; }}
button:hover {{ background: #4338ca; }}
.error {{ color: #dc2626; background: #fef2f2; border: 1px solid #fecaca;
  border-radius: 8px; padding: 8px 12px; }}
</style></head>
<body><header class="topbar"><span class="mark"></span><span class="name">Stratum</span>
</header>
<main class="card"><h1>Sign in</h1>
<p>This dashboard shows data only to holders of the read token
(the API's <code>STRATUM_API__READ_TOKEN</code>). It is kept in a session cookie that page
scripts cannot read, and sent to the API with your requests only.</p>
{problem}
<form method="post" action="{action}">
<label for="token">Read token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required
 autofocus>
<button type="submit">Sign in</button>
</form></main></body></html>
"""
